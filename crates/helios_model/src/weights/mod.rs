//! Weight loading: memory-mapped (sharded) safetensors applied onto burn modules.
//!
//! A part's module is first built from its config (`XConfig::init`, lazily initialised, so nothing
//! is allocated yet); [`load_module`] then walks its parameters with a
//! [`ModuleMapper`](burn::module::ModuleMapper), maps each burn path to the diffusers key through
//! the part's [`KeyMap`], checks the stored shape against the shape the config implies, converts
//! bf16 / f16 / f32 / f64 to the parameter's dtype and replaces the value. Shards are
//! memory-mapped: a tensor's bytes are read from the page cache once, converted and moved to the
//! device, so the process never holds a second full copy of the checkpoint. Missing keys, unused
//! keys, bad shapes and corrupt files are typed [`Error`]s naming the file and tensor.
//!
//! - [`SafetensorsSet`] (`set`): the files of one part and reading a tensor in its device dtype;
//! - [`KeyMap`], [`DtypePolicy`] (`keymap`): burn paths to checkpoint keys, and the dtype each
//!   parameter is stored in;
//! - [`LoadReport`] (`report`): what a load read and converted;
//! - `loader`: the module mapper that replaces each parameter.

mod keymap;
mod loader;
mod report;
mod set;

use std::collections::BTreeSet;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::error::{Error, Result};

pub use keymap::{DtypePolicy, KeyMap, QuantizePolicy, StoreAs};
use loader::Loader;
pub use report::{LoadProgress, LoadReport};
pub use set::SafetensorsSet;

/// Loads every float parameter of `module` from `set` in float32, mapping burn paths to
/// checkpoint keys with `map`. Fails on the first missing tensor or wrong shape, and when the set
/// holds tensors the module does not use (other than those `map` ignores).
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    set: &SafetensorsSet,
    map: &KeyMap,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(M, LoadReport)> {
    load_module_as(module, set, map, DtypePolicy::F32, progress)
}

