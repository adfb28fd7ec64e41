//! I2V and V2V conditioning: the image or video turned into the prefix latent and the starting
//! history, with the light noise the pipelines add to them.
//!
//! Port of `prepare_image_latents`, `prepare_video_latents` and the noising that follows them in
//! `HeliosPyramidPipeline.__call__` / `HeliosPipeline.__call__` (diffusers 0.42.1). The random draws
//! happen in the reference order: for an image, the posterior eps of the 1-frame encode, of the
//! 33-frame fake-video encode, then sigma (U) and noise (N) for the image latent and again for the
//! fake-image latent; for a video, the posterior eps of frame 0 and of each 33-frame window, then
//! sigma and noise for the frame-0 latent, then 9 per-frame sigmas and noise per window.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::RgbImage;
use image::imageops::FilterType;

use super::noise::{DrawKind, NoiseSource};
use crate::error::{Error, Result};
use crate::vae::WanVae;

/// What a generation is conditioned on besides the prompt.
#[derive(Debug, Clone, Default)]
pub enum Conditioning {
    /// Text to video.
    #[default]
    None,
    /// Image to video: the video continues from this picture.
    Image(RgbImage),
    /// Video to video: the video continues these frames (at least one 33-frame window).
    Video(Vec<RgbImage>),
}

impl Conditioning {
    /// `"t2v"`, `"i2v"` or `"v2v"`.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::None => "t2v",
            Self::Image(_) => "i2v",
            Self::Video(_) => "v2v",
        }
    }
}

/// The sigma ranges of the conditioning noise (the pipelines' `image_noise_sigma_min/max` and
/// `video_noise_sigma_min/max`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConditioningNoise {
    /// Range of the prefix (image / first-frame) latent's sigma.
    pub image: (f64, f64),
    /// Range of the fake-image / video latents' sigmas.
    pub video: (f64, f64),
}

impl Default for ConditioningNoise {
    fn default() -> Self {
        Self {
            image: (0.111, 0.135),
            video: (0.111, 0.135),
        }
    }
}

/// Prepared conditioning latents (diffusion space).
#[derive(Debug, Clone)]
pub struct ConditioningLatents<B: Backend> {
    /// The prefix latent `[1, c, 1, h, w]` (short-history slot 0 of every chunk).
    pub prefix: Tensor<B, 5>,
    /// Latents to put at the end of the history window `[1, c, t, h, w]`.
    pub history: Tensor<B, 5>,
}

/// Pixel frames `[1, 3, t, height, width]` in `[-1, 1]` (`u8 / 255 * 2 - 1`, as the pipelines'
/// video processor maps them), resized with Lanczos3 when their size differs.
pub fn frames_to_tensor<B: Backend>(
    frames: &[RgbImage],
    height: usize,
    width: usize,
    device: &B::Device,
) -> Tensor<B, 5> {
    let plane = height * width;
    let t = frames.len();
    let mut values = vec![0.0f32; 3 * t * plane];
    for (f, frame) in frames.iter().enumerate() {
        let resized;
        let frame = if frame.width() as usize == width && frame.height() as usize == height {
            frame
        } else {
            resized =
                image::imageops::resize(frame, width as u32, height as u32, FilterType::Lanczos3);
            &resized
        };
        for (i, px) in frame.pixels().enumerate() {
            for c in 0..3 {
                values[(c * t + f) * plane + i] = (px.0[c] as f32 / 255.0) * 2.0 - 1.0;
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 3, t, height, width]), device)
}

fn draw<B: Backend, const D: usize>(
    noise: &mut dyn NoiseSource,
    kind: DrawKind,
    shape: [usize; D],
    device: &B::Device,
) -> Result<Tensor<B, D>> {
    let values = noise.draw(kind, &shape)?;
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

/// `sigma = u * (max - min) + min`: the width in f64 (Python floats), each operation in f32 (the
/// tensor's dtype), as the pipelines compute it.
fn sigma_from(u: f32, (min, max): (f64, f64)) -> f32 {
    u * (max - min) as f32 + min as f32
}

/// Encodes `video` and samples its posterior with a draw from `noise`, in diffusion space.
fn encode_sample<B: Backend>(
    vae: &WanVae<B>,
    video: Tensor<B, 5>,
    noise: &mut dyn NoiseSource,
) -> Result<Tensor<B, 5>> {
    let posterior = vae.encode(video)?;
    let eps = draw(
        noise,
        DrawKind::Normal,
        posterior.mean.dims(),
        &posterior.mean.device(),
    )?;
    vae.normalize(posterior.sample(eps)?)
}

/// `sigma * eps + (1 - sigma) * z` with `sigma` drawn in `range` (one value).
fn noised<B: Backend>(
    z: Tensor<B, 5>,
    range: (f64, f64),
    noise: &mut dyn NoiseSource,
) -> Result<Tensor<B, 5>> {
    let device = z.device();
    let u = noise.draw(DrawKind::Uniform, &[1])?;
    let sigma = sigma_from(u.first().copied().unwrap_or(0.0), range);
    let eps = draw(noise, DrawKind::Normal, z.dims(), &device)?;
    Ok(eps.mul_scalar(sigma) + z.mul_scalar(1.0 - sigma))
}

/// `sigma_t * eps + (1 - sigma_t) * z` with one `sigma_t` drawn in `range` per latent frame.
fn noised_per_frame<B: Backend>(
    z: Tensor<B, 5>,
    (lo, hi): (f64, f64),
    noise: &mut dyn NoiseSource,
) -> Result<Tensor<B, 5>> {
    let device = z.device();
    let t = z.dims()[2];
    let u = draw::<B, 5>(noise, DrawKind::Uniform, [1, 1, t, 1, 1], &device)?;
    let frame_sigmas = u.mul_scalar((hi - lo) as f32).add_scalar(lo as f32);
    let eps = draw(noise, DrawKind::Normal, z.dims(), &device)?;
    Ok(frame_sigmas.clone() * eps + frame_sigmas.neg().add_scalar(1.0) * z)
}

/// The size conditioning is encoded at: the video's `height x width` and the chunk length in
/// latent frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditioningSize {
    /// Video height in pixels.
    pub height: usize,
    /// Video width in pixels.
    pub width: usize,
    /// Latent frames per chunk.
    pub latent_frames_per_chunk: usize,
}

