//! The [`ChunkEngine`] on the Helios streaming generator (`helios_model::pipeline::ChunkStream`):
//! one [`HeliosPipeline`] loaded on the worker thread, shared by every stream through an `Arc`.
//!
//! The pipeline and its streams are created on the worker thread and stay there (the engine is
//! built inside the thread's load closure), so nothing here has to cross threads.
//!
//! Backends: NdArray (CPU), wgpu (frames left on the shared device when asked) and CUDA (frames
//! read back: CUDA cannot share a renderer's wgpu device, so they reach a texture through host
//! memory; a build with the `cuda` feature). A missing CUDA driver, or a build without the feature,
//! is a [`WorkerError::BackendUnavailable`], not a crash.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::{NdArray, Wgpu};
use burn::tensor::backend::Backend;
use helios_model::pipeline::{ChunkStream, Frames, HeliosPipeline, LoadOptions, StreamRequest};

use super::engine::{ChunkEngine, EngineChunk, EngineConfig, StreamId};
use crate::error::{WorkerError, WorkerResult};
use crate::frame::{Frame, texture_side};
use crate::options::EngineBackend;

/// How a decoded chunk leaves the model's device.
type Export<B> = fn(&Frames<B>) -> WorkerResult<Vec<Frame>>;

/// One stream: the generator and the size its frames leave at (the size it was started with;
/// adaptive quality may generate smaller).
struct Served<B: Backend> {
    stream: ChunkStream<B>,
    display: (usize, usize),
}

/// One loaded pipeline shared by every stream of the worker.
struct HeliosEngine<B: Backend> {
    pipeline: Arc<HeliosPipeline<B>>,
    streams: HashMap<StreamId, Served<B>>,
    export: Export<B>,
}

impl<B: Backend> HeliosEngine<B> {
    /// Loads the pipeline on `device`, the DiT at the configured precision (`gpu`: whether `B`
    /// is a GPU backend, for [`EnginePrecision::Auto`](crate::EnginePrecision::Auto)).
    fn load(
        config: &EngineConfig,
        device: &B::Device,
        gpu: bool,
        export: Export<B>,
    ) -> WorkerResult<Self> {
        let precision = config.precision.dit_precision::<B>(device, gpu);
        let dir = match &config.model_dir {
            Some(dir) => dir.clone(),
            None => helios_model::embedded::default_model_dir()?,
        };
        let options = LoadOptions::at(precision)
            .quantized(config.quantization)
            .offloaded(config.offload_blocks);
        let pipeline = HeliosPipeline::load_with(&dir, device, options)?;
        Ok(Self {
            pipeline: Arc::new(pipeline),
            streams: HashMap::new(),
            export,
        })
    }

    fn stream(&mut self, id: StreamId) -> WorkerResult<&mut ChunkStream<B>> {
        self.streams
            .get_mut(&id)
            .map(|s| &mut s.stream)
            .ok_or(WorkerError::UnknownStream(id))
    }

    fn served(&self, id: StreamId) -> WorkerResult<&Served<B>> {
        self.streams.get(&id).ok_or(WorkerError::UnknownStream(id))
    }
}

/// Reads the frames back as RGBA8 rows.
fn read_back<B: Backend>(frames: &Frames<B>) -> WorkerResult<Vec<Frame>> {
    let (w, h) = (frames.width(), frames.height());
    Ok(frames
        .to_rgba8()?
        .into_iter()
        .map(|pixels| Frame::from_rgba(pixels, w, h))
        .collect())
}

/// Leaves the frames on the shared device (reads them back when they cannot be packed).
fn keep_on_gpu(frames: &Frames<Wgpu>) -> WorkerResult<Vec<Frame>> {
    match crate::frame::pack::pack_chunk(frames)? {
        Some(frames) => Ok(frames),
        None => read_back(frames),
    }
}

