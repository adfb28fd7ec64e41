//! The denoising of one chunk: the single loop both pipelines share.
//!
//! Port of the per-chunk part of diffusers `HeliosPyramidPipeline.__call__` (pyramid: noise
//! down-sampled to the stage-0 size, per stage `set_timesteps` with `mu` lagging one stage, nearest
//! x2 up-sample and block-noise re-noise, int64 timesteps) and `HeliosPipeline.__call__` (single
//! stage at full size, `mu` of the full size, float timesteps), with CFG / CFG-Zero* /
//! no guidance and the DMD or UniPC step (pipeline_helios_pyramid.py, pipeline_helios.py, diffusers
//! 0.42.1).

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::noise::{DrawKind, NoiseSource};
use crate::dit::{DitInput, HeliosTransformer3DModel, History};
use crate::error::{Error, Result};
use crate::scheduler::guidance::GuidanceMode;
use crate::scheduler::noise::BlockNoise;
use crate::scheduler::pyramid::{downsample, renoise, upsample_nearest2x};
use crate::scheduler::{
    FlowScheduler, ShiftParams, TimestepRequest, calculate_shift, image_seq_len,
};

/// Single-stage (Base) or pyramid (Mid, Distilled) sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// `HeliosPipeline`: one stage at full resolution, float timesteps to the DiT.
    SingleStage,
    /// `HeliosPyramidPipeline`: `stages` resolutions, int64 timesteps to the DiT.
    Pyramid,
}

/// One DiT call as it happened (for progress reporting and conformance).
#[derive(Debug, Clone)]
pub struct DitCall<B: Backend> {
    /// Pyramid stage.
    pub stage: usize,
    /// Step within the stage.
    pub step: usize,
    /// Steps in the stage.
    pub steps_in_stage: usize,
    /// The timestep passed to the DiT.
    pub timestep: f64,
    /// The noisy latents the DiT saw.
    pub hidden_states: Tensor<B, 5>,
    /// The (guided) velocity that went into the scheduler step.
    pub velocity: Tensor<B, 5>,
}

/// Everything one chunk's denoising needs besides its noise.
pub struct ChunkDenoiser<'a, B: Backend> {
    /// The DiT.
    pub dit: &'a HeliosTransformer3DModel<B>,
    /// The scheduler.
    pub scheduler: &'a FlowScheduler,
    /// Single-stage or pyramid.
    pub sampling: Sampling,
    /// Steps per stage (one entry for single-stage).
    pub steps: &'a [usize],
    /// CFG mode.
    pub guidance: GuidanceMode,
    /// DMD's amplified first chunk (twice the steps) for this chunk.
    pub amplify: bool,
    /// Positive prompt embeddings `[1, l, text_dim]`.
    pub cond: Tensor<B, 3>,
    /// Negative prompt embeddings, when guidance needs them.
    pub uncond: Option<Tensor<B, 3>>,
    /// The compacted history at full latent resolution.
    pub history: History<B>,
    /// RoPE frame indices of the chunk's frames.
    pub indices: Vec<i64>,
    /// Set to stop between two DiT calls.
    pub cancel: &'a AtomicBool,
}

fn shift_mu(scheduler: &FlowScheduler, seq: usize) -> Option<f64> {
    let config = scheduler.tables().config();
    config
        .use_dynamic_shifting
        .then(|| calculate_shift(seq, &ShiftParams::default()))
}

/// The timesteps of pyramid stage `stage` with `steps` steps, as the pyramid loop sets them: `mu`
/// from the latents `held` (`[t, h, w]`) before the stage's up-sample, so it lags one stage. The
/// demo model's trainer asks for the same schedules to train at the points the sampler visits.
pub fn pyramid_schedule(
    scheduler: &FlowScheduler,
    patch: [usize; 3],
    steps: usize,
    stage: usize,
    held: [usize; 3],
    amplify: bool,
) -> Result<crate::scheduler::StageSchedule> {
    let [t, h, w] = held;
    let mut request = TimestepRequest::stage(steps, stage).amplified(amplify);
    if let Some(mu) = shift_mu(scheduler, image_seq_len(t, h, w, patch)) {
        request = request.with_mu(mu);
    }
    scheduler.set_timesteps(&request)
}