/// Encodes an image (I2V) at `height x width`: the prefix is the noised image latent, the history
/// ends with the noised last latent frame of the image repeated over one chunk (`fake_image_latents`).
pub fn prepare_image<B: Backend>(
    vae: &WanVae<B>,
    image: &RgbImage,
    size: ConditioningSize,
    sigmas: ConditioningNoise,
    noise: &mut dyn NoiseSource,
    device: &B::Device,
) -> Result<ConditioningLatents<B>> {
    let ConditioningSize {
        height,
        width,
        latent_frames_per_chunk,
    } = size;
    let x = frames_to_tensor::<B>(std::slice::from_ref(image), height, width, device);
    let image_latents = encode_sample(vae, x.clone(), noise)?;
    let min_frames = (latent_frames_per_chunk - 1) * vae.temporal_factor() + 1;
    let fake = encode_sample(vae, x.repeat_dim(2, min_frames), noise)?;
    let t = fake.dims()[2];
    let fake = fake.narrow(2, t - 1, 1);
    let prefix = noised(image_latents, sigmas.image, noise)?;
    let history = noised(fake, sigmas.video, noise)?;
    Ok(ConditioningLatents { prefix, history })
}

/// Encodes a video (V2V) at `height x width`: frame 0 alone gives the prefix; the last
/// `floor(n / 33) * 33` frames, in 33-frame windows each encoded with a fresh cache, give the
/// history (9 latent frames per window), each latent frame noised with its own sigma.
pub fn prepare_video<B: Backend>(
    vae: &WanVae<B>,
    frames: &[RgbImage],
    size: ConditioningSize,
    sigmas: ConditioningNoise,
    noise: &mut dyn NoiseSource,
    device: &B::Device,
) -> Result<ConditioningLatents<B>> {
    let ConditioningSize {
        height,
        width,
        latent_frames_per_chunk,
    } = size;
    let min_frames = (latent_frames_per_chunk - 1) * vae.temporal_factor() + 1;
    let windows = frames.len() / min_frames;
    if windows == 0 {
        return Err(Error::InvalidRequest(format!(
            "the conditioning video has {} frames; it needs at least {min_frames}",
            frames.len()
        )));
    }
    let start = frames.len() - windows * min_frames;
    let first = frames_to_tensor::<B>(&frames[..1], height, width, device);
    let first_latent = encode_sample(vae, first, noise)?;
    let mut latents = Vec::with_capacity(windows);
    for i in 0..windows {
        let from = start + i * min_frames;
        let window = frames_to_tensor::<B>(&frames[from..from + min_frames], height, width, device);
        latents.push(encode_sample(vae, window, noise)?);
    }
    let prefix = noised(first_latent, sigmas.image, noise)?;
    let mut noisy = Vec::with_capacity(windows);
    for z in latents {
        noisy.push(noised_per_frame(z, sigmas.video, noise)?);
    }
    Ok(ConditioningLatents {
        prefix,
        history: Tensor::cat(noisy, 2),
    })
}

/// Encodes the most recent frames of a live video (a game's rendered picture) for a running
/// stream: the last `1 + 4k` frames (at most one chunk's window, 33 frames), encoded as one window
/// with a fresh cache, give `1 + k` history latents, each noised with its own sigma as
/// [`prepare_video`] does; the window's first latent (its first frame alone, the VAE being causal)
/// noised in the image range is the prefix a stream without one takes.
pub fn prepare_recent_frames<B: Backend>(
    vae: &WanVae<B>,
    frames: &[RgbImage],
    size: ConditioningSize,
    sigmas: ConditioningNoise,
    noise: &mut dyn NoiseSource,
    device: &B::Device,
) -> Result<ConditioningLatents<B>> {
    let ConditioningSize {
        height,
        width,
        latent_frames_per_chunk,
    } = size;
    if frames.is_empty() {
        return Err(Error::InvalidRequest(
            "no video frames to condition on".into(),
        ));
    }
    if let Some(i) = frames
        .iter()
        .position(|f| f.width() == 0 || f.height() == 0)
    {
        return Err(Error::InvalidRequest(format!(
            "video frame {i} is empty (0 pixels)"
        )));
    }
    let factor = vae.temporal_factor();
    let latents = ((frames.len() - 1) / factor + 1).min(latent_frames_per_chunk);
    let used = (latents - 1) * factor + 1;
    let window = frames_to_tensor::<B>(&frames[frames.len() - used..], height, width, device);
    let z = encode_sample(vae, window, noise)?;
    let prefix = noised(z.clone().narrow(2, 0, 1), sigmas.image, noise)?;
    let history = noised_per_frame(z, sigmas.video, noise)?;
    Ok(ConditioningLatents { prefix, history })
}
