//! `vae/config.json`: [`VaeConfig`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::n;
use crate::error::{Error, Result};

/// `vae/config.json` of `AutoencoderKLWan`. `latents_mean` and `latents_std` are required; any other
/// missing key takes the diffusers 0.42.1 default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct VaeConfig {
    /// Base channel count of the encoder (and decoder unless `decoder_base_dim`).
    #[serde(default = "n::<96>")]
    pub base_dim: usize,
    /// Base channel count of the decoder (`null`: `base_dim`).
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    /// Latent channels.
    #[serde(default = "n::<16>")]
    pub z_dim: usize,
    /// Channel multipliers per level.
    #[serde(default = "VaeConfig::default_dim_mult")]
    pub dim_mult: Vec<usize>,
    /// Residual blocks per level.
    #[serde(default = "n::<2>")]
    pub num_res_blocks: usize,
    /// Attention at these scales (empty in Wan 2.1).
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    /// Temporal down-sampling per level (the decoder reverses it).
    #[serde(default = "VaeConfig::default_temperal_downsample")]
    pub temperal_downsample: Vec<bool>,
    /// Dropout (inference: ignored).
    #[serde(default)]
    pub dropout: f64,
    /// Per-channel latent mean.
    pub latents_mean: Vec<f64>,
    /// Per-channel latent standard deviation.
    pub latents_std: Vec<f64>,
    /// Residual up/down-sampling blocks (Wan 2.2 VAE; not used by Helios).
    #[serde(default)]
    pub is_residual: bool,
    /// Pixel channels in.
    #[serde(default = "n::<3>")]
    pub in_channels: usize,
    /// Pixel channels out.
    #[serde(default = "n::<3>")]
    pub out_channels: usize,
    /// Patchification (Wan 2.2 VAE; `null` for Helios).
    #[serde(default)]
    pub patch_size: Option<usize>,
    /// Temporal compression (4).
    #[serde(default = "n::<4>")]
    pub scale_factor_temporal: usize,
    /// Spatial compression (8).
    #[serde(default = "n::<8>")]
    pub scale_factor_spatial: usize,
}

impl VaeConfig {
    fn default_dim_mult() -> Vec<usize> {
        vec![1, 2, 4, 4]
    }

    fn default_temperal_downsample() -> Vec<bool> {
        vec![false, true, true]
    }

    /// Checks the values the VAE relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            return Err(Error::config(
                path,
                format!(
                    "latents_mean/latents_std must have z_dim = {} values",
                    self.z_dim
                ),
            ));
        }
        if self.latents_std.contains(&0.0) {
            return Err(Error::config(path, "latents_std has a zero"));
        }
        if self.temperal_downsample.len() + 1 != self.dim_mult.len() {
            return Err(Error::config(
                path,
                "temperal_downsample must have len(dim_mult) - 1 entries",
            ));
        }
        if self.is_residual || self.patch_size.is_some() {
            return Err(Error::config(
                path,
                "the Wan 2.2 residual / patchified VAE is not supported",
            ));
        }
        Ok(())
    }
}
