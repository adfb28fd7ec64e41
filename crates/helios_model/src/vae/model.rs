//! The whole Wan VAE: loading, chunked encode / decode, the posterior and the latent normalisation.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::cache::CausalConvCache;
use super::causal_conv::WanCausalConv3d;
use super::decoder::WanDecoder3d;
use super::encoder::WanEncoder3d;
use crate::config::{VaeConfig, read_json};
use crate::error::{Error, Result};
use crate::weights::{KeyMap, LoadProgress, SafetensorsSet, load_module};

/// Port of diffusers `AutoencoderKLWan` (autoencoder_kl_wan.py, diffusers 0.42.1): the modules.
#[derive(Module, Debug)]
pub struct AutoencoderKLWan<B: Backend> {
    /// Pixels → `2 * z_dim` channels.
    pub encoder: WanEncoder3d<B>,
    /// 1x1x1 convolution after the encoder.
    pub quant_conv: WanCausalConv3d<B>,
    /// 1x1x1 convolution before the decoder.
    pub post_quant_conv: WanCausalConv3d<B>,
    /// Latents → pixels.
    pub decoder: WanDecoder3d<B>,
}

impl<B: Backend> AutoencoderKLWan<B> {
    /// Builds the modules of `config` (parameters lazily zero until loaded).
    pub fn new(config: &VaeConfig, device: &B::Device) -> Self {
        let z = config.z_dim;
        let temperal_upsample: Vec<bool> =
            config.temperal_downsample.iter().rev().copied().collect();
        Self {
            encoder: WanEncoder3d::new(
                config.in_channels,
                config.base_dim,
                z * 2,
                &config.dim_mult,
                config.num_res_blocks,
                &config.attn_scales,
                &config.temperal_downsample,
                device,
            ),
            quant_conv: WanCausalConv3d::cubic(z * 2, z * 2, 1, 0, device),
            post_quant_conv: WanCausalConv3d::cubic(z, z, 1, 0, device),
            decoder: WanDecoder3d::new(
                config.decoder_base_dim.unwrap_or(config.base_dim),
                z,
                &config.dim_mult,
                config.num_res_blocks,
                &temperal_upsample,
                config.out_channels,
                device,
            ),
        }
    }
}

/// The key table of the VAE: burn paths that differ from the diffusers checkpoint keys.
pub fn vae_key_map() -> KeyMap {
    KeyMap::new(&[
        // `EncoderLayer` variants are not path segments.
        (".Residual.", "."),
        (".Attention.", "."),
        (".Resample.", "."),
        // `WanResample.resample` is an nn.Sequential whose convolution is entry 1.
        ("resample.weight", "resample.1.weight"),
        ("resample.bias", "resample.1.bias"),
        // `WanRMS_norm` stores its scale as `gamma` (the loader calls a norm's gamma `weight`).
        ("norm1.weight", "norm1.gamma"),
        ("norm2.weight", "norm2.gamma"),
        ("norm_out.weight", "norm_out.gamma"),
        ("norm.weight", "norm.gamma"),
    ])
}

/// Frames per encoder chunk after the first (upstream's literal `4`, whatever the config).
const ENCODE_GROUP: usize = 4;

/// The diagonal Gaussian posterior of an encode (upstream `DiagonalGaussianDistribution`), in VAE space.
#[derive(Debug, Clone)]
pub struct Posterior<B: Backend> {
    /// `[b, z_dim, t, h, w]`.
    pub mean: Tensor<B, 5>,
    /// `[b, z_dim, t, h, w]`, clamped to `[-30, 20]`.
    pub logvar: Tensor<B, 5>,
}

impl<B: Backend> Posterior<B> {
    /// `mean + exp(0.5 * logvar) * eps`; `eps` is the standard-normal draw of the caller's noise
    /// source, shaped like `mean`.
    pub fn sample(&self, eps: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
        check_same_shape("posterior eps", &self.mean.dims(), &eps.dims())?;
        Ok(self.mean.clone() + self.logvar.clone().mul_scalar(0.5).exp() * eps)
    }

    /// The mode (the mean).
    pub fn mode(&self) -> Tensor<B, 5> {
        self.mean.clone()
    }
}

fn check_same_shape(what: &str, expected: &[usize], got: &[usize]) -> Result<()> {
    if expected != got {
        return Err(Error::Shape {
            what: what.into(),
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
        });
    }
    Ok(())
}

/// The Wan VAE as the Helios pipelines use it: chunked decode and encode with a fresh causal cache
/// per call, and the normalisation between VAE space and diffusion space.
#[derive(Debug)]
pub struct WanVae<B: Backend> {
    model: AutoencoderKLWan<B>,
    config: VaeConfig,
    /// `latents_mean` as f32, `[z_dim]`.
    mean: Vec<f32>,
    /// `1 / latents_std` computed in f32, `[z_dim]` (the pipeline's reciprocal form).
    inv_std: Vec<f32>,
}

