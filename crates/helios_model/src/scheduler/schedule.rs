//! One `set_timesteps` call ([`TimestepRequest`]) and what it returns ([`StageSchedule`]): the
//! float64 timesteps and sigmas of one stage, step by step.

use super::shift::linspace;

/// One `set_timesteps` call.
#[derive(Debug, Clone, PartialEq)]
pub struct TimestepRequest {
    /// Inference steps of this stage (before DMD's `+1` / `2n+1`).
    pub num_steps: usize,
    /// Pyramid stage (0 for single-stage schedulers).
    pub stage: usize,
    /// Dynamic-shift `mu` (required when the config has `use_dynamic_shifting`).
    pub mu: Option<f64>,
    /// DMD only: the amplified first chunk (2n + 1 points).
    pub amplify_first_chunk: bool,
    /// Single-stage only: explicit sigmas (HeliosPipeline passes `linspace(0.999, 0, n + 1)[:-1]`).
    pub sigmas: Option<Vec<f64>>,
}

impl TimestepRequest {
    /// `num_steps` steps of pyramid stage `stage`.
    pub fn stage(num_steps: usize, stage: usize) -> Self {
        Self {
            num_steps,
            stage,
            mu: None,
            amplify_first_chunk: false,
            sigmas: None,
        }
    }

    /// `num_steps` steps of a single-stage scheduler with the sigmas HeliosPipeline passes,
    /// `linspace(0.999, 0, n + 1)[:-1]`.
    pub fn single_stage(num_steps: usize) -> Self {
        let mut sigmas = linspace(0.999, 0.0, num_steps + 1);
        sigmas.pop();
        Self {
            num_steps,
            stage: 0,
            mu: None,
            amplify_first_chunk: false,
            sigmas: Some(sigmas),
        }
    }

    /// Sets the dynamic-shift `mu`.
    #[must_use]
    pub fn with_mu(mut self, mu: f64) -> Self {
        self.mu = Some(mu);
        self
    }

    /// Sets DMD's amplified-first-chunk flag.
    #[must_use]
    pub fn amplified(mut self, amplify_first_chunk: bool) -> Self {
        self.amplify_first_chunk = amplify_first_chunk;
        self
    }

    /// Sets explicit single-stage sigmas.
    #[must_use]
    pub fn with_sigmas(mut self, sigmas: Vec<f64>) -> Self {
        self.sigmas = Some(sigmas);
        self
    }
}

/// One denoising step of a [`StageSchedule`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleStep {
    /// Step index within the stage.
    pub index: usize,
    /// The scheduler's float64 timestep (HeliosPipeline passes this to the DiT).
    pub timestep: f64,
    /// `timestep.to(int64)` (truncation toward zero; pyramid pipelines pass this to the DiT).
    pub timestep_i64: i64,
    /// Sigma at this step.
    pub sigma: f64,
    /// Sigma after this step (0 after the last).
    pub sigma_next: f64,
}

/// The result of `set_timesteps` for one stage: `timesteps` (n values) and `sigmas` (n + 1 values,
/// the last one 0), all float64.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSchedule {
    /// The stage.
    pub stage: usize,
    /// The `mu` it was shifted with.
    pub mu: Option<f64>,
    /// `scheduler.timesteps`.
    pub timesteps: Vec<f64>,
    /// `scheduler.sigmas` (one more than `timesteps`).
    pub sigmas: Vec<f64>,
}

/// `f64 -> i64` as torch's `.to(torch.int64)`: truncation toward zero.
pub fn truncate_timestep(t: f64) -> i64 {
    t.trunc() as i64
}

impl StageSchedule {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    /// No steps.
    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }

    /// `timesteps.to(int64)`.
    pub fn timesteps_i64(&self) -> Vec<i64> {
        self.timesteps
            .iter()
            .map(|&t| truncate_timestep(t))
            .collect()
    }

    /// Step `index`, or `None` past the end.
    pub fn step(&self, index: usize) -> Option<ScheduleStep> {
        let timestep = *self.timesteps.get(index)?;
        Some(ScheduleStep {
            index,
            timestep,
            timestep_i64: truncate_timestep(timestep),
            sigma: *self.sigmas.get(index)?,
            sigma_next: *self.sigmas.get(index + 1)?,
        })
    }

    /// Every step, in order.
    pub fn steps(&self) -> impl Iterator<Item = ScheduleStep> + '_ {
        (0..self.len()).filter_map(|i| self.step(i))
    }
}
