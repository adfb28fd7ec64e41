//! The [`ChunkEngine`] on the Helios streaming generator (`helios_model::pipeline::ChunkStream`):
//! one [`HeliosPipeline`] loaded on the worker thread, shared by every stream through an `Arc`.
//!
//! The pipeline and its streams are created on the worker thread and stay there (the engine is
//! built inside the thread's load closure), so nothing here has to cross threads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::{NdArray, Wgpu};
use burn::tensor::backend::Backend;
use helios_model::pipeline::{ChunkStream, Frames, HeliosPipeline, StreamRequest};

use super::engine::{ChunkEngine, EngineChunk, EngineConfig, StreamId};
use crate::error::{HeliosError, HeliosResult};
use crate::gpu::texture_side;
use crate::playback::Frame;
use crate::settings::HeliosBackend;

/// How a decoded chunk leaves the model's device.
type Export<B> = fn(&Frames<B>) -> HeliosResult<Vec<Frame>>;

/// One loaded pipeline shared by every stream of the worker.
struct HeliosEngine<B: Backend> {
    pipeline: Arc<HeliosPipeline<B>>,
    streams: HashMap<StreamId, ChunkStream<B>>,
    export: Export<B>,
}

impl<B: Backend> HeliosEngine<B> {
    fn load(config: &EngineConfig, device: &B::Device, export: Export<B>) -> HeliosResult<Self> {
        let pipeline = HeliosPipeline::load(&config.model_dir, device)?;
        Ok(Self {
            pipeline: Arc::new(pipeline),
            streams: HashMap::new(),
            export,
        })
    }

    fn stream(&mut self, id: StreamId) -> HeliosResult<&mut ChunkStream<B>> {
        self.streams
            .get_mut(&id)
            .ok_or(HeliosError::UnknownStream(id))
    }
}

/// Reads the frames back as RGBA8 rows.
fn read_back<B: Backend>(frames: &Frames<B>) -> HeliosResult<Vec<Frame>> {
    let (w, h) = (frames.width(), frames.height());
    Ok(frames
        .to_rgba8()?
        .into_iter()
        .map(|pixels| Frame::from_rgba(pixels, w, h))
        .collect())
}

/// Leaves the frames on the shared device (reads them back when they cannot be packed).
fn keep_on_gpu(frames: &Frames<Wgpu>) -> HeliosResult<Vec<Frame>> {
    match crate::gpu::resident::pack_chunk(frames)? {
        Some(frames) => Ok(frames),
        None => read_back(frames),
    }
}

/// Loads the checkpoint of `config` on its backend (on Bevy's wgpu device when one is shared).
pub(super) fn load(config: &EngineConfig) -> HeliosResult<Box<dyn ChunkEngine>> {
    Ok(match config.backend {
        HeliosBackend::NdArray => Box::new(HeliosEngine::<NdArray<f32>>::load(
            config,
            &Default::default(),
            read_back,
        )?),
        HeliosBackend::Wgpu => {
            // Only a buffer of Bevy's own device can be a copy source in its render world.
            let (device, export): (_, Export<Wgpu>) = match &config.shared_wgpu {
                Some(device) if config.gpu_frames => (device.clone(), keep_on_gpu),
                Some(device) => (device.clone(), read_back),
                None => (Default::default(), read_back),
            };
            Box::new(HeliosEngine::<Wgpu>::load(config, &device, export)?)
        }
    })
}

impl<B: Backend> ChunkEngine for HeliosEngine<B> {
    fn start(&mut self, id: StreamId, request: StreamRequest) -> HeliosResult<()> {
        // Validates first (size multiple, steps per stage, prompt), then encodes the prompt.
        let stream = ChunkStream::new(self.pipeline.clone(), request)?;
        self.streams.insert(id, stream);
        Ok(())
    }

    fn next_chunk(&mut self, id: StreamId, cancel: &AtomicBool) -> HeliosResult<EngineChunk> {
        let chunk = self.stream(id)?.next_chunk(cancel)?;
        let frames = &chunk.frames;
        Ok(EngineChunk {
            index: chunk.index,
            width: texture_side(frames.width())?,
            height: texture_side(frames.height())?,
            frames: (self.export)(frames)?,
        })
    }

    fn set_prompt(&mut self, id: StreamId, prompt: &str, over_chunks: usize) -> HeliosResult<()> {
        Ok(self.stream(id)?.set_prompt(prompt, over_chunks)?)
    }

    fn set_image(&mut self, id: StreamId, image: image::RgbImage) -> HeliosResult<()> {
        Ok(self.stream(id)?.set_image(image)?)
    }

    fn stop(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }
}
