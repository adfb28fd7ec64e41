//! What a stream is asked to generate: [`StreamRequest`] (the prompt and the conditioning) and its
//! [`GenerationParams`] (everything else), the one request type the CLI, the Bevy plugin and the
//! conformance cases build.
//!
//! A `None` field takes the default [`HeliosPipeline::resolve`](super::HeliosPipeline::resolve)
//! picks for the loaded checkpoint (steps and guidance from `model_index.json`'s class and
//! `is_distilled`; the reference's frame size and prompt length otherwise). [`GenerationParams`]
//! is serde-(de)serialisable, so settings files can hold it.

use serde::{Deserialize, Serialize};

use super::conditioning::{Conditioning, ConditioningNoise};

/// The reference pipelines' frame height when none is given.
pub const DEFAULT_HEIGHT: usize = 384;
/// The reference pipelines' frame width when none is given.
pub const DEFAULT_WIDTH: usize = 640;
/// The reference pipelines' prompt length in tokens when none is given.
pub const DEFAULT_MAX_SEQUENCE_LENGTH: usize = 512;

/// The generation parameters of a stream; `None` fields take the checkpoint's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParams {
    /// What the video should not show (CFG only; `""` when not given, as the reference does).
    pub negative_prompt: Option<String>,
    /// Frame height in pixels (`None`: [`DEFAULT_HEIGHT`]).
    pub height: Option<usize>,
    /// Frame width in pixels (`None`: [`DEFAULT_WIDTH`]).
    pub width: Option<usize>,
    /// Denoising steps per stage (`None`: the checkpoint default, e.g. `[2, 2, 2]` for Distilled).
    pub steps: Option<Vec<usize>>,
    /// CFG scale (`None`: 1.0 for Distilled, 5.0 otherwise).
    pub guidance_scale: Option<f32>,
    /// Seed of the stream's noise.
    pub seed: u64,
    /// DMD's amplified first chunk (twice the steps on chunk 0), as the Distilled reference runs.
    pub amplify_first_chunk: bool,
    /// Prompt tokens read by the text encoder (`None`: the checkpoint's,
    /// `HeliosPipeline::default_max_sequence_length`: [`DEFAULT_MAX_SEQUENCE_LENGTH`] unless its
    /// tokenizer declares a shorter `model_max_length`).
    pub max_sequence_length: Option<usize>,
}

impl GenerationParams {
    /// Frame height and width, the reference's when not given.
    pub fn size(&self) -> (usize, usize) {
        (
            self.height.unwrap_or(DEFAULT_HEIGHT),
            self.width.unwrap_or(DEFAULT_WIDTH),
        )
    }
}

/// What a stream generates: a prompt, an optional conditioning image or video, and the
/// [`GenerationParams`].
#[derive(Debug, Clone, Default)]
pub struct StreamRequest {
    /// What the video shows.
    pub prompt: String,
    /// T2V, I2V or V2V.
    pub conditioning: Conditioning,
    /// Noise put on conditioning latents.
    pub conditioning_noise: ConditioningNoise,
    /// Size, steps, guidance, seed, ...
    pub params: GenerationParams,
}

impl StreamRequest {
    /// A request for `prompt` with every other field at its default.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// A request for `prompt` with `params`, unconditioned (T2V).
    pub fn with_params(prompt: impl Into<String>, params: GenerationParams) -> Self {
        Self {
            prompt: prompt.into(),
            params,
            ..Self::default()
        }
    }
}
