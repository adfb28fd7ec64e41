//! Weight saving: a burn module written as a diffusers-layout safetensors file, the inverse of
//! [`crate::weights::load_module`].
//!
//! Each float parameter is stored under the checkpoint key its part's [`KeyMap`] gives its burn
//! path, in float32 or bfloat16 ([`StoredAs`]), with linear weights transposed back to the
//! checkpoint's `[out, in]`; loading the file with the same map gives back the same module (in
//! float32 exactly, in bfloat16 rounded to nearest). This is how a model trained with burn
//! (the demo checkpoint) becomes a folder that the normal loader, and diffusers, read.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use safetensors::{Dtype, tensor::TensorView};

use crate::error::{Error, Result};
use crate::weights::KeyMap;

/// Collects `(checkpoint key, shape, f32 values)` of every float parameter.
struct Collector<'a> {
    map: &'a KeyMap,
    path: Vec<String>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    error: Option<Error>,
}

impl<B: Backend> ModuleVisitor<B> for Collector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() {
            return;
        }
        let burn_path = self.path.join(".");
        let key = self.map.checkpoint_key(&burn_path);
        let tensor = param.val();
        let mut shape = tensor.dims().to_vec();
        let tensor = if self.map.is_transposed(&burn_path, D) {
            shape.reverse();
            tensor.transpose()
        } else {
            tensor
        };
        let values = match tensor.into_data().convert::<f32>().into_vec::<f32>() {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(Error::InvalidRequest(format!(
                    "parameter `{burn_path}` cannot be read as float32: {e:?}"
                )));
                return;
            }
        };
        if self.tensors.insert(key.clone(), (shape, values)).is_some() {
            self.error = Some(Error::InvalidRequest(format!(
                "two parameters map to the checkpoint key `{key}`"
            )));
        }
    }
}

/// The number type a checkpoint file stores its weights as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoredAs {
    /// float32: exact.
    #[default]
    F32,
    /// bfloat16 (rounded to nearest even), half the bytes: what the real Helios checkpoints hold.
    Bf16,
}

impl StoredAs {
    fn dtype(self) -> Dtype {
        match self {
            StoredAs::F32 => Dtype::F32,
            StoredAs::Bf16 => Dtype::BF16,
        }
    }