/// Loads the checkpoint of `config` on its backend (on the shared wgpu device when there is one).
pub(super) fn load(config: &EngineConfig) -> WorkerResult<Box<dyn ChunkEngine>> {
    Ok(match config.backend {
        EngineBackend::NdArray => Box::new(HeliosEngine::<NdArray<f32>>::load(
            config,
            &Default::default(),
            false,
            read_back,
        )?),
        EngineBackend::Wgpu => {
            // Only a buffer of the renderer's own device can be a copy source for its textures.
            let (device, export): (_, Export<Wgpu>) = match &config.shared_wgpu {
                Some(device) if config.gpu_frames => (device.clone(), keep_on_gpu),
                Some(device) => (device.clone(), read_back),
                None => (Default::default(), read_back),
            };
            Box::new(HeliosEngine::<Wgpu>::load(config, &device, true, export)?)
        }
        #[cfg(feature = "cuda")]
        EngineBackend::Cuda => Box::new(HeliosEngine::<burn::backend::Cuda>::load(
            config,
            &super::cuda::device()?,
            true,
            read_back,
        )?),
        #[cfg(not(feature = "cuda"))]
        EngineBackend::Cuda => {
            return Err(WorkerError::BackendUnavailable {
                backend: "CUDA",
                reason: "helios_worker was built without its `cuda` feature".to_owned(),
            });
        }
    })
}

impl<B: Backend> ChunkEngine for HeliosEngine<B> {
    fn start(&mut self, id: StreamId, request: StreamRequest) -> WorkerResult<()> {
        // Validates first (size multiple, steps per stage, prompt), then encodes the prompt.
        let stream = ChunkStream::new(self.pipeline.clone(), request)?;
        let display = stream.size();
        self.streams.insert(id, Served { stream, display });
        Ok(())
    }

    fn next_chunk(&mut self, id: StreamId, cancel: &AtomicBool) -> WorkerResult<EngineChunk> {
        let chunk = self.stream(id)?.next_chunk(cancel)?;
        let (width, height) = self.served(id)?.display;
        // Made smaller by adaptive quality: back to the stream's size on the device.
        let frames = &chunk.frames.resized(height, width);
        // Frames a texture cannot hold are an error here, not a failed upload later.
        texture_side(frames.width())?;
        texture_side(frames.height())?;
        Ok(EngineChunk {
            index: chunk.index,
            frames: (self.export)(frames)?,
        })
    }

    fn set_prompt(&mut self, id: StreamId, prompt: &str, over_chunks: usize) -> WorkerResult<()> {
        Ok(self.stream(id)?.set_prompt(prompt, over_chunks)?)
    }

    fn steps(&self, id: StreamId) -> WorkerResult<Vec<usize>> {
        Ok(self.served(id)?.stream.steps().to_vec())
    }

    fn size(&self, id: StreamId) -> WorkerResult<(usize, usize)> {
        Ok(self.served(id)?.stream.size())
    }

    fn set_size(&mut self, id: StreamId, width: usize, height: usize) -> WorkerResult<()> {
        Ok(self.stream(id)?.set_size(width, height)?)
    }

    fn size_multiple(&self) -> usize {
        self.pipeline.size_multiple()
    }

    fn set_steps(&mut self, id: StreamId, steps: Vec<usize>) -> WorkerResult<()> {
        Ok(self.stream(id)?.set_steps(steps)?)
    }

    fn set_image(&mut self, id: StreamId, image: image::RgbImage) -> WorkerResult<()> {
        Ok(self.stream(id)?.set_image(image)?)
    }

    fn push_video(&mut self, id: StreamId, frames: &[image::RgbImage]) -> WorkerResult<()> {
        self.stream(id)?.push_video(frames)?;
        Ok(())
    }

    fn stop(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }
}

#[cfg(all(test, not(feature = "cuda")))]
mod tests {
    use super::*;

    /// Without the `cuda` feature the CUDA backend is a typed error, not a missing variant.
    #[test]
    fn cuda_in_a_build_without_it_is_a_typed_error() {
        let config = EngineConfig {
            backend: EngineBackend::Cuda,
            ..EngineConfig::default()
        };
        match load(&config) {
            Err(WorkerError::BackendUnavailable { backend, reason }) => {
                assert_eq!(backend, "CUDA");
                assert!(reason.contains("`cuda` feature"), "{reason}");
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("a CUDA engine in a build without CUDA"),
        }
    }
}
