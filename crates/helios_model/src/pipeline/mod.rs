//! Generation: the per-chunk denoising loop shared by the single-stage and pyramid pipelines, and
//! the pluggable noise source (seeded for users, replayed for conformance).
//!
//! The streaming chunk generator and the batch T2V / I2V / V2V entry points are built on these.

pub mod denoise;
pub mod noise;

pub use denoise::{ChunkDenoiser, DitCall, Sampling};
pub use noise::{DrawKind, NoiseSource, RecordedDraw, ReplayNoise, SeededNoise};