impl<B: Backend> WanVae<B> {
    /// Loads `vae_dir/config.json` and `vae_dir/diffusion_pytorch_model.safetensors` (or its sharded
    /// index) onto `device`.
    pub fn load(vae_dir: &Path, device: &B::Device) -> Result<Self> {
        Self::load_with_progress(vae_dir, device, &mut |_| {})
    }

    /// [`WanVae::load`], reporting progress per tensor.
    pub fn load_with_progress(
        vae_dir: &Path,
        device: &B::Device,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self> {
        let config_path = vae_dir.join("config.json");
        let config: VaeConfig = read_json(&config_path)?;
        config.validate(&config_path)?;
        let set = SafetensorsSet::open("vae", vae_dir, "diffusion_pytorch_model")?;
        let (model, _report) = load_module(
            AutoencoderKLWan::new(&config, device),
            &set,
            &vae_key_map(),
            progress,
        )?;
        Ok(Self::from_parts(model, config))
    }

    /// Wraps loaded modules.
    pub fn from_parts(model: AutoencoderKLWan<B>, config: VaeConfig) -> Self {
        let mean = config.latents_mean.iter().map(|&m| m as f32).collect();
        let inv_std = config
            .latents_std
            .iter()
            .map(|&s| 1.0f32 / s as f32)
            .collect();
        Self {
            model,
            config,
            mean,
            inv_std,
        }
    }

    /// The config.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The modules.
    pub fn model(&self) -> &AutoencoderKLWan<B> {
        &self.model
    }

    /// Spatial compression: 2 per down-sampling level.
    pub fn spatial_factor(&self) -> usize {
        1 << self.config.dim_mult.len().saturating_sub(1)
    }

    /// Temporal compression: 2 per temporal down-sampling level.
    pub fn temporal_factor(&self) -> usize {
        1 << self
            .config
            .temperal_downsample
            .iter()
            .filter(|&&t| t)
            .count()
    }

    fn channel_vector(&self, values: &[f32], device: &B::Device) -> Tensor<B, 5> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [1, values.len(), 1, 1, 1]),
            device,
        )
    }

    /// VAE space → diffusion space: `(z - latents_mean) * (1 / latents_std)`.
    pub fn normalize(&self, z: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
        self.check_latents("latents", &z)?;
        let device = z.device();
        Ok((z - self.channel_vector(&self.mean, &device))
            * self.channel_vector(&self.inv_std, &device))
    }

    /// Diffusion space → VAE space: `z / (1 / latents_std) + latents_mean` (the reciprocal form, as the
    /// pipelines compute it).
    pub fn denormalize(&self, z: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
        self.check_latents("latents", &z)?;
        let device = z.device();
        Ok(z / self.channel_vector(&self.inv_std, &device)
            + self.channel_vector(&self.mean, &device))
    }

    fn check_latents(&self, what: &str, z: &Tensor<B, 5>) -> Result<()> {
        let [b, c, t, h, w] = z.dims();
        if c != self.config.z_dim || b == 0 || t == 0 || h == 0 || w == 0 {
            return Err(Error::Shape {
                what: what.into(),
                expected: format!("[b >= 1, {}, t >= 1, h >= 1, w >= 1]", self.config.z_dim),
                got: format!("{:?}", z.dims()),
            });
        }
        Ok(())
    }

    /// Decodes diffusion-space latents `[b, z_dim, t, h, w]` (as the denoiser produces them) to a video
    /// `[b, out_channels, 1 + 4 (t - 1), 8 h, 8 w]` in `[-1, 1]`, with a fresh causal cache.
    pub fn decode(&self, latents_normalized: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
        let z = self.denormalize(latents_normalized)?;
        self.decode_vae_space(z)
    }

    /// Decodes VAE-space latents (upstream `AutoencoderKLWan.decode`): `post_quant_conv`, then latent
    /// frame 0 alone and every later frame with the caches of the earlier ones, then clamp to `[-1, 1]`.
    pub fn decode_vae_space(&self, z: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
        self.check_latents("VAE latents", &z)?;
        let t = z.dims()[2];
        let x = self.model.post_quant_conv.forward(z);
        let mut cache = CausalConvCache::new();
        let frames: Vec<Tensor<B, 5>> = (0..t)
            .map(|i| {
                self.model
                    .decoder
                    .forward(x.clone().narrow(2, i, 1), &mut cache)
            })
            .collect();
        Ok(Tensor::cat(frames, 2).clamp(-1.0, 1.0))
    }

    /// Encodes a video `[b, in_channels, t, h, w]` in `[-1, 1]` (`h`, `w` multiples of
    /// [`WanVae::spatial_factor`]) to its posterior over `1 + (t - 1) / 4` latent frames: frame 0
    /// alone, then groups of 4 with a fresh causal cache (frames past the last full group are
    /// dropped, as upstream does).
    pub fn encode(&self, video: Tensor<B, 5>) -> Result<Posterior<B>> {
        let [b, c, t, h, w] = video.dims();
        let f = self.spatial_factor();
        if c != self.config.in_channels
            || b == 0
            || t == 0
            || h == 0
            || w == 0
            || h % f != 0
            || w % f != 0
        {
            return Err(Error::Shape {
                what: "video".into(),
                expected: format!(
                    "[b >= 1, {}, t >= 1, h and w positive multiples of {f}]",
                    self.config.in_channels
                ),
                got: format!("{:?}", video.dims()),
            });
        }
        let group = ENCODE_GROUP;
        let chunks = 1 + (t - 1) / group;
        let mut cache = CausalConvCache::new();
        let outs: Vec<Tensor<B, 5>> = (0..chunks)
            .map(|i| {
                let (start, len) = if i == 0 {
                    (0, 1)
                } else {
                    (1 + group * (i - 1), group)
                };
                self.model
                    .encoder
                    .forward(video.clone().narrow(2, start, len), &mut cache)
            })
            .collect();
        let enc = self.model.quant_conv.forward(Tensor::cat(outs, 2));
        let z = self.config.z_dim;
        let mean = enc.clone().narrow(1, 0, z);
        let logvar = enc.narrow(1, z, z).clamp(-30.0, 20.0);
        Ok(Posterior { mean, logvar })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    type B = TestBackend;

    fn tiny() -> WanVae<B> {
        let config: VaeConfig = serde_json::from_value(serde_json::json!({
            "base_dim": 4, "z_dim": 4, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
            "latents_mean": [0.5, -0.5, 1.0, 0.0], "latents_std": [2.0, 1.5, 1.0, 3.0],
        }))
        .unwrap_or_else(|e| panic!("config: {e}"));
        WanVae::from_parts(AutoencoderKLWan::new(&config, &Default::default()), config)
    }

    #[test]
    fn decode_and_encode_shapes() {
        let vae = tiny();
        let device = Default::default();
        let video = vae
            .decode(Tensor::<B, 5>::zeros([1, 4, 3, 2, 3], &device))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(video.dims(), [1, 3, 9, 16, 24]);
        let posterior = vae
            .encode(Tensor::<B, 5>::zeros([2, 3, 6, 16, 8], &device))
            .unwrap_or_else(|e| panic!("{e}"));
        // 1 + (6 - 1) / 4 = 2 latent frames: the frame past the last group of 4 is dropped.
        assert_eq!(posterior.mean.dims(), [2, 4, 2, 2, 1]);
        assert_eq!(posterior.logvar.dims(), [2, 4, 2, 2, 1]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let vae = tiny();
        let device = Default::default();
        assert!(matches!(
            vae.decode(Tensor::<B, 5>::zeros([1, 5, 1, 2, 2], &device)),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            vae.decode(Tensor::<B, 5>::zeros([1, 4, 0, 2, 2], &device)),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            vae.encode(Tensor::<B, 5>::zeros([1, 3, 1, 12, 16], &device)),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            vae.encode(Tensor::<B, 5>::zeros([1, 4, 1, 16, 16], &device)),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            vae.encode(Tensor::<B, 5>::zeros([1, 3, 0, 16, 16], &device)),
            Err(Error::Shape { .. })
        ));
        let posterior = Posterior {
            mean: Tensor::<B, 5>::zeros([1, 4, 1, 2, 2], &device),
            logvar: Tensor::zeros([1, 4, 1, 2, 2], &device),
        };
        assert!(matches!(
            posterior.sample(Tensor::zeros([1, 4, 2, 2, 2], &device)),
            Err(Error::Shape { .. })
        ));
    }

    #[test]
    fn normalisation_round_trips_in_reciprocal_form() {
        let vae = tiny();
        let device = Default::default();
        let z = Tensor::<B, 5>::ones([1, 4, 1, 1, 1], &device);
        let n = vae.normalize(z.clone()).unwrap_or_else(|e| panic!("{e}"));
        let expected = [
            (1.0 - 0.5) * (1.0 / 2.0f32),
            (1.0 + 0.5) * (1.0 / 1.5f32),
            0.0,
            1.0 * (1.0 / 3.0f32),
        ];
        assert_eq!(
            n.clone().into_data().to_vec::<f32>().unwrap_or_default(),
            expected
        );
        let back = vae.denormalize(n).unwrap_or_else(|e| panic!("{e}"));
        back.into_data()
            .assert_approx_eq::<f32>(&z.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }
}
