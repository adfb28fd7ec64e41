//! A burn port of **Helios**, the autoregressive video diffusion model (PKU-YuanGroup + ByteDance),
//! following PyPI `diffusers==0.42.1` (`HeliosTransformer3DModel`, `HeliosPipeline`,
//! `HeliosPyramidPipeline`, `HeliosScheduler`, `HeliosDMDScheduler`, `AutoencoderKLWan`) and
//! `transformers` (`UMT5EncoderModel`).
//!
//! The data path, one module each: [`config`] + [`weights`] (checkpoint loading) → [`text`] (tokenizer
//! and UMT5) / [`dit`] (the DiT with its three-scale history compaction) / [`vae`] (Wan VAE) /
//! [`scheduler`] (DMD and UniPC) → [`pipeline`] (T2V / I2V / V2V, built on a streaming chunk generator).
//! Everything is generic over `burn::tensor::backend::Backend`. [`embedded`] is the tiny default
//! checkpoint compiled into the crate; [`random`] builds the parts from configs alone, with random
//! weights, for benchmarks at the real shapes.

pub mod config;
pub mod dit;
pub mod embedded;
pub mod error;
pub mod ops;
pub mod pipeline;
pub mod random;
pub mod save;
pub mod scheduler;
pub mod text;
pub mod vae;
pub mod weights;

pub use error::{Error, Result};

/// The backend unit tests run on.
#[cfg(test)]
pub(crate) type TestBackend = burn::backend::NdArray<f32>;
