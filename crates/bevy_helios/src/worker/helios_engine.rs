//! The real engine on `helios_model::pipeline::ChunkStream` (written against the lead's API
//! spec; NOT in the module tree until `helios_model::pipeline` lands on main — then
//! `engine::load_engine` calls `helios_engine::load` and the stand-in in `engine.rs` goes away).

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

pub(super) fn load(config: &EngineConfig) -> HeliosResult<Box<dyn ChunkEngine>> {
    Ok(match config.backend {
        HeliosBackend::NdArray => {
            let device = Default::default();
            Box::new(HeliosEngine::<NdArray<f32>> {
                pipeline: Arc::new(HeliosPipeline::load(&config.model_dir, &device)?),
                streams: HashMap::new(),
            })
        }
        HeliosBackend::Wgpu => {
            let device = config.shared_wgpu.clone().unwrap_or_default();
            Box::new(HeliosEngine::<Wgpu> {
                pipeline: Arc::new(HeliosPipeline::load(&config.model_dir, &device)?),
                streams: HashMap::new(),
            })
        }
    })
}

impl<B: Backend> ChunkEngine for HeliosEngine<B>
where
    HeliosPipeline<B>: Send + Sync,
    ChunkStream<B>: Send,
{
    fn start(&mut self, id: StreamId, spec: StreamSpec) -> HeliosResult<()> {
        let request = StreamRequest {
            prompt: spec.prompt,
            negative_prompt: spec.negative_prompt,
            height: spec.height,
            width: spec.width,
            steps: spec.steps,
            guidance_scale: spec.guidance_scale,
            seed: spec.seed,
            amplify_first_chunk: spec.amplify_first_chunk,
            conditioning: match spec.image {
                Some(image) => Conditioning::Image(image),
                None => Conditioning::None,
            },
        };
        let stream = ChunkStream::new(self.pipeline.clone(), request)?;
        self.streams.insert(id, stream);
        Ok(())
    }

    fn next_chunk(&mut self, id: StreamId, cancel: &AtomicBool) -> HeliosResult<EngineChunk> {
        let stream = self.streams.get_mut(&id).ok_or(HeliosError::UnknownStream(id))?;
        let chunk = stream.next_chunk(cancel)?;
        Ok(EngineChunk { index: chunk.index, width: chunk.width, height: chunk.height, frames: chunk.frames })
    }

    fn set_prompt(&mut self, id: StreamId, prompt: &str, over_chunks: usize) -> HeliosResult<()> {
        let stream = self.streams.get_mut(&id).ok_or(HeliosError::UnknownStream(id))?;
        Ok(stream.set_prompt(prompt, over_chunks)?)
    }

    fn set_image(&mut self, id: StreamId, image: image::RgbImage) -> HeliosResult<()> {
        let stream = self.streams.get_mut(&id).ok_or(HeliosError::UnknownStream(id))?;
        Ok(stream.set_image(image)?)
    }

    fn stop(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }
}
