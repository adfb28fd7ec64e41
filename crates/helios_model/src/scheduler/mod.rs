//! The Helios samplers and the sampling math around them.
//!
//! * [`shift`]: `linspace`, `calculate_shift` and `time_shift` in float64; [`sigmas`]: the timestep /
//!   sigma tables (stage ranges, dynamic shift); [`schedule`]: one stage's request and schedule.
//! * [`dmd`]: `HeliosDMDScheduler` (Distilled), [`unipc`]: `HeliosScheduler` (UniPC bh2; Base and Mid).
//! * [`noise`]: f64-Cholesky block noise, [`pyramid`]: stage down/up-sampling and re-noise,
//!   [`guidance`]: CFG and CFG-Zero*.
//!
//! [`FlowScheduler`] puts both classes behind one API. A pipeline drives it stage by stage:
//!
//! ```no_run
//! # use burn::tensor::{Tensor, backend::Backend};
//! # use helios_model::scheduler::{FlowScheduler, TimestepRequest};
//! # fn run<B: Backend>(sched: &FlowScheduler, mut x: Tensor<B, 5>, mu: f64,
//! #     model: impl Fn(&Tensor<B, 5>, i64) -> Tensor<B, 5>) -> helios_model::Result<Tensor<B, 5>> {
//! let schedule = sched.set_timesteps(&TimestepRequest::stage(2, 0).with_mu(mu))?;
//! let mut state = sched.start(&x); // x = the stage start latent [b, c, t, h, w]
//! for step in schedule.steps() {
//!     let v = model(&x, step.timestep_i64); // pyramid pipelines pass int64(t), HeliosPipeline t
//!     x = sched.step(&schedule, &mut state, v, x)?;
//! }
//! # Ok(x) }
//! ```
//!
//! Tensors are `[b, c, t, h, w]` f32; every coefficient is computed in f64 and rounded to f32 only
//! when applied.

pub mod dmd;
pub mod guidance;
pub mod noise;
pub mod pyramid;
pub mod schedule;
pub mod shift;
pub mod sigmas;
pub mod unipc;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

pub use dmd::HeliosDmdScheduler;
pub use guidance::GuidanceMode;
pub use noise::BlockNoise;
pub use pyramid::{pyramid_mu_source_stage, pyramid_stage_sizes};
pub use schedule::{ScheduleStep, StageSchedule, TimestepRequest};
pub use sigmas::{Renoise, ShiftParams, StageTables, calculate_shift, image_seq_len};
pub use unipc::{HeliosScheduler, UniPcState};

use crate::config::{SchedulerClass, SchedulerConfig};
use crate::error::{Error, Result};

/// Which sampler a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    /// `HeliosDMDScheduler` (Distilled).
    Dmd,
    /// `HeliosScheduler` (UniPC; Base and Mid).
    UniPc,
}

impl From<SchedulerClass> for SchedulerKind {
    fn from(class: SchedulerClass) -> Self {
        match class {
            SchedulerClass::HeliosDmd => Self::Dmd,
            SchedulerClass::Helios => Self::UniPc,
        }
    }
}

/// Either Helios scheduler, built from `scheduler_config.json`. Immutable; the per-stage sampling
/// state is a [`SamplerState`].
#[derive(Debug, Clone, PartialEq)]
pub enum FlowScheduler {
    /// Distilled.
    Dmd(HeliosDmdScheduler),
    /// Base / Mid.
    UniPc(HeliosScheduler),
}

/// The state of one stage's sampling: the DMD stage start latent, or the UniPC multistep history.
#[derive(Debug, Clone)]
pub enum SamplerState<B: Backend> {
    /// DMD: the re-noise target and the next step index.
    Dmd {
        /// The latent the stage started from.
        stage_start: Tensor<B, 5>,
        /// The next step.
        step_index: usize,
    },
    /// UniPC history.
    UniPc(UniPcState<B>),
}

