//! What the worker drives: the [`ChunkEngine`] trait and the chunks it returns (a stream is
//! asked for with `helios_model`'s [`StreamRequest`]). The implementation on the Helios streaming
//! generator is in [`helios_engine`](super::helios_engine).
//!
//! Several streams share one engine (one loaded model); the worker decides which stream makes
//! the next chunk.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use helios_model::pipeline::StreamRequest;

use crate::error::WorkerResult;
use crate::frame::Frame;
use crate::options::{EngineBackend, EnginePrecision};

/// Identifies a stream inside one worker (chosen by the host: a game plugin may use an entity's
/// bits, a server a counter).
pub type StreamId = u64;

/// One generated chunk: its frames (RGBA8 rows, or left on the GPU) with their statistics.
#[derive(Clone, Debug)]
pub struct EngineChunk {
    /// Chunk number within its stream (0, 1, ...).
    pub index: usize,
    /// The frames.
    pub frames: Vec<Frame>,
}

/// How the worker loads its engine. The default is the embedded demo model on the CPU.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// The checkpoint folder; `None` = the embedded demo model (resolved on the worker thread,
    /// which may write it into the cache folder first).
    pub model_dir: Option<PathBuf>,
    /// The burn backend.
    pub backend: EngineBackend,
    /// For [`EngineBackend::Wgpu`]: a burn wgpu device built on a renderer's wgpu device (one GPU
    /// device shared with the renderer, e.g. `burn::backend::wgpu::init_device`), if any; `None`
    /// = burn's default device.
    pub shared_wgpu: Option<burn::backend::wgpu::WgpuDevice>,
    /// Leave the frames on the GPU ([`GpuFrameBuffer`](crate::GpuFrameBuffer)); only honoured with
    /// the wgpu backend on a shared device, whose buffers the renderer can copy from.
    pub gpu_frames: bool,
    /// The DiT's precision.
    pub precision: EnginePrecision,
    /// Weight-only quantisation of the DiT's block weights.
    pub quantization: helios_model::dit::WeightQuantization,
    /// The DiT's last blocks kept in host memory, moved to the GPU only while they run (layer
    /// offload, for a model that does not fit the card even quantised).
    pub offload_blocks: usize,
}

/// A loaded model serving several streams. It is built on the worker thread and never leaves it,
/// so it needs no `Send` (burn's modules hold tensors that are not `Sync` on every backend).
pub trait ChunkEngine {
    /// Creates stream `id` (replacing one with the same id).
    fn start(&mut self, id: StreamId, request: StreamRequest) -> WorkerResult<()>;
    /// Generates the next chunk of stream `id`; returns early with a cancelled model error when
    /// `cancel` is set between two model calls.
    fn next_chunk(&mut self, id: StreamId, cancel: &AtomicBool) -> WorkerResult<EngineChunk>;
    /// Switches the prompt of stream `id`, interpolated over the next `over_chunks` chunks.
    fn set_prompt(&mut self, id: StreamId, prompt: &str, over_chunks: usize) -> WorkerResult<()>;
    /// The denoising steps per stage stream `id` uses.
    fn steps(&self, id: StreamId) -> WorkerResult<Vec<usize>>;
    /// Changes the steps per stage of stream `id` from its next chunk on (adaptive quality).
    fn set_steps(&mut self, id: StreamId, steps: Vec<usize>) -> WorkerResult<()>;
    /// The size (width, height) stream `id` generates at now.
    fn size(&self, id: StreamId) -> WorkerResult<(usize, usize)>;
    /// Changes the size stream `id` generates at from its next chunk on (adaptive quality); its
    /// frames keep the size it was started with (resampled before they leave the device).
    fn set_size(&mut self, id: StreamId, width: usize, height: usize) -> WorkerResult<()>;
    /// Frame sides the model can make are multiples of this.
    fn size_multiple(&self) -> usize;
    /// Sets the I2V conditioning image of stream `id`.
    fn set_image(&mut self, id: StreamId, image: image::RgbImage) -> WorkerResult<()>;
    /// Feeds stream `id` the latest frames of a live video (V2V), encoded into its history.
    fn push_video(&mut self, id: StreamId, frames: &[image::RgbImage]) -> WorkerResult<()>;
    /// Drops stream `id` (no-op when unknown).
    fn stop(&mut self, id: StreamId);
}
