//! Generation, from a loaded checkpoint to decoded frames.
//!
//! - [`model`]: [`HeliosPipeline`], the loaded parts with the checkpoint's defaults and request
//!   validation;
//! - [`conditioning`]: the I2V / V2V image and video latents;
//! - [`history`]: the fixed history window and its long / mid / 1x split;
//! - [`prompt`]: prompt embeddings, cached, and prompt switches interpolated over chunks;
//! - [`denoise`]: the per-chunk denoising loop (single-stage or pyramid) shared by every mode;
//! - [`noise`]: the pluggable noise source (seeded for users, replayed for conformance);
//! - [`request`]: [`StreamRequest`] and its [`GenerationParams`], `None` meaning the checkpoint's
//!   default;
//! - [`stream`]: [`ChunkStream`], the streaming generator a game drives chunk by chunk;
//! - [`video`]: the batch pipelines, a stream run for a fixed number of chunks;
//! - [`frames`]: decoded frames and their 8-bit conversion.

pub mod conditioning;
pub mod denoise;
pub mod frames;
pub mod history;
pub mod model;
pub mod noise;
pub mod prompt;
pub mod request;
pub mod stream;
pub mod video;

pub use conditioning::{Conditioning, ConditioningNoise};
pub use denoise::{ChunkDenoiser, DitCall, Sampling};
pub use frames::Frames;
pub use history::{HistoryBuffer, HistoryLayout};
pub use model::ResolvedRequest;
pub use model::{HeliosPipeline, LoadOptions, Part};
pub use noise::{DrawKind, NoiseSource, RecordedDraw, ReplayNoise, SeededNoise};
pub use request::{GenerationParams, StreamRequest};
pub use stream::{ChunkStream, VideoChunk};
pub use video::{GeneratedVideo, VideoPlan};
