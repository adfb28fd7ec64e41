//! Stage 1: the Wan VAE trained as an autoencoder on the face frames.
//!
//! Each step encodes frames (random crops where the crop is smaller than the frame; the default is
//! the whole 128x128 frame, which trained faster than batches of 64x64 crops: the middle block's
//! attention then sees the whole face, as at inference), samples the posterior, decodes it and
//! takes an L1 + L2 reconstruction loss with a small KL term. The causal encoder and decoder run
//! exactly as in inference (first frame alone, then groups of four, with the causal cache).
//!
//! Training starts from a VAE that treats a video frame by frame ([`per_frame_start`]): every
//! causal convolution sees only its current frame, the encoder's time down-sampling keeps the last
//! frame of each pair and the decoder's time up-sampling repeats each frame. Such a VAE is an image
//! autoencoder, so most steps train it on single frames (a third of the work of a video frame per
//! convolution: a lone frame's convolutions skip the taps that see the causal zero padding); the
//! last steps train on short windows of video, where the temporal taps, which start at zero,
//! learn motion.

use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::optim::AdamWConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use helios_model::config::VaeConfig;
use helios_model::random::random_vae;
use helios_model::vae::{AutoencoderKLWan, CausalConvCache, WanVae};
use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::video_tensor;
use crate::error::{Result, TrainError};
use crate::schedule::LearningRate;
use crate::step::{StepAt, normal, optimiser_step};
use crate::{Progress, TrainPart};

/// How the VAE is trained.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeTraining {
    /// Optimiser steps on single frames.
    pub image_steps: usize,
    /// Crops per single-frame step.
    pub image_batch: usize,
    /// Optimiser steps on video windows, after the single-frame ones.
    pub video_steps: usize,
    /// Frames per video window (`1 + 4k`).
    pub frames: usize,
    /// Peak learning rate (AdamW).
    pub learning_rate: f64,
    /// Side of the square crop (a multiple of 8).
    pub crop: u32,
    /// Weight of the KL term.
    pub kl_weight: f32,
}

impl VaeTraining {
    /// Steps in all.
    pub fn steps(&self) -> usize {
        self.image_steps + self.video_steps
    }
}

impl Default for VaeTraining {
    fn default() -> Self {
        Self {
            image_steps: 2800,
            image_batch: 1,
            video_steps: 200,
            frames: 5,
            learning_rate: 3e-3,
            crop: 128,
            kl_weight: 1e-6,
        }
    }
}

fn crop(frames: &[RgbImage], x: u32, y: u32, side: u32) -> Vec<RgbImage> {
    frames
        .iter()
        .map(|f| image::imageops::crop_imm(f, x, y, side, side).to_image())
        .collect()
}