/// [`load_module`] with the parameters stored as `policy` says: each tensor is converted on the
/// host from the checkpoint's dtype straight into its device dtype (no float32 copy of a half
/// checkpoint is made). The report is logged (`tracing::info!`) and returned.
pub fn load_module_as<B: Backend, M: Module<B>>(
    module: M,
    set: &SafetensorsSet,
    map: &KeyMap,
    policy: DtypePolicy,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(M, LoadReport)> {
    let (module, report) = load_module_part(module, set, map, policy, &[], progress)?;
    let report = check_all_used(set, map, report, &BTreeSet::new())?;
    log_report(&report);
    Ok((module, report))
}

/// Loads the float parameters of `module`, a part of a larger model found at the burn path `root`
/// (`["blocks", "38"]`), from `set`: paths are `root` joined with the module's own. Keys of `set`
/// outside the module are not checked (see [`check_all_used`]); `report.applied` lists what was read.
pub fn load_module_part<B: Backend, M: Module<B>>(
    module: M,
    set: &SafetensorsSet,
    map: &KeyMap,
    policy: DtypePolicy,
    root: &[String],
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(M, LoadReport)> {
    let mut loader = Loader::<B> {
        set,
        map,
        policy,
        path: root.to_vec(),
        used: BTreeSet::new(),
        error: None,
        report: LoadReport {
            part: set.part,
            ..LoadReport::default()
        },
        progress,
        _b: std::marker::PhantomData,
    };
    let module = module.map(&mut loader);
    if let Some(e) = loader.error {
        return Err(e);
    }
    let mut report = loader.report;
    report.applied = loader.used.into_iter().collect();
    Ok((module, report))
}

/// Fails when `set` holds tensors that neither `report.applied` nor `also_used` name and that
/// `map` does not ignore; lists the ignored ones in the report.
pub fn check_all_used(
    set: &SafetensorsSet,
    map: &KeyMap,
    mut report: LoadReport,
    also_used: &BTreeSet<String>,
) -> Result<LoadReport> {
    let applied: BTreeSet<&str> = report.applied.iter().map(String::as_str).collect();
    let mut unexpected = Vec::new();
    let mut ignored = Vec::new();
    for key in set.keys() {
        if applied.contains(key) || also_used.contains(key) {
            continue;
        }
        if map.ignore_unused.iter().any(|p| key.contains(p)) {
            ignored.push(key.to_string());
        } else {
            unexpected.push(key.to_string());
        }
    }
    if !unexpected.is_empty() {
        return Err(Error::UnexpectedTensors {
            part: set.part,
            path: set.location.clone(),
            keys: unexpected,
        });
    }
    report.ignored = ignored;
    Ok(report)
}

/// Logs what a load applied.
pub fn log_report(report: &LoadReport) {
    tracing::info!(
        part = report.part,
        tensors = report.applied.len(),
        bytes_read = report.bytes_read,
        bytes_stored = report.bytes_stored,
        bytes_offloaded = report.bytes_offloaded,
        conversions = ?report.conversions,
        "weights loaded"
    );
}

/// A lazily zero-initialised parameter: nothing is allocated until the loader replaces it (or the
/// value is first read).
pub fn lazy_zeros<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::uninitialized(
        burn::module::ParamId::new(),
        move |d, _| Tensor::zeros(shape, d),
        device.clone(),
        false,
        shape.into(),
    )
}

#[cfg(test)]
mod tests {
    use burn::tensor::{DType, TensorData};
    use safetensors::Dtype;

    use super::loader::transpose_2d;
    use super::*;

    #[test]
    fn linear_weights_are_transposed_on_the_host() {
        let f32s = TensorData::new((0..6).map(|v| v as f32).collect::<Vec<_>>(), [2, 3]);
        let t = transpose_2d(f32s);
        assert_eq!(t.shape.to_vec(), vec![3, 2]);
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
        let bf16s: Vec<half::bf16> = (0..6).map(|v| half::bf16::from_f32(v as f32)).collect();
        let t = transpose_2d(TensorData::new(bf16s, [3, 2]));
        assert_eq!(t.shape.to_vec(), vec![2, 3]);
        let got: Vec<f32> = t.iter::<f32>().collect();
        assert_eq!(got, vec![0., 2., 4., 1., 3., 5.]);
    }

    #[test]
    fn key_map_applies_rules_in_order_then_the_prefix() {
        let map = KeyMap::new(&[
            (".ffn.proj_in.", ".ffn.net.0.proj."),
            (".to_out.", ".to_out.0."),
        ])
        .with_prefix("model.");
        assert_eq!(
            map.checkpoint_key("blocks.3.ffn.proj_in.weight"),
            "model.blocks.3.ffn.net.0.proj.weight"
        );
        assert_eq!(
            map.checkpoint_key("blocks.0.attn1.to_out.bias"),
            "model.blocks.0.attn1.to_out.0.bias"
        );
        assert_eq!(
            map.checkpoint_key("proj_out.weight"),
            "model.proj_out.weight"
        );
    }

    #[test]
    fn norm_parameters_and_linear_weights_are_recognised_by_path() {
        let map = KeyMap::new(&[]).keeping_layout(&["shared."]);
        assert_eq!(
            map.checkpoint_key("blocks.0.norm2.gamma"),
            "blocks.0.norm2.weight"
        );
        assert_eq!(
            map.checkpoint_key("blocks.0.norm2.beta"),
            "blocks.0.norm2.bias"
        );
        assert_eq!(
            map.checkpoint_key("gamma_table.weight"),
            "gamma_table.weight"
        );
        assert!(map.is_transposed("blocks.0.attn1.to_q.weight", 2));
        assert!(!map.is_transposed("blocks.0.attn1.to_q.bias", 1));
        assert!(!map.is_transposed("patch_embedding.weight", 5));
        assert!(!map.is_transposed("shared.weight", 2));
        assert!(!map.is_transposed("blocks.0.attn1.to_q.weightless", 2));
    }

    fn one_tensor_set(
        dtype: Dtype,
        bytes: Vec<u8>,
        shape: Vec<usize>,
    ) -> (tempfile::TempDir, SafetensorsSet) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let view = safetensors::tensor::TensorView::new(dtype, shape, &bytes).unwrap();
        safetensors::serialize_to_file([("w", view)], None, &path).unwrap();
        let set = SafetensorsSet::open_files("test", path.clone(), &[path]).unwrap();
        (dir, set)
    }

    #[test]
    fn bf16_converts_straight_to_the_half_dtypes() {
        let values = [1.0f32, -2.5, 3.140625, 65504.0, 1.0e-3];
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        let (_dir, set) = one_tensor_set(Dtype::BF16, bytes, vec![5]);
        let (f16, from) = set.read_as("w", StoreAs::Half(DType::F16)).unwrap();
        assert_eq!(from, "BF16");
        assert_eq!(f16.dtype, DType::F16);
        let expected: Vec<half::f16> = values
            .iter()
            .map(|v| half::f16::from_f32(half::bf16::from_f32(*v).to_f32()))
            .collect();
        assert_eq!(f16.to_vec::<half::f16>().unwrap(), expected);
        let (bf16, _) = set.read_as("w", StoreAs::Half(DType::BF16)).unwrap();
        assert_eq!(bf16.dtype, DType::BF16);
        let expected: Vec<half::bf16> = values.iter().map(|v| half::bf16::from_f32(*v)).collect();
        assert_eq!(bf16.to_vec::<half::bf16>().unwrap(), expected);
    }

    #[test]
    fn f32_rounds_to_bf16_values_when_bf16_is_emulated() {
        let values = [1.0039f32, -1234.567];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (_dir, set) = one_tensor_set(Dtype::F32, bytes, vec![2]);
        let (data, from) = set.read_as("w", StoreAs::RoundedBf16).unwrap();
        assert_eq!(from, "F32");
        let expected: Vec<f32> = values
            .iter()
            .map(|v| half::bf16::from_f32(*v).to_f32())
            .collect();
        assert_eq!(data.to_vec::<f32>().unwrap(), expected);
        assert_ne!(expected, values.to_vec());
    }
}
