//! The streaming generator: one chunk (33 frames) per call, for as long as it is asked.
//!
//! A [`ChunkStream`] holds what the next chunk needs and nothing more: the 19-frame history window
//! (compacted by the DiT into long / mid / short tokens), the prefix latent, the prompt track and
//! the noise source. Memory stays flat however many chunks it makes. The prompt can change between
//! chunks (interpolated over N chunks), a conditioning image can be set at any time, and a chunk
//! can be cancelled between two DiT calls. The batch T2V / I2V / V2V pipelines
//! ([`super::video`]) are this stream run for a fixed number of chunks.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use image::RgbImage;

use super::conditioning::{
    Conditioning, ConditioningSize, prepare_image, prepare_recent_frames, prepare_video,
};
use super::denoise::{ChunkDenoiser, DitCall};
use super::frames::Frames;
use super::history::HistoryBuffer;
use super::model::{HeliosPipeline, ResolvedRequest, check_prompt, stage_lengths};
use super::noise::{NoiseSource, SeededNoise};
use super::prompt::{PromptCache, PromptTrack};
use super::request::StreamRequest;
use crate::dit::History;
use crate::error::{Error, Result};

/// One generated chunk.
#[derive(Debug, Clone)]
pub struct VideoChunk<B: Backend> {
    /// Chunk number within its stream (0, 1, ...).
    pub index: usize,
    /// The denoised latents `[1, c, 9, h/8, w/8]` (diffusion space).
    pub latents: Tensor<B, 5>,
    /// The decoded frames.
    pub frames: Frames<B>,
}

/// The streaming generator. See the module docs.
pub struct ChunkStream<B: Backend> {
    pipeline: Arc<HeliosPipeline<B>>,
    request: StreamRequest,
    resolved: ResolvedRequest,
    noise: Box<dyn NoiseSource>,
    history: HistoryBuffer<B>,
    prefix: Option<Tensor<B, 5>>,
    prompts: PromptCache<B>,
    track: PromptTrack<B>,
    uncond: Option<Tensor<B, 3>>,
    index: usize,
}

