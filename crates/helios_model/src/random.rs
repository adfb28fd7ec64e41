//! The parts of a checkpoint built from its configs with random weights: benchmarks at the real
//! shapes without downloading anything.
//!
//! The values have the scale of a trained model's, so that activations stay finite and clear of
//! denormals (which would time differently): matrices and convolutions `U(-a, a)` with variance
//! `1 / fan_in`, norm scales around 1, biases small, modulation tables of variance `1 / dim` (the
//! scheme of the golden fixtures' random checkpoint). They are drawn on the host, in parallel, from a
//! seed, and each tensor is uploaded once, already in the dtype the part computes in: a half-precision
//! 14B DiT never exists in float32 on the device.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::config::{TextEncoderConfig, TransformerConfig, VaeConfig};
use crate::dit::precision::KEEP_IN_FP32;
use crate::dit::{HeliosTransformer3DModel, Precision};
use crate::error::{Error, Result};
use crate::text::UMT5EncoderModel;
use crate::vae::{AutoencoderKLWan, WanVae};

/// Rows of the UMT5 token embedding that get random values (see [`random_text_encoder`]).
pub const TEXT_EMBEDDING_ROWS: usize = 4096;

/// Values drawn per parallel job (each job has its own stream, so the result does not depend on
/// the thread count).
const JOB: usize = 1 << 16;

/// SplitMix64: a small, fast generator, good enough for weights nobody trains.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` values uniform in `[center - spread, center + spread)`, the stream `stream` of `seed`.
fn uniform(n: usize, center: f32, spread: f32, seed: u64, stream: u64) -> Vec<f32> {
    let mut values = vec![0.0f32; n];
    values
        .par_chunks_mut(JOB)
        .enumerate()
        .for_each(|(job, out)| {
            let mut state = seed
                ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)
                ^ (job as u64).wrapping_mul(0xA076_1D64_78BD_642F);
            for pair in out.chunks_mut(2) {
                let bits = splitmix(&mut state);
                for (v, word) in pair.iter_mut().zip([bits as u32, (bits >> 32) as u32]) {
                    // 24 random bits -> [0, 1) -> [-1, 1).
                    let unit = (word >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
                    *v = center + spread * (2.0 * unit - 1.0);
                }
            }
        });
    values
}

/// How the parameters of a part are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Storage {
    /// float32.
    F32,
    /// The DiT at a precision: its half dtype (or bf16-rounded float32) outside `KEEP_IN_FP32`.
    Dit(Precision),
}

/// Fills every float parameter (except those under `skip`) with random values.
struct Randomizer {
    seed: u64,
    storage: Storage,
    skip: &'static [&'static str],
    path: Vec<String>,
    count: u64,
}

/// The fields of the port's modules that hold embedding tables (`[entries, dim]` weights), by
/// name: the layers are recognised by their paths, as the loader does, not by burn's internal
/// container names.
const EMBEDDINGS: [&str; 2] = ["shared", "relative_attention_bias"];

