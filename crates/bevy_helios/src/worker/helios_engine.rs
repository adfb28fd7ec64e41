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
use helios_model::pipeline::{ChunkStream, Conditioning, HeliosPipeline, StreamRequest};

use super::engine::{ChunkEngine, EngineChunk, EngineConfig, StreamId, StreamSpec};
use crate::error::{HeliosError, HeliosResult};
use crate::settings::HeliosBackend;

/// One loaded pipeline shared by every stream of the worker.
struct HeliosEngine<B: Backend> {
    pipeline: Arc<HeliosPipeline<B>>,
    streams: HashMap<StreamId, ChunkStream<B>>,
}

impl<B: Backend> HeliosEngine<B> {
    fn load(config: &EngineConfig, device: &B::Device) -> HeliosResult<Self> {
        let pipeline = HeliosPipeline::load(&config.model_dir, device)?;
        Ok(Self {
            pipeline: Arc::new(pipeline),
            streams: HashMap::new(),
        })
    }

    fn stream(&mut self, id: StreamId) -> HeliosResult<&mut ChunkStream<B>> {
        self.streams
            .get_mut(&id)
            .ok_or(HeliosError::UnknownStream(id))
    }
}

/// Loads the checkpoint of `config` on its backend (on Bevy's wgpu device when one is shared).
pub(super) fn load(config: &EngineConfig) -> HeliosResult<Box<dyn ChunkEngine>> {
    Ok(match config.backend {
        HeliosBackend::NdArray => Box::new(HeliosEngine::<NdArray<f32>>::load(
            config,
            &Default::default(),
        )?),
        HeliosBackend::Wgpu => {
            let device = config.shared_wgpu.clone().unwrap_or_default();
            Box::new(HeliosEngine::<Wgpu>::load(config, &device)?)
        }
    })
}

/// The generator's request for a stream.
fn request(spec: StreamSpec) -> StreamRequest {
    StreamRequest {
        prompt: spec.prompt,
        negative_prompt: spec.negative_prompt,
        height: spec.height,
        width: spec.width,
        steps: Some(spec.steps),
        guidance_scale: Some(spec.guidance_scale),
        seed: spec.seed,
        amplify_first_chunk: spec.amplify_first_chunk,
        conditioning: match spec.image {
            Some(image) => Conditioning::Image(image),
            None => Conditioning::None,
        },
        max_sequence_length: spec.max_sequence_length,
        ..StreamRequest::default()
    }
}

/// A frame side as the `u32` textures use.
fn side(pixels: usize) -> HeliosResult<u32> {
    u32::try_from(pixels).map_err(|_| {
        HeliosError::from(helios_model::Error::InvalidRequest(format!(
            "frame side {pixels} does not fit a texture"
        )))
    })
}

impl<B: Backend> ChunkEngine for HeliosEngine<B> {
    fn start(&mut self, id: StreamId, spec: StreamSpec) -> HeliosResult<()> {
        // Validates first (size multiple, steps per stage, prompt), then encodes the prompt.
        let stream = ChunkStream::new(self.pipeline.clone(), request(spec))?;
        self.streams.insert(id, stream);
        Ok(())
    }

    fn next_chunk(&mut self, id: StreamId, cancel: &AtomicBool) -> HeliosResult<EngineChunk> {
        let chunk = self.stream(id)?.next_chunk(cancel)?;
        let frames = &chunk.frames;
        Ok(EngineChunk {
            index: chunk.index,
            width: side(frames.width())?,
            height: side(frames.height())?,
            frames: frames.to_rgba8()?,
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