impl<B: Backend> std::fmt::Debug for ChunkStream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream")
            .field("prompt", &self.track.prompt())
            .field("size", &(self.resolved.width, self.resolved.height))
            .field("steps", &self.resolved.steps)
            .field("next_chunk", &self.index)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> ChunkStream<B> {
    /// A stream drawing its noise from a generator seeded with `request.params.seed`.
    pub fn new(pipeline: Arc<HeliosPipeline<B>>, request: StreamRequest) -> Result<Self> {
        let noise = Box::new(SeededNoise::new(request.params.seed));
        Self::with_noise(pipeline, request, noise)
    }

    /// A stream drawing from `noise` (e.g. a replay of recorded draws). Validates the request
    /// first, then encodes the prompts and the conditioning (drawing its noise).
    pub fn with_noise(
        pipeline: Arc<HeliosPipeline<B>>,
        request: StreamRequest,
        mut noise: Box<dyn NoiseSource>,
    ) -> Result<Self> {
        let resolved = pipeline.resolve(&request)?;
        let device = pipeline.device().clone();
        let tokens = resolved.max_sequence_length;
        let mut prompts = PromptCache::new(tokens);
        let cond = prompts.get(pipeline.text_encoder(), &request.prompt)?;
        let uncond = if resolved.guidance.needs_uncond() {
            let negative = request.params.negative_prompt.as_deref().unwrap_or("");
            Some(pipeline.text_encoder().encode(&[negative], tokens)?)
        } else {
            None
        };
        let layout = pipeline.layout();
        let (h, w) = pipeline.latent_size(resolved.height, resolved.width);
        let channels = pipeline.checkpoint().transformer.in_channels;
        let mut history = HistoryBuffer::zeros(layout, channels, h, w, &device);
        let vae = pipeline.vae();
        let size = ConditioningSize {
            height: resolved.height,
            width: resolved.width,
            latent_frames_per_chunk: layout.chunk,
        };
        let sigmas = request.conditioning_noise;
        let prepared = match &request.conditioning {
            Conditioning::None => None,
            Conditioning::Image(img) => Some(prepare_image(
                vae,
                img,
                size,
                sigmas,
                noise.as_mut(),
                &device,
            )?),
            Conditioning::Video(frames) => Some(prepare_video(
                vae,
                frames,
                size,
                sigmas,
                noise.as_mut(),
                &device,
            )?),
        };
        let prefix = match prepared {
            Some(p) => {
                history.push(p.history)?;
                Some(p.prefix)
            }
            None => None,
        };
        let track = PromptTrack::new(request.prompt.clone(), cond);
        Ok(Self {
            pipeline,
            request,
            resolved,
            noise,
            history,
            prefix,
            prompts,
            track,
            uncond,
            index: 0,
        })
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Arc<HeliosPipeline<B>> {
        &self.pipeline
    }

    /// The request the stream was started with.
    pub fn request(&self) -> &StreamRequest {
        &self.request
    }

    /// The request with the checkpoint's defaults filled in.
    pub fn resolved(&self) -> &ResolvedRequest {
        &self.resolved
    }

    /// Steps per stage in use.
    pub fn steps(&self) -> &[usize] {
        &self.resolved.steps
    }

    /// The number of the next chunk.
    pub fn next_index(&self) -> usize {
        self.index
    }

    /// The prompt in use (or being moved to).
    pub fn prompt(&self) -> &str {
        self.track.prompt()
    }

    /// The history terms the next chunk's DiT calls will see (prefix included).
    pub fn next_history(&self) -> History<B> {
        let p = &self.pipeline;
        let prefix = match &self.prefix {
            Some(prefix) => prefix.clone(),
            None => {
                let (h, w) = p.latent_size(self.resolved.height, self.resolved.width);
                Tensor::zeros(
                    [1, p.checkpoint().transformer.in_channels, 1, h, w],
                    p.device(),
                )
            }
        };
        self.history.terms(prefix)
    }

    /// DiT steps per stage of the next chunk (what a progress bar needs; CFG doubles the calls).
    pub fn next_chunk_stage_steps(&self) -> Result<Vec<usize>> {
        stage_lengths(
            self.pipeline.scheduler(),
            self.pipeline.sampling(),
            &self.resolved.steps,
            self.amplify_now(),
        )
    }

    /// Bytes of state the stream keeps between chunks (the history window, the prefix, the prompt
    /// embeddings and the cache). It does not grow with the number of chunks.
    pub fn state_bytes(&self) -> usize {
        let f = std::mem::size_of::<f32>();
        let embed = self.track.for_next_chunk().shape().num_elements() * f;
        self.history.bytes()
            + self
                .prefix
                .as_ref()
                .map_or(0, |p| p.shape().num_elements() * f)
            + embed
                * (1 + usize::from(self.track.in_transition()) + usize::from(self.uncond.is_some()))
            + embed * self.prompts.len()
    }

    /// Changes the denoising steps per stage from the next chunk on (adaptive quality), under the
    /// same checks as a request's steps; the history, prompt and noise go on. On error nothing
    /// changes.
    pub fn set_steps(&mut self, steps: Vec<usize>) -> Result<()> {
        let previous = self.request.params.steps.replace(steps);
        match self.pipeline.resolve(&self.request) {
            Ok(resolved) => {
                self.resolved.steps = resolved.steps;
                Ok(())
            }
            Err(e) => {
                self.request.params.steps = previous;
                Err(e)
            }
        }
    }

    /// The frame width and height in use.
    pub fn size(&self) -> (usize, usize) {
        (self.resolved.width, self.resolved.height)
    }

    /// Changes the frame size from the next chunk on (adaptive quality), under the same checks as
    /// a request's size: the history window and the prefix are resampled to the new latent size,
    /// so the video goes on from where it is. On error nothing changes.
    pub fn set_size(&mut self, width: usize, height: usize) -> Result<()> {
        let params = &mut self.request.params;
        let previous = (params.width.replace(width), params.height.replace(height));
        match self.pipeline.resolve(&self.request) {
            Ok(resolved) => {
                let (h, w) = self.pipeline.latent_size(resolved.height, resolved.width);
                self.history.resize(h, w);
                self.prefix = self
                    .prefix
                    .take()
                    .map(|p| crate::scheduler::pyramid::resize_bilinear(p, h, w));
                self.resolved.width = resolved.width;
                self.resolved.height = resolved.height;
                Ok(())
            }
            Err(e) => {
                (self.request.params.width, self.request.params.height) = previous;
                Err(e)
            }
        }
    }

    /// Switches the prompt, interpolating the embeddings over the next `over_chunks` chunks (0 or
    /// 1: at once). Embeddings are cached per prompt.
    pub fn set_prompt(&mut self, prompt: &str, over_chunks: usize) -> Result<()> {
        check_prompt("prompt", prompt)?;
        if prompt == self.track.prompt() {
            return Ok(());
        }
        let embeds = self.prompts.get(self.pipeline.text_encoder(), prompt)?;
        self.track.switch(prompt.to_owned(), embeds, over_chunks);
        Ok(())
    }

    /// Conditions the following chunks on `image` (I2V from here on): it becomes the prefix latent
    /// every later chunk sees; the history keeps the frames made so far, so motion continues.
    pub fn set_image(&mut self, image: RgbImage) -> Result<()> {
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::InvalidRequest(
                "the conditioning image is empty (0 pixels)".into(),
            ));
        }
        let p = &self.pipeline;
        let prepared = prepare_image(
            p.vae(),
            &image,
            self.conditioning_size(),
            self.request.conditioning_noise,
            self.noise.as_mut(),
            p.device(),
        )?;
        self.prefix = Some(prepared.prefix);
        Ok(())
    }

    /// Feeds the latest frames of a live video (a game's own rendered picture) into the history
    /// window (V2V from here on): the last `1 + 4k` of `frames` (at most 33) are VAE-encoded
    /// into `1 + k` latent frames, lightly noised, and appended to the history, so the next
    /// chunk continues what they show; the long / mid / short terms keep the rest of the window.
    /// A stream that has no prefix yet (a T2V stream before its first chunk) takes the frames'
    /// first latent as its prefix. Returns the number of latent frames added. On error nothing
    /// changes but the noise drawn.
    pub fn push_video(&mut self, frames: &[RgbImage]) -> Result<usize> {
        let p = &self.pipeline;
        let prepared = prepare_recent_frames(
            p.vae(),
            frames,
            self.conditioning_size(),
            self.request.conditioning_noise,
            self.noise.as_mut(),
            p.device(),
        )?;
        let added = prepared.history.dims()[2];
        self.history.push(prepared.history)?;
        if self.prefix.is_none() {
            self.prefix = Some(prepared.prefix);
        }
        Ok(added)
    }

    /// The size conditioning is encoded at for this stream.
    fn conditioning_size(&self) -> ConditioningSize {
        ConditioningSize {
            height: self.resolved.height,
            width: self.resolved.width,
            latent_frames_per_chunk: self.pipeline.layout().chunk,
        }
    }

    fn amplify_now(&self) -> bool {
        self.request.params.amplify_first_chunk && self.index == 0
    }

    /// Generates the next chunk. See [`ChunkStream::next_chunk_observed`].
    pub fn next_chunk(&mut self, cancel: &AtomicBool) -> Result<VideoChunk<B>> {
        self.next_chunk_observed(cancel, &mut |_| {})
    }

    /// Generates the next chunk, showing each DiT call to `on_call`. When `cancel` is set between
    /// two DiT calls this returns [`Error::Cancelled`] and the stream is as it was (the next call
    /// makes the same chunk number again, with fresh noise).
    pub fn next_chunk_observed(
        &mut self,
        cancel: &AtomicBool,
        on_call: &mut dyn FnMut(&DitCall<B>),
    ) -> Result<VideoChunk<B>> {
        let p = self.pipeline.clone();
        let channels = p.checkpoint().transformer.in_channels;
        let (h, w) = p.latent_size(self.resolved.height, self.resolved.width);
        let layout = p.layout();
        let denoiser = ChunkDenoiser {
            dit: p.transformer(),
            scheduler: p.scheduler(),
            sampling: p.sampling(),
            steps: &self.resolved.steps,
            guidance: self.resolved.guidance,
            amplify: self.amplify_now(),
            cond: self.track.for_next_chunk(),
            uncond: self.uncond.clone(),
            history: self.next_history(),
            indices: layout.indices().current,
            cancel,
        };
        let latents = denoiser.run(
            [1, channels, layout.chunk, h, w],
            self.noise.as_mut(),
            on_call,
        )?;
        if self.prefix.is_none() {
            // T2V: the first generated latent frame is every later chunk's prefix.
            self.prefix = Some(latents.clone().narrow(2, 0, 1));
        }
        self.history.push(latents.clone())?;
        self.track.advance();
        let frames = Frames::new(p.vae().decode(latents.clone())?);
        let index = self.index;
        self.index += 1;
        Ok(VideoChunk {
            index,
            latents,
            frames,
        })
    }
}

impl<B: Backend> HeliosPipeline<B> {
    /// Latent height and width for a frame size.
    pub fn latent_size(&self, height: usize, width: usize) -> (usize, usize) {
        let f = self.vae().spatial_factor();
        (height / f, width / f)
    }
}
