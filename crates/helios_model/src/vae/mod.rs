//! The Wan 2.1 VAE (`AutoencoderKLWan`, diffusers 0.42.1): decode of denoised latents to video and
//! encode of conditioning images / videos, both chunked in time through a causal convolution cache.
//!
//! * [`cache`]: [`CausalConvCache`], the per-call runtime state (not a module).
//! * [`causal_conv`]: [`WanCausalConv3d`] and the per-frame 2-D convolution, as im2col + matmul.
//! * [`resblock`]: the RMS norm and residual block; [`attention`]: per-frame attention and the
//!   middle block; [`resample`]: up / down-sampling with its temporal convolution.
//! * [`encoder`], [`decoder`]: the two halves; [`model`]: [`WanVae`] (load, encode, decode,
//!   normalise) and [`Posterior`].
//!
//! Tensors are `[b, c, t, h, w]` throughout. A video of `1 + 4 k` frames maps to `1 + k` latent frames
//! and back; latents in *diffusion space* are `(z - latents_mean) * (1 / latents_std)`.

pub mod attention;
pub mod cache;
pub mod causal_conv;
pub mod decoder;
pub mod encoder;
mod host;
pub mod model;
pub mod resample;
pub mod resblock;

pub use cache::{CacheSlot, CausalConvCache};
pub use causal_conv::WanCausalConv3d;
pub use model::{AutoencoderKLWan, Posterior, WanVae, vae_key_map};
