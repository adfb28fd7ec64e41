//! The batch T2V / I2V / V2V pipelines: a [`ChunkStream`] run for `ceil(num_frames / 33)` chunks,
//! the decoded chunks concatenated and trimmed to `4k + 1` frames, as `HeliosPipeline` and
//! `HeliosPyramidPipeline` return them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::denoise::DitCall;
use super::frames::Frames;
use super::model::HeliosPipeline;
use super::noise::NoiseSource;
use super::request::StreamRequest;
use super::stream::{ChunkStream, VideoChunk};
use crate::error::{Error, Result};

/// How many chunks a video takes and how many of each chunk's frames it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoPlan {
    /// Chunks to generate.
    pub chunks: usize,
    /// Frames per chunk.
    pub frames_per_chunk: usize,
    /// Frames of the output (`4k + 1`).
    pub frames: usize,
}

impl VideoPlan {
    /// The plan for `num_frames` requested frames (at least 1).
    pub fn new<B: Backend>(pipeline: &HeliosPipeline<B>, num_frames: usize) -> Result<Self> {
        if num_frames == 0 {
            return Err(Error::InvalidRequest(
                "0 frames requested; ask for at least 1".into(),
            ));
        }
        let chunks = pipeline.chunks_for(num_frames);
        Ok(Self {
            chunks,
            frames_per_chunk: pipeline.frames_per_chunk(),
            frames: pipeline.output_frames(chunks),
        })
    }

    /// Frames of chunk `index` that make it into the output.
    pub fn keep(&self, index: usize) -> usize {
        self.frames
            .saturating_sub(index * self.frames_per_chunk)
            .min(self.frames_per_chunk)
    }
}

/// A generated video.
#[derive(Debug, Clone)]
pub struct GeneratedVideo<B: Backend> {
    /// The frames, trimmed to `4k + 1`.
    pub frames: Frames<B>,
    /// Each chunk's denoised latents `[1, c, 9, h/8, w/8]`.
    pub chunk_latents: Vec<Tensor<B, 5>>,
}

impl<B: Backend> HeliosPipeline<B> {
    /// Generates `num_frames` frames (rounded as the reference does: whole chunks of 33, trimmed to
    /// `4k + 1`) with noise seeded by `request.params.seed`.
    pub fn generate(
        self: &Arc<Self>,
        request: StreamRequest,
        num_frames: usize,
        cancel: &AtomicBool,
    ) -> Result<GeneratedVideo<B>> {
        let plan = VideoPlan::new(self, num_frames)?;
        let stream = ChunkStream::new(self.clone(), request)?;
        run_plan(stream, plan, cancel, &mut |_, _| {})
    }

    /// [`HeliosPipeline::generate`] with the draws taken from `noise`, each chunk and DiT call
    /// shown to `on_call` (chunk index, call).
    pub fn generate_with(
        self: &Arc<Self>,
        request: StreamRequest,
        num_frames: usize,
        noise: Box<dyn NoiseSource>,
        cancel: &AtomicBool,
        on_call: &mut dyn FnMut(usize, &DitCall<B>),
    ) -> Result<GeneratedVideo<B>> {
        let plan = VideoPlan::new(self, num_frames)?;
        let stream = ChunkStream::with_noise(self.clone(), request, noise)?;
        run_plan(stream, plan, cancel, on_call)
    }
}

/// Runs `stream` for `plan`, keeping each chunk's frames as the plan says.
pub fn run_plan<B: Backend>(
    mut stream: ChunkStream<B>,
    plan: VideoPlan,
    cancel: &AtomicBool,
    on_call: &mut dyn FnMut(usize, &DitCall<B>),
) -> Result<GeneratedVideo<B>> {
    let mut frames = Vec::with_capacity(plan.chunks);
    let mut chunk_latents = Vec::with_capacity(plan.chunks);
    for index in 0..plan.chunks {
        let VideoChunk {
            latents,
            frames: chunk,
            ..
        } = stream.next_chunk_observed(cancel, &mut |call| on_call(index, call))?;
        frames.push(chunk.take(plan.keep(index)));
        chunk_latents.push(latents);
    }
    Ok(GeneratedVideo {
        frames: Frames::cat(frames)?,
        chunk_latents,
    })
}