/// Trains a VAE of `config` from random weights on windows of `videos` (each a run of frames).
pub fn train_vae<B: AutodiffBackend>(
    config: &VaeConfig,
    videos: &[Vec<RgbImage>],
    options: &VaeTraining,
    seed: u64,
    device: &B::Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<AutoencoderKLWan<B::InnerBackend>> {
    let frames = options.frames;
    if frames == 0
        || !(frames - 1).is_multiple_of(4)
        || options.crop == 0
        || !options.crop.is_multiple_of(8)
    {
        return Err(TrainError::Options(format!(
            "VAE windows need 1 + 4k frames and a crop that is a multiple of 8 (got {frames} frames, crop {})",
            options.crop
        )));
    }
    let usable: Vec<&Vec<RgbImage>> = videos
        .iter()
        .filter(|v| {
            v.len() >= frames
                && v.first()
                    .is_some_and(|f| f.width() >= options.crop && f.height() >= options.crop)
        })
        .collect();
    if usable.is_empty() {
        return Err(TrainError::Options(
            "no video is long and large enough for a VAE window".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let model: AutoencoderKLWan<B> = random_vae::<B>(config, seed, device).model().clone();
    let mut model = per_frame_start(model);
    // Start with a near-deterministic posterior (log-variance -8): the pipelines sample it when
    // they encode a conditioning image, so it must stay narrow, and the reconstruction can use the
    // latents from the first step instead of first learning to shrink the noise.
    let z = config.z_dim;
    let bias = model.quant_conv.bias.val().inner();
    let device_inner = bias.device();
    let bias = Tensor::cat(
        vec![bias.narrow(0, 0, z), Tensor::full([z], -8.0, &device_inner)],
        0,
    );
    model.quant_conv.bias = Param::from_tensor(Tensor::from_inner(bias));
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let steps = options.steps();
    let schedule = LearningRate::new(options.learning_rate, steps);
    for step in 0..steps {
        let (count, length) = if step < options.image_steps {
            (options.image_batch.max(1), 1)
        } else {
            (1, frames)
        };
        let windows: Vec<Tensor<B, 5>> = (0..count)
            .map(|_| {
                let video = usable[rng.random_range(0..usable.len())];
                let start = rng.random_range(0..=video.len() - length);
                let (w, h) = (video[0].width(), video[0].height());
                let x = rng.random_range(0..=(w - options.crop) / 8) * 8;
                let y = rng.random_range(0..=(h - options.crop) / 8) * 8;
                let window = crop(&video[start..start + length], x, y, options.crop);
                video_tensor::<B>(&window, device)
            })
            .collect();
        let input = Tensor::cat(windows, 0);

        let vae = WanVae::from_parts(model.clone(), config.clone());
        let posterior = vae.encode(input.clone())?;
        let eps = normal(&mut rng, posterior.mean.dims(), device);
        let z = posterior.sample(eps)?;
        let recon = decode_unclamped(&model, z);
        let diff = recon - input;
        let kl = (posterior.mean.clone().powi_scalar(2) + posterior.logvar.clone().exp()
            - posterior.logvar
            - 1.0)
            .mean()
            .mul_scalar(0.5);
        let loss = diff.clone().abs().mean()
            + diff.powi_scalar(2).mean()
            + kl.mul_scalar(options.kl_weight);
        let at = StepAt {
            part: TrainPart::Vae,
            step,
            steps,
            learning_rate: schedule.at(step),
        };
        model = optimiser_step(model, &mut optim, loss, at, progress)?;
    }
    Ok(model.valid())
}

/// `model` as a per-frame VAE: each causal 3x3x3 convolution keeps only its last temporal tap
/// (the current frame), each encoder time down-sampling keeps the later frame of its pair and each
/// decoder time up-sampling repeats its frame. The spatial weights are left as they are.
pub fn per_frame_start<B: AutodiffBackend>(model: AutoencoderKLWan<B>) -> AutoencoderKLWan<B> {
    model.map(&mut PerFrame { path: Vec::new() })
}

struct PerFrame {
    path: Vec<String>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for PerFrame {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let time_conv = self.path.iter().any(|p| p == "time_conv");
        let weight = self.path.last().is_some_and(|p| p == "weight");
        let (id, t, _) = param.consume();
        let t = per_frame_value(t.inner(), time_conv, weight);
        Param::initialized(id, Tensor::from_inner(t).require_grad())
    }
}

fn per_frame_value<B: Backend, const D: usize>(
    t: Tensor<B, D>,
    time_conv: bool,
    weight: bool,
) -> Tensor<B, D> {
    if time_conv && !weight {
        return t.zeros_like();
    }
    let dims = t.dims().to_vec();
    if dims.len() != 5 || dims[2] < 2 {
        return t;
    }
    let (c_out, c_in, kt, taps) = (dims[0], dims[1], dims[2], dims[3] * dims[4]);
    let n: usize = dims.iter().product();
    let values: Vec<f32> = if time_conv {
        // A [c_out, c_in, kt, 1, 1] time convolution: the identity on the last tap, once per
        // group of c_in output channels (one group down-sampling, two when up-sampling).
        let mut values = vec![0.0f32; n];
        for o in 0..c_out {
            values[(o * c_in + o % c_in) * kt + kt - 1] = 1.0;
        }
        values
    } else {
        // Every temporal tap but the last zeroed (a mask on the weights).
        (0..n)
            .map(|i| if (i / taps) % kt + 1 == kt { 1.0 } else { 0.0 })
            .collect()
    };
    let values =
        Tensor::<B, 1>::from_data(TensorData::new(values, [n]), &t.device()).reshape(t.shape());
    if time_conv { values } else { t * values }
}

/// The VAE decode without the final clamp to `[-1, 1]` (a clamped pixel passes no gradient).
fn decode_unclamped<B: AutodiffBackend>(
    model: &AutoencoderKLWan<B>,
    z: Tensor<B, 5>,
) -> Tensor<B, 5> {
    let t = z.dims()[2];
    let x = model.post_quant_conv.forward(z);
    let mut cache = CausalConvCache::new();
    let frames = (0..t)
        .map(|i| model.decoder.forward(x.clone().narrow(2, i, 1), &mut cache))
        .collect();
    Tensor::cat(frames, 2)
}

/// Per-channel mean and standard deviation of the posterior means of `videos` (each `1 + 4k`
/// frames), to normalise the DiT's latents (`latents_mean` / `latents_std` in the VAE config).
pub fn latent_statistics<B: burn::tensor::backend::Backend>(
    vae: &WanVae<B>,
    videos: &[Vec<RgbImage>],
    device: &B::Device,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let z = vae.config().z_dim;
    let mut sum = vec![0f64; z];
    let mut sq = vec![0f64; z];
    let mut n = 0usize;
    for video in videos {
        let mean = vae.encode(video_tensor::<B>(video, device))?.mode();
        let [_, c, t, h, w] = mean.dims();
        let values: Vec<f32> = mean
            .into_data()
            .convert::<f32>()
            .into_vec()
            .unwrap_or_default();
        let per = t * h * w;
        for ch in 0..c.min(z) {
            for &v in &values[ch * per..(ch + 1) * per] {
                sum[ch] += v as f64;
                sq[ch] += (v as f64) * (v as f64);
            }
        }
        n += per;
    }
    let n = n.max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std: Vec<f32> = sq
        .iter()
        .zip(&sum)
        .map(|(q, s)| ((q / n - (s / n) * (s / n)).max(1e-8).sqrt()) as f32)
        .collect();
    Ok((mean, std))
}