    fn bytes(self, values: &[f32]) -> Vec<u8> {
        match self {
            StoredAs::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            StoredAs::Bf16 => values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }
}

/// Writes every float parameter of `module` to the safetensors file `path` (as `stored`), keyed
/// as `map` names them. Returns the number of tensors written.
pub fn save_module<B: Backend, M: Module<B>>(
    module: &M,
    map: &KeyMap,
    path: &Path,
    stored: StoredAs,
) -> Result<usize> {
    let mut collector = Collector {
        map,
        path: Vec::new(),
        tensors: BTreeMap::new(),
        error: None,
    };
    module.visit(&mut collector);
    if let Some(e) = collector.error {
        return Err(e);
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = collector
        .tensors
        .into_iter()
        .map(|(key, (shape, values))| (key, shape, stored.bytes(&values)))
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (key, shape, data) in &bytes {
        let view = TensorView::new(stored.dtype(), shape.clone(), data)
            .map_err(|e| Error::InvalidRequest(format!("tensor `{key}` cannot be written: {e}")))?;
        views.push((key.as_str(), view));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    safetensors::serialize_to_file(views, None, path).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bytes.len())
}

/// Writes a DiT's weights as `<dir>/diffusion_pytorch_model.safetensors` (a diffusers
/// `transformer` folder, without its `config.json`), as `stored`.
pub fn save_transformer<B: Backend>(
    model: &crate::dit::HeliosTransformer3DModel<B>,
    dir: &Path,
    stored: StoredAs,
) -> Result<usize> {
    save_module(
        model,
        &crate::dit::load::key_map(),
        &dir.join("diffusion_pytorch_model.safetensors"),
        stored,
    )
}

/// Writes a Wan VAE's weights as `<dir>/diffusion_pytorch_model.safetensors` (a diffusers `vae`
/// folder, without its `config.json`).
pub fn save_vae<B: Backend>(model: &crate::vae::AutoencoderKLWan<B>, dir: &Path) -> Result<usize> {
    save_module(
        model,
        &crate::vae::vae_key_map(),
        &dir.join("diffusion_pytorch_model.safetensors"),
        StoredAs::F32,
    )
}

/// Writes a UMT5 encoder's weights as `<dir>/model.safetensors` (a transformers `text_encoder`
/// folder, without its `config.json`).
pub fn save_text_encoder<B: Backend>(
    model: &crate::text::UMT5EncoderModel<B>,
    dir: &Path,
) -> Result<usize> {
    save_module(
        model,
        &crate::text::umt5::key_map(false),
        &dir.join("model.safetensors"),
        StoredAs::F32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use crate::config::VaeConfig;
    use crate::random::random_vae;
    use crate::vae::WanVae;

    #[test]
    fn a_saved_vae_loads_back_the_same_and_bf16_rounds_each_weight() {
        let config: VaeConfig = serde_json::from_value(serde_json::json!({
            "base_dim": 4, "z_dim": 4, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
            "latents_mean": [0.0, 0.0, 0.0, 0.0], "latents_std": [1.0, 1.0, 1.0, 1.0],
        }))
        .unwrap_or_else(|e| panic!("config: {e}"));
        let device = Default::default();
        let vae: WanVae<TestBackend> = random_vae(&config, 7, &device);
        let dir = std::env::temp_dir().join(format!("helios-save-{}", std::process::id()));
        let written = save_vae(vae.model(), &dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(written > 10);
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string(&serde_json::json!({
                "base_dim": 4, "z_dim": 4, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
                "latents_mean": [0.0, 0.0, 0.0, 0.0], "latents_std": [1.0, 1.0, 1.0, 1.0],
            }))
            .unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let loaded = WanVae::<TestBackend>::load(&dir, &device).unwrap_or_else(|e| panic!("{e}"));
        let z = burn::tensor::Tensor::<TestBackend, 5>::ones([1, 4, 2, 2, 2], &device);
        let a = vae
            .decode_vae_space(z.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let b = loaded.decode_vae_space(z).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.into_data(), b.into_data());

        // The same weights in bfloat16: every value is its float32 value rounded to nearest, in
        // half the bytes, and the loader reads the folder.
        let weights = dir.join("diffusion_pytorch_model.safetensors");
        let f32_file = std::fs::read(&weights).unwrap_or_else(|e| panic!("{e}"));
        save_module(
            vae.model(),
            &crate::vae::vae_key_map(),
            &weights,
            StoredAs::Bf16,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let bf16_file = std::fs::read(&weights).unwrap_or_else(|e| panic!("{e}"));
        let half = WanVae::<TestBackend>::load(&dir, &device);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(half.is_ok(), "the bf16 folder loads");
        let full =
            safetensors::SafeTensors::deserialize(&f32_file).unwrap_or_else(|e| panic!("{e}"));
        let rounded =
            safetensors::SafeTensors::deserialize(&bf16_file).unwrap_or_else(|e| panic!("{e}"));
        assert!(bf16_file.len() < f32_file.len() * 6 / 10);
        assert_eq!(full.names().len(), rounded.names().len());
        for (name, view) in full.tensors() {
            let r = rounded
                .tensor(&name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (r.dtype(), r.shape()),
                (Dtype::BF16, view.shape()),
                "{name}"
            );
            let want: Vec<u8> = view
                .data()
                .chunks_exact(4)
                .flat_map(|b| {
                    let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    half::bf16::from_f32(v).to_le_bytes()
                })
                .collect();
            assert_eq!(r.data(), &want[..], "{name}");
        }
    }
}
