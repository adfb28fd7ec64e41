//! A loaded Helios checkpoint: text encoder, DiT, VAE and scheduler, with the checkpoint's
//! generation defaults and the request validation every generation goes through first.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::conditioning::Conditioning;
use super::denoise::Sampling;
use super::history::HistoryLayout;
use super::request::{DEFAULT_MAX_SEQUENCE_LENGTH, StreamRequest};
use crate::config::{HeliosCheckpoint, PipelineClass, SchedulerConfig};
use crate::dit::{HeliosTransformer3DModel, Precision, WeightQuantization};
use crate::error::{Error, Result};
use crate::scheduler::{FlowScheduler, GuidanceMode, TimestepRequest};
use crate::text::TextEncoder;
use crate::vae::WanVae;
use crate::weights::{LoadProgress, LoadReport};

/// The longest prompt accepted, in bytes (the model reads at most `max_sequence_length` tokens;
/// anything this long is a mistake, not a prompt).
pub const MAX_PROMPT_BYTES: usize = 16 * 1024;
/// The largest frame side accepted, in pixels.
pub const MAX_SIDE: usize = 4096;
/// The most denoising steps accepted per stage.
pub const MAX_STEPS: usize = 1000;

/// The parts of a checkpoint being loaded, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Tokenizer and UMT5.
    TextEncoder,
    /// The DiT.
    Transformer,
    /// The Wan VAE.
    Vae,
}

/// A Helios checkpoint loaded on one device; shared (behind an `Arc`) by every stream.
#[derive(Debug)]
pub struct HeliosPipeline<B: Backend> {
    checkpoint: HeliosCheckpoint,
    text: TextEncoder<B>,
    dit: HeliosTransformer3DModel<B>,
    vae: WanVae<B>,
    scheduler: FlowScheduler,
    layout: HistoryLayout,
    zero_init_steps: Option<usize>,
    device: B::Device,
    dit_report: LoadReport,
}

/// How [`HeliosPipeline::load_with`] loads a checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The DiT's compute precision; its weights are converted to it as they are read
    /// ([`Precision::half_for`] on a GPU). The text encoder and the VAE stay float32.
    pub precision: Precision,
    /// Weight-only quantisation of the DiT's block weights, applied as they are read.
    pub quantization: WeightQuantization,
    /// The DiT's last blocks kept in host memory and moved to the device only for their own
    /// forward pass (layer offload, for a model that does not fit the card).
    pub offload_blocks: usize,
}

impl LoadOptions {
    /// The DiT at `precision`.
    pub fn at(precision: Precision) -> Self {
        Self {
            precision,
            quantization: WeightQuantization::None,
            offload_blocks: 0,
        }
    }

    /// The same options with the DiT's last `blocks` blocks offloaded to host memory.
    pub fn offloaded(self, blocks: usize) -> Self {
        Self {
            offload_blocks: blocks,
            ..self
        }
    }

    /// The same options with the block weights quantised.
    pub fn quantized(self, quantization: WeightQuantization) -> Self {
        Self {
            quantization,
            ..self
        }
    }
}