impl<B: Backend> SamplerState<B> {
    /// The index of the next step.
    pub fn step_index(&self) -> usize {
        match self {
            Self::Dmd { step_index, .. } => *step_index,
            Self::UniPc(s) => s.step_index(),
        }
    }
}

impl FlowScheduler {
    /// Builds the scheduler the config's `_class_name` names.
    pub fn new(config: &SchedulerConfig) -> Result<Self> {
        match config.class_name {
            SchedulerClass::HeliosDmd => Ok(Self::Dmd(HeliosDmdScheduler::new(config)?)),
            SchedulerClass::Helios => Ok(Self::UniPc(HeliosScheduler::new(config)?)),
        }
    }

    /// DMD or UniPC.
    pub fn kind(&self) -> SchedulerKind {
        match self {
            Self::Dmd(_) => SchedulerKind::Dmd,
            Self::UniPc(_) => SchedulerKind::UniPc,
        }
    }

    /// The float64 tables (stage ranges, global sigmas).
    pub fn tables(&self) -> &StageTables {
        match self {
            Self::Dmd(s) => s.tables(),
            Self::UniPc(s) => s.tables(),
        }
    }

    /// Pyramid stages of the config (1 for Base).
    pub fn stages(&self) -> usize {
        self.tables().config().stages()
    }

    /// `gamma` of the config (block noise and re-noise).
    pub fn gamma(&self) -> f64 {
        self.tables().config().gamma
    }

    /// `set_timesteps` of one stage. `request.mu` is what the caller computed (the pyramid pipeline's
    /// mu lags one stage: see [`pyramid_mu_source_stage`]); `amplify_first_chunk` only affects DMD.
    pub fn set_timesteps(&self, request: &TimestepRequest) -> Result<StageSchedule> {
        match self {
            Self::Dmd(s) => s.set_timesteps(request),
            Self::UniPc(s) => s.set_timesteps(request),
        }
    }

    /// The re-noise of the transition into pyramid stage `stage >= 1`.
    pub fn renoise(&self, stage: usize) -> Result<Renoise> {
        self.tables().renoise(stage)
    }

    /// A fresh state for a stage that starts from `stage_start` (after its up-sample and re-noise).
    pub fn start<B: Backend>(&self, stage_start: &Tensor<B, 5>) -> SamplerState<B> {
        match self {
            Self::Dmd(_) => SamplerState::Dmd {
                stage_start: stage_start.clone(),
                step_index: 0,
            },
            Self::UniPc(s) => SamplerState::UniPc(s.new_state()),
        }
    }

    /// One step at `state.step_index()`: `sample` and the (guided) flow velocity `model_output`, both
    /// `[b, c, t, h, w]`, give the next sample.
    pub fn step<B: Backend>(
        &self,
        schedule: &StageSchedule,
        state: &mut SamplerState<B>,
        model_output: Tensor<B, 5>,
        sample: Tensor<B, 5>,
    ) -> Result<Tensor<B, 5>> {
        match (self, state) {
            (
                Self::Dmd(s),
                SamplerState::Dmd {
                    stage_start,
                    step_index,
                },
            ) => {
                let out = s.step(schedule, *step_index, model_output, sample, stage_start)?;
                *step_index += 1;
                Ok(out)
            }
            (Self::UniPc(s), SamplerState::UniPc(st)) => s.step(schedule, st, model_output, sample),
            _ => Err(Error::InvalidRequest(
                "sampler state of the other scheduler kind".into(),
            )),
        }
    }
}

/// An [`Error::Shape`] unless `a` has the shape of `reference`.
pub(crate) fn check_same_shape<B: Backend, const D: usize>(
    what: &str,
    a: &Tensor<B, D>,
    reference: &Tensor<B, D>,
) -> Result<()> {
    if a.dims() == reference.dims() {
        Ok(())
    } else {
        Err(Error::Shape {
            what: what.into(),
            expected: format!("{:?}", reference.dims()),
            got: format!("{:?}", a.dims()),
        })
    }
}