impl Randomizer {
    fn new(seed: u64, storage: Storage, skip: &'static [&'static str]) -> Self {
        Self {
            seed,
            storage,
            skip,
            path: Vec::new(),
            count: 0,
        }
    }

    /// `(center, spread)` of a parameter's uniform distribution, from its name and shape.
    fn distribution(&self, shape: &[usize]) -> (f32, f32) {
        let leaf = self.path.last().map(String::as_str).unwrap_or("");
        let field = self.path.iter().rev().nth(1).map_or("", String::as_str);
        let sqrt3 = 3f32.sqrt();
        let spread_for = |std: f32| std * sqrt3;
        // A one-dimensional weight is a norm's scale (linear and convolution weights have two
        // dimensions or more).
        if leaf == "gamma" || (leaf == "weight" && shape.len() == 1) {
            (1.0, spread_for(0.1))
        } else if leaf == "bias" || leaf == "beta" {
            (0.0, spread_for(0.02))
        } else if self.path.iter().any(|p| p == "scale_shift_table") {
            let dim = shape.last().copied().unwrap_or(1).max(1);
            (0.0, spread_for(1.0 / (dim as f32).sqrt()))
        } else if EMBEDDINGS.contains(&field) {
            (0.0, spread_for(1.0))
        } else if shape.len() >= 2 {
            // burn's Linear stores [in, out]; convolutions (and patch embeddings) [out, in, k...].
            let fan_in: usize = if shape.len() == 2 {
                shape[0]
            } else {
                shape[1..].iter().product()
            };
            (0.0, spread_for(1.0 / (fan_in.max(1) as f32).sqrt()))
        } else {
            (0.0, spread_for(0.05))
        }
    }

    fn tensor<B: Backend, const D: usize>(
        &mut self,
        shape: &[usize],
        device: &B::Device,
    ) -> Tensor<B, D> {
        let (center, spread) = self.distribution(shape);
        let n = shape.iter().product();
        self.count += 1;
        let values = uniform(n, center, spread, self.seed, self.count);
        let kept = self.path.iter().any(|p| KEEP_IN_FP32.contains(&p.as_str()));
        match self.storage {
            Storage::Dit(Precision::Native(dtype)) if !kept => {
                let data = match dtype {
                    DType::F16 => TensorData::new(
                        values
                            .par_iter()
                            .map(|&v| half::f16::from_f32(v))
                            .collect::<Vec<_>>(),
                        shape.to_vec(),
                    ),
                    _ => TensorData::new(
                        values
                            .par_iter()
                            .map(|&v| half::bf16::from_f32(v))
                            .collect::<Vec<_>>(),
                        shape.to_vec(),
                    ),
                };
                Tensor::from_data(data, (device, dtype))
            }
            Storage::Dit(Precision::EmulatedBf16) if !kept => {
                let rounded: Vec<f32> = values
                    .par_iter()
                    .map(|&v| half::bf16::from_f32(v).to_f32())
                    .collect();
                Tensor::from_data(
                    TensorData::new(rounded, shape.to_vec()),
                    (device, DType::F32),
                )
            }
            _ => Tensor::from_data(
                TensorData::new(values, shape.to_vec()),
                (device, DType::F32),
            ),
        }
    }
}

impl<B: Backend> ModuleMapper<B> for Randomizer {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self
            .path
            .first()
            .is_some_and(|p| self.skip.contains(&p.as_str()))
        {
            return param;
        }
        let id = param.id;
        let device = param.lazy_device();
        let shape = param.lazy_shape().to_vec();
        let tensor = self.tensor::<B, D>(&shape, &device);
        param.transform_for_load(tensor, id)
    }
}

fn check_layers(what: &str, layers: usize, max: usize) -> Result<usize> {
    if layers == 0 || layers > max {
        return Err(Error::InvalidRequest(format!(
            "{what}: {layers} layers asked; the config has 1 to {max}"
        )));
    }
    Ok(layers)
}

/// The DiT of `config` with random weights, `layers` of its blocks (all when `None`), at
/// `precision` (parameters outside `KEEP_IN_FP32` stored in its half dtype).
pub fn random_transformer<B: Backend>(
    config: &TransformerConfig,
    layers: Option<usize>,
    precision: Precision,
    seed: u64,
    device: &B::Device,
) -> Result<HeliosTransformer3DModel<B>> {
    let mut config = config.clone();
    config.num_layers = check_layers(
        "transformer",
        layers.unwrap_or(config.num_layers),
        config.num_layers,
    )?;
    let model = HeliosTransformer3DModel::new(&config, device);
    let model = model.map(&mut Randomizer::new(seed, Storage::Dit(precision), &[]));
    // The parameters already have their dtypes; this records the precision the forward pass uses.
    Ok(model.with_precision(precision))
}

/// The Wan VAE of `config` (encoder and decoder) with random float32 weights.
pub fn random_vae<B: Backend>(config: &VaeConfig, seed: u64, device: &B::Device) -> WanVae<B> {
    let model =
        AutoencoderKLWan::new(config, device).map(&mut Randomizer::new(seed, Storage::F32, &[]));
    WanVae::from_parts(model, config.clone())
}