impl<B: Backend> HeliosPipeline<B> {
    /// Loads a diffusers-layout Helios folder (`model_index.json`, `transformer/`, `vae/`,
    /// `text_encoder/`, `tokenizer/`, `scheduler/`) onto `device`, the DiT in float32.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::load_with_progress(dir, device, &mut |_, _| {})
    }

    /// [`HeliosPipeline::load`] with `options` (the DiT's precision).
    pub fn load_with(dir: &Path, device: &B::Device, options: LoadOptions) -> Result<Self> {
        Self::load_with_options_progress(dir, device, options, &mut |_, _| {})
    }

    /// [`HeliosPipeline::load`], reporting progress per tensor and part.
    pub fn load_with_progress(
        dir: &Path,
        device: &B::Device,
        progress: &mut dyn FnMut(Part, LoadProgress),
    ) -> Result<Self> {
        Self::load_with_options_progress(dir, device, LoadOptions::default(), progress)
    }

    /// [`HeliosPipeline::load_with`], reporting progress per tensor and part.
    pub fn load_with_options_progress(
        dir: &Path,
        device: &B::Device,
        options: LoadOptions,
        progress: &mut dyn FnMut(Part, LoadProgress),
    ) -> Result<Self> {
        let checkpoint = HeliosCheckpoint::from_dir(dir)?;
        let scheduler = FlowScheduler::new(&checkpoint.scheduler)?;
        let text =
            TextEncoder::load_with_progress(dir, device, &mut |p| progress(Part::TextEncoder, p))?;
        let (dit, dit_report) = HeliosTransformer3DModel::load_offloaded(
            &checkpoint.part_dir("transformer"),
            device,
            options.precision,
            options.quantization,
            options.offload_blocks,
            &mut |p| progress(Part::Transformer, p),
        )?;
        let vae = WanVae::load_with_progress(&checkpoint.part_dir("vae"), device, &mut |p| {
            progress(Part::Vae, p)
        })?;
        Ok(Self {
            checkpoint,
            text,
            dit,
            vae,
            scheduler,
            layout: HistoryLayout::default(),
            zero_init_steps: Some(1),
            device: device.clone(),
            dit_report,
        })
    }

    /// What loading the DiT did: tensors, bytes read and stored, dtype conversions.
    pub fn transformer_load_report(&self) -> &LoadReport {
        &self.dit_report
    }

    /// The same pipeline with the DiT cast to `precision` on the device (needs the float32 DiT
    /// loaded first; [`HeliosPipeline::load_with`] loads it at a precision directly).
    pub fn with_dit_precision(mut self, precision: Precision) -> Self {
        self.dit = self.dit.with_precision(precision);
        self
    }

    /// The same weights sampled another way: another pipeline class, scheduler and flags (e.g. a
    /// Distilled DiT run with UniPC). The configs are validated as a checkpoint's would be.
    pub fn with_scheduling(
        mut self,
        pipeline: PipelineClass,
        is_distilled: bool,
        is_cfg_zero_star: bool,
        scheduler: SchedulerConfig,
    ) -> Result<Self> {
        scheduler.validate(
            &self
                .checkpoint
                .part_dir("scheduler")
                .join("scheduler_config.json"),
        )?;
        self.scheduler = FlowScheduler::new(&scheduler)?;
        self.checkpoint.pipeline = pipeline;
        self.checkpoint.is_distilled = is_distilled;
        self.checkpoint.is_cfg_zero_star = is_cfg_zero_star;
        self.checkpoint.scheduler = scheduler;
        Ok(self)
    }

    /// CFG-Zero*'s zero-init: `Some(n)` zeroes the velocity of stage-0 steps `i <= n` (the
    /// reference default `Some(1)`), `None` turns it off.
    pub fn with_zero_init(mut self, zero_init_steps: Option<usize>) -> Self {
        self.zero_init_steps = zero_init_steps;
        self
    }

    /// The checkpoint's configs.
    pub fn checkpoint(&self) -> &HeliosCheckpoint {
        &self.checkpoint
    }

    /// The text encoder.
    pub fn text_encoder(&self) -> &TextEncoder<B> {
        &self.text
    }

    /// The DiT.
    pub fn transformer(&self) -> &HeliosTransformer3DModel<B> {
        &self.dit
    }

    /// The VAE.
    pub fn vae(&self) -> &WanVae<B> {
        &self.vae
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &FlowScheduler {
        &self.scheduler
    }

    /// The history window layout.
    pub fn layout(&self) -> HistoryLayout {
        self.layout
    }

    /// The device.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Single-stage (`HeliosPipeline`) or pyramid (`HeliosPyramidPipeline`).
    pub fn sampling(&self) -> Sampling {
        match self.checkpoint.pipeline {
            PipelineClass::Single => Sampling::SingleStage,
            PipelineClass::Pyramid => Sampling::Pyramid,
        }
    }

    /// Stages of a chunk (1 for single-stage).
    pub fn stages(&self) -> usize {
        match self.sampling() {
            Sampling::SingleStage => 1,
            Sampling::Pyramid => self.scheduler.stages(),
        }
    }

    /// The reference defaults: `[2, 2, 2]` for Distilled, `[10, 10, 10]` for other pyramid
    /// checkpoints, 50 steps for single-stage ones.
    pub fn default_steps(&self) -> Vec<usize> {
        match (self.sampling(), self.checkpoint.is_distilled) {
            (Sampling::SingleStage, _) => vec![50],
            (Sampling::Pyramid, true) => vec![2; self.stages()],
            (Sampling::Pyramid, false) => vec![10; self.stages()],
        }
    }

    /// The reference default guidance: 1.0 (none) for Distilled, 5.0 otherwise.
    pub fn default_guidance(&self) -> f32 {
        if self.checkpoint.is_distilled {
            1.0
        } else {
            5.0
        }
    }

    /// The guidance a scale means for this checkpoint: none for Distilled (the reference ignores
    /// it) or `scale <= 1`, CFG-Zero* with zero-init for Mid, plain CFG otherwise.
    pub fn guidance(&self, scale: f32) -> GuidanceMode {
        let scale = scale as f64;
        if self.checkpoint.is_distilled || scale <= 1.0 {
            GuidanceMode::None
        } else if self.checkpoint.is_cfg_zero_star && self.sampling() == Sampling::Pyramid {
            GuidanceMode::CfgZeroStar {
                scale,
                zero_init_steps: self.zero_init_steps,
            }
        } else {
            GuidanceMode::Cfg { scale }
        }
    }

    /// Frame height and width must be multiples of this: the VAE's spatial factor times the patch,
    /// times 2 per pyramid stage after the first.
    pub fn size_multiple(&self) -> usize {
        let patch = self.checkpoint.transformer.patch_size;
        self.vae.spatial_factor() * patch[1].max(patch[2]) * (1 << (self.stages() - 1))
    }

    /// Prompt tokens the text encoder reads when a request leaves `max_sequence_length` unset: the
    /// reference's 512, or less where the checkpoint's `tokenizer_config.json` declares a shorter
    /// `model_max_length` (a checkpoint trained on short prompts, such as the demo model).
    pub fn default_max_sequence_length(&self) -> usize {
        self.text_encoder()
            .tokenizer()
            .model_max_length()
            .filter(|&n| n > 0)
            .map_or(DEFAULT_MAX_SEQUENCE_LENGTH, |n| {
                n.min(DEFAULT_MAX_SEQUENCE_LENGTH)
            })
    }

    /// Video frames per chunk (33 for Helios).
    pub fn frames_per_chunk(&self) -> usize {
        (self.layout.chunk - 1) * self.vae.temporal_factor() + 1
    }

    /// Chunks generated for `num_frames` (the reference's `ceil(num_frames / 33)`, at least 1).
    pub fn chunks_for(&self, num_frames: usize) -> usize {
        num_frames.div_ceil(self.frames_per_chunk()).max(1)
    }

    /// Frames output for `chunks` chunks: the decoded frames trimmed to `4k + 1`.
    pub fn output_frames(&self, chunks: usize) -> usize {
        let tf = self.vae.temporal_factor();
        (chunks * self.frames_per_chunk()).saturating_sub(1) / tf * tf + 1
    }

    /// The request with the checkpoint defaults filled in, or a clear error for anything the model
    /// cannot take. Nothing is computed before this passes.
    pub fn resolve(&self, request: &StreamRequest) -> Result<ResolvedRequest> {
        let bad = |msg: String| Err(Error::InvalidRequest(msg));
        let params = &request.params;
        check_prompt("prompt", &request.prompt)?;
        if let Some(n) = &params.negative_prompt
            && n.len() > MAX_PROMPT_BYTES
        {
            return bad(format!(
                "the negative prompt is {} bytes; the limit is {MAX_PROMPT_BYTES}",
                n.len()
            ));
        }
        let m = self.size_multiple();
        let (height, width) = params.size();
        for (name, v) in [("height", height), ("width", width)] {
            if v == 0 || v % m != 0 || v > MAX_SIDE {
                return bad(format!(
                    "{name} {v} is not usable: it must be a positive multiple of {m} (VAE factor x patch x pyramid) up to {MAX_SIDE}"
                ));
            }
        }
        let steps = params.steps.clone().unwrap_or_else(|| self.default_steps());
        let stages = self.stages();
        if steps.len() != stages {
            return bad(format!(
                "{} step counts given ({steps:?}); this checkpoint has {stages} stage(s), so give {stages}",
                steps.len()
            ));
        }
        if let Some(s) = steps.iter().find(|&&s| s == 0 || s > MAX_STEPS) {
            return bad(format!(
                "{s} steps in a stage; each stage takes 1 to {MAX_STEPS}"
            ));
        }
        let guidance_scale = params
            .guidance_scale
            .unwrap_or_else(|| self.default_guidance());
        if !guidance_scale.is_finite() || guidance_scale < 0.0 {
            return bad(format!(
                "guidance scale {guidance_scale} must be a finite number >= 0"
            ));
        }
        if let Conditioning::Video(frames) = &request.conditioning {
            let need = self.frames_per_chunk();
            if frames.len() < need {
                return bad(format!(
                    "the conditioning video has {} frames; it needs at least {need}",
                    frames.len()
                ));
            }
        }
        match &request.conditioning {
            Conditioning::Image(img) => check_picture(img)?,
            Conditioning::Video(frames) => frames.iter().try_for_each(check_picture)?,
            Conditioning::None => {}
        }
        let max_sequence_length = params
            .max_sequence_length
            .unwrap_or_else(|| self.default_max_sequence_length());
        if max_sequence_length == 0 || max_sequence_length > 4096 {
            return bad(format!(
                "max_sequence_length {max_sequence_length} must be 1 to 4096"
            ));
        }
        Ok(ResolvedRequest {
            height,
            width,
            steps,
            guidance: self.guidance(guidance_scale),
            max_sequence_length,
        })
    }
}

