//! Loading [`HeliosTransformer3DModel`] from a diffusers `transformer/` folder: in float32, at a
//! compute precision, with the block weights quantised as they are read, or with the last blocks
//! kept in host memory (layer offload).

use std::collections::BTreeSet;
use std::path::Path;

use burn::tensor::backend::Backend;

use super::block::HeliosTransformerBlock;
use super::model::HeliosTransformer3DModel;
use super::offload::HostBlock;
use super::precision::Precision;
use super::quantize::WeightQuantization;
use crate::config::{TransformerConfig, read_json};
use crate::error::{Error, Result};
use crate::weights::{
    DtypePolicy, KeyMap, LoadProgress, LoadReport, SafetensorsSet, check_all_used, load_module_as,
    load_module_part, log_report,
};

/// Burn paths → diffusers keys (only the real renames; field names follow the checkpoint).
pub(crate) fn key_map() -> KeyMap {
    KeyMap::new(&[
        (".ffn.proj_in.", ".ffn.net.0.proj."),
        (".ffn.proj_out.", ".ffn.net.2."),
        (".to_out.", ".to_out.0."),
    ])
    .ignoring_unused(&["norm_added_q"])
}

impl<B: Backend> HeliosTransformer3DModel<B> {
    /// Loads `<dir>/config.json` and the (sharded) `diffusion_pytorch_model` safetensors of a
    /// diffusers `transformer/` folder, in float32.
    pub fn load(
        dir: &Path,
        device: &B::Device,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self> {
        Ok(Self::load_at(dir, device, Precision::F32, progress)?.0)
    }

    /// [`Self::load`] at compute precision `precision`: each weight is converted from the
    /// checkpoint's dtype straight into the compute dtype as it is read (diffusers'
    /// `_keep_in_fp32_modules` stay float32), so no float32 copy of the model is ever made.
    pub fn load_at(
        dir: &Path,
        device: &B::Device,
        precision: Precision,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<(Self, LoadReport)> {
        Self::load_quantized(dir, device, precision, WeightQuantization::None, progress)
    }

    /// [`Self::load_at`] with the block weights quantised as they are read (`quantization`), so
    /// the device never holds the unquantised model.
    pub fn load_quantized(
        dir: &Path,
        device: &B::Device,
        precision: Precision,
        quantization: WeightQuantization,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<(Self, LoadReport)> {
        Self::load_offloaded(dir, device, precision, quantization, 0, progress)
    }

    /// [`Self::load_quantized`] with the last `offload_blocks` blocks kept in host memory (layer
    /// offload, see [`super::offload`]): each is loaded, converted and quantised like the others,
    /// then moved to host memory before the next one is read, and goes to the device only for its
    /// own forward pass. Fails if `offload_blocks` exceeds the model's blocks.
    pub fn load_offloaded(
        dir: &Path,
        device: &B::Device,
        precision: Precision,
        quantization: WeightQuantization,
        offload_blocks: usize,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<(Self, LoadReport)> {
        let config_path = dir.join("config.json");
        let config: TransformerConfig = read_json(&config_path)?;
        config.validate(&config_path)?;
        if offload_blocks > config.num_layers {
            return Err(Error::InvalidRequest(format!(
                "{offload_blocks} DiT blocks to offload; the model has {}",
                config.num_layers
            )));
        }
        let set = SafetensorsSet::open("transformer", dir, "diffusion_pytorch_model")?;
        let policy = DtypePolicy {
            quantize: quantization.policy::<B>(device),
            ..precision.dtype_policy()
        };
        let map = key_map();
        let resident = config.num_layers - offload_blocks;
        let mut skeleton = Self::new(&config, device);
        skeleton.blocks.truncate(resident);
        let (mut model, mut report) =
            load_module_part(skeleton, &set, &map, policy, &[], progress)?;
        let mut offloaded_keys = BTreeSet::new();
        for i in resident..config.num_layers {
            let root = ["blocks".to_string(), i.to_string()];
            // Progress counts on from the parts already read.
            let (done, bytes) = (
                report.applied.len() + offloaded_keys.len(),
                report.bytes_read,
            );
            let (block, part) = load_module_part(
                HeliosTransformerBlock::<B>::new(model.settings, device),
                &set,
                &map,
                policy,
                &root,
                &mut |p: LoadProgress| {
                    progress(LoadProgress {
                        loaded: done + p.loaded,
                        bytes: bytes + p.bytes,
                        ..p
                    })
                },
            )?;
            let host = HostBlock::from_block(block);
            report.bytes_offloaded += part.bytes_stored;
            offloaded_keys.extend(part.applied.iter().cloned());
            report.merge(LoadReport {
                bytes_stored: 0,
                applied: Vec::new(),
                ..part
            });
            model.offloaded.push(host);
        }
        let mut report = check_all_used(&set, &map, report, &offloaded_keys)?;
        report.applied.extend(offloaded_keys);
        log_report(&report);
        model.precision = precision;
        Ok((model, report))
    }

    /// DiT blocks kept in host memory (layer offload).
    pub fn offloaded_blocks(&self) -> usize {
        self.offloaded.len()
    }

    /// Builds the model for `config` and loads `set` into it, in float32.
    pub fn load_weights(
        config: &TransformerConfig,
        set: &SafetensorsSet,
        device: &B::Device,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self> {
        Ok(Self::load_weights_at(config, set, device, Precision::F32, progress)?.0)
    }

    /// Builds the model for `config` and loads `set` into it at `precision` (see [`Self::load_at`]).
    pub fn load_weights_at(
        config: &TransformerConfig,
        set: &SafetensorsSet,
        device: &B::Device,
        precision: Precision,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<(Self, LoadReport)> {
        let (mut model, report) = load_module_as(
            Self::new(config, device),
            set,
            &key_map(),
            precision.dtype_policy(),
            progress,
        )?;
        model.precision = precision;
        Ok((model, report))
    }
}