/// The UMT5 encoder of `config` with random float32 weights and `layers` of its blocks (all when
/// `None`; more than the config has are capped).
///
/// The token embedding has its full `[vocab_size, d_model]` shape, but only its first
/// [`TEXT_EMBEDDING_ROWS`] rows are random, the rest zero: a lookup costs the same whatever the
/// other rows hold, and a zero-filled host buffer is not touched page by page, so a 4 GB table
/// costs neither time nor memory on the CPU backend. Prompts for it draw their ids below that row.
pub fn random_text_encoder<B: Backend>(
    config: &TextEncoderConfig,
    layers: Option<usize>,
    seed: u64,
    device: &B::Device,
) -> Result<UMT5EncoderModel<B>> {
    let mut config = config.clone();
    config.num_layers = check_layers(
        "text encoder",
        layers.unwrap_or(config.num_layers).min(config.num_layers),
        config.num_layers,
    )?;
    let mut model = UMT5EncoderModel::new(&config, device).map(&mut Randomizer::new(
        seed,
        Storage::F32,
        &["shared"],
    ));
    let rows = TEXT_EMBEDDING_ROWS.min(config.vocab_size);
    let mut table = vec![0.0f32; config.vocab_size * config.d_model];
    let random = uniform(rows * config.d_model, 0.0, 3f32.sqrt(), seed, u64::MAX);
    table[..random.len()].copy_from_slice(&random);
    let table = Tensor::from_data(
        TensorData::new(table, [config.vocab_size, config.d_model]),
        (device, DType::F32),
    );
    model.shared.weight = Param::initialized(ParamId::new(), table);
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use crate::config::HeliosCheckpoint;

    const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/embedded/tiny-helios");

    fn stats(values: &[f32]) -> (f32, f32) {
        let n = values.len() as f32;
        let mean = values.iter().sum::<f32>() / n;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn uniform_has_the_asked_moments_and_is_reproducible() {
        let v = uniform(200_000, 1.0, 0.5, 7, 3);
        let (mean, std) = stats(&v);
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        assert!((std - 0.5 / 3f32.sqrt()).abs() < 0.01, "{std}");
        assert!(v.iter().all(|x| (0.5..1.5).contains(x)));
        assert_eq!(v, uniform(200_000, 1.0, 0.5, 7, 3));
        assert_ne!(v[..100], uniform(200_000, 1.0, 0.5, 7, 4)[..100]);
    }

    #[test]
    fn random_parts_have_the_config_shapes_and_finite_outputs() {
        let ckpt = HeliosCheckpoint::from_dir(TINY).unwrap();
        let device = Default::default();
        let dit = random_transformer::<TestBackend>(
            &ckpt.transformer,
            Some(1),
            Precision::F32,
            0,
            &device,
        )
        .unwrap();
        assert_eq!(dit.blocks.len(), 1);
        let w: Vec<f32> = dit.proj_out.weight.val().into_data().to_vec().unwrap();
        let (_, std) = stats(&w);
        let fan_in = ckpt.transformer.inner_dim() as f32;
        assert!(
            (std * fan_in.sqrt() - 1.0).abs() < 0.1,
            "proj_out std {std}"
        );
        let norm: Vec<f32> = dit.blocks[0]
            .norm2
            .as_ref()
            .unwrap()
            .gamma
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        assert!((stats(&norm).0 - 1.0).abs() < 0.1);
        assert!(
            random_transformer::<TestBackend>(
                &ckpt.transformer,
                Some(3),
                Precision::F32,
                0,
                &device
            )
            .is_err()
        );

        let text =
            random_text_encoder::<TestBackend>(&ckpt.text_encoder, Some(99), 0, &device).unwrap();
        assert_eq!(text.encoder.block.len(), ckpt.text_encoder.num_layers);
        assert_eq!(
            text.shared.weight.dims(),
            [ckpt.text_encoder.vocab_size, ckpt.text_encoder.d_model]
        );

        let vae = random_vae::<TestBackend>(&ckpt.vae, 0, &device);
        let z = Tensor::<TestBackend, 5>::ones([1, ckpt.vae.z_dim, 2, 2, 2], &device);
        let video: Vec<f32> = vae.decode(z).unwrap().into_data().to_vec().unwrap();
        assert_eq!(video.len(), 3 * 5 * 16 * 16);
        assert!(video.iter().all(|v| v.is_finite()));
        assert!(
            stats(&video).1 > 0.0,
            "the decode of random weights is not constant"
        );
    }

    #[test]
    fn half_precision_stores_the_dit_rounded_to_bf16() {
        let ckpt = HeliosCheckpoint::from_dir(TINY).unwrap();
        let device = Default::default();
        let dit = random_transformer::<TestBackend>(
            &ckpt.transformer,
            None,
            Precision::EmulatedBf16,
            1,
            &device,
        )
        .unwrap();
        assert_eq!(dit.precision(), Precision::EmulatedBf16);
        let w: Vec<f32> = dit.proj_out.weight.val().into_data().to_vec().unwrap();
        assert!(w.iter().all(|&v| half::bf16::from_f32(v).to_f32() == v));
        // Kept-in-fp32 modules are not rounded.
        let t: Vec<f32> = dit.blocks[0]
            .scale_shift_table
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        assert!(t.iter().any(|&v| half::bf16::from_f32(v).to_f32() != v));
    }
}