/// The request with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRequest {
    /// Frame height in pixels.
    pub height: usize,
    /// Frame width in pixels.
    pub width: usize,
    /// Steps per stage.
    pub steps: Vec<usize>,
    /// Guidance mode.
    pub guidance: GuidanceMode,
    /// Prompt tokens the text encoder reads.
    pub max_sequence_length: usize,
}

/// A prompt must say something and be of a sane size.
pub fn check_prompt(what: &str, prompt: &str) -> Result<()> {
    if prompt.trim().is_empty() {
        return Err(Error::InvalidRequest(format!("the {what} is empty")));
    }
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(Error::InvalidRequest(format!(
            "the {what} is {} bytes; the limit is {MAX_PROMPT_BYTES}",
            prompt.len()
        )));
    }
    Ok(())
}

fn check_picture(img: &image::RgbImage) -> Result<()> {
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::InvalidRequest(
            "a conditioning picture is empty (0 pixels)".into(),
        ));
    }
    Ok(())
}

/// Steps of each stage's schedule for a chunk (DMD's amplified first chunk doubles them).
pub(crate) fn stage_lengths(
    scheduler: &FlowScheduler,
    sampling: Sampling,
    steps: &[usize],
    amplify: bool,
) -> Result<Vec<usize>> {
    steps
        .iter()
        .enumerate()
        .map(|(stage, &n)| {
            let request = match sampling {
                Sampling::SingleStage => TimestepRequest::single_stage(n),
                Sampling::Pyramid => TimestepRequest::stage(n, stage).amplified(amplify),
            };
            // The length does not depend on mu; any value satisfies a dynamic-shift config.
            Ok(scheduler.set_timesteps(&request.with_mu(1.0))?.len())
        })
        .collect()
}