impl<B: Backend> ChunkDenoiser<'_, B> {
    /// The noise of a chunk `[b, c, t, h, w]` drawn from `noise`.
    pub fn draw(
        noise: &mut dyn NoiseSource,
        shape: [usize; 5],
        device: &B::Device,
    ) -> Result<Tensor<B, 5>> {
        let values = noise.draw(DrawKind::Normal, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    fn velocity(
        &self,
        latents: &Tensor<B, 5>,
        timestep: f64,
        stage: usize,
        step: usize,
    ) -> Result<Tensor<B, 5>> {
        let call = |text: Tensor<B, 3>| {
            self.dit.forward(DitInput {
                hidden_states: latents.clone(),
                timesteps: vec![timestep; latents.dims()[0]],
                encoder_hidden_states: text,
                indices: self.indices.clone(),
                history: Some(self.history.clone()),
            })
        };
        let cond = call(self.cond.clone())?;
        let uncond = match (&self.uncond, self.guidance.needs_uncond()) {
            (Some(u), true) => Some(call(u.clone())?),
            _ => None,
        };
        self.guidance.combine(cond, uncond, stage, step)
    }

    /// Denoises one chunk. `shape` is the full-resolution latent shape `[b, c, t, h, w]`; draws come
    /// from `noise` in the reference order (chunk noise, then one block-noise draw per later stage);
    /// `on_call` sees each DiT call after it ran (cheap: the tensors are shared, not copied).
    pub fn run(
        &self,
        shape: [usize; 5],
        noise: &mut dyn NoiseSource,
        on_call: &mut dyn FnMut(&DitCall<B>),
    ) -> Result<Tensor<B, 5>> {
        let device = self.cond.device();
        let patch = self.dit.config().patch_size;
        let stages = match self.sampling {
            Sampling::SingleStage => 1,
            Sampling::Pyramid => self.scheduler.stages(),
        };
        if self.steps.len() != stages || self.steps.contains(&0) {
            return Err(Error::InvalidRequest(format!(
                "{} steps given ({:?}), the scheduler has {stages} stage(s) and each needs at least one step",
                self.steps.len(),
                self.steps
            )));
        }
        let mut latents = Self::draw(noise, shape, &device)?;
        if self.sampling == Sampling::Pyramid {
            latents = downsample(latents, stages - 1)?;
        }
        for (stage, &steps) in self.steps.iter().enumerate() {
            let [_, _, t, h, w] = latents.dims();
            let schedule = match self.sampling {
                Sampling::SingleStage => {
                    let mut request = TimestepRequest::single_stage(steps);
                    if let Some(mu) = shift_mu(self.scheduler, image_seq_len(t, h, w, patch)) {
                        request = request.with_mu(mu);
                    }
                    self.scheduler.set_timesteps(&request)?
                }
                Sampling::Pyramid => {
                    // mu from the latents held now, before this stage's up-sample (it lags a stage).
                    let schedule = pyramid_schedule(
                        self.scheduler,
                        patch,
                        steps,
                        stage,
                        [t, h, w],
                        self.amplify,
                    )?;
                    if stage > 0 {
                        let up = upsample_nearest2x(latents);
                        let block = BlockNoise::new(self.scheduler.gamma(), [patch[1], patch[2]])?;
                        let dims = up.dims();
                        let z_shape = block.z_shape(dims)?;
                        let z = noise.draw(DrawKind::Normal, &z_shape)?;
                        let z = Tensor::<B, 2>::from_data(TensorData::new(z, z_shape), &device);
                        latents =
                            renoise(up, block.sample(z, dims)?, self.scheduler.renoise(stage)?)?;
                    }
                    schedule
                }
            };
            let mut state = self.scheduler.start(&latents);
            for i in 0..schedule.len() {
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let Some(step) = schedule.step(i) else { break };
                let timestep = match self.sampling {
                    Sampling::SingleStage => step.timestep,
                    Sampling::Pyramid => step.timestep_i64 as f64,
                };
                let velocity = self.velocity(&latents, timestep, stage, i)?;
                on_call(&DitCall {
                    stage,
                    step: i,
                    steps_in_stage: schedule.len(),
                    timestep,
                    hidden_states: latents.clone(),
                    velocity: velocity.clone(),
                });
                latents = self
                    .scheduler
                    .step(&schedule, &mut state, velocity, latents)?;
            }
        }
        Ok(latents)
    }
}
