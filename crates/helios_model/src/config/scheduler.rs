//! `scheduler/scheduler_config.json`: [`SchedulerConfig`] and its options.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the dynamic shift maps sigmas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeShiftType {
    /// `s' = e^mu / (e^mu + (1/s - 1))`.
    Exponential,
    /// `s' = mu / (mu + (1/s - 1))`.
    Linear,
}

/// Which scheduler class the checkpoint names (`_class_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum SchedulerClass {
    /// `HeliosScheduler` (UniPC; Base and Mid).
    #[default]
    #[serde(rename = "HeliosScheduler")]
    Helios,
    /// `HeliosDMDScheduler` (Distilled).
    #[serde(rename = "HeliosDMDScheduler")]
    HeliosDmd,
}

/// What the model predicts (`prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The flow velocity `noise - x0` (the only one Helios has).
    #[default]
    FlowPrediction,
}

/// UniPC's `B(h)` (`solver_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SolverType {
    /// `B(h) = h`.
    Bh1,
    /// `B(h) = e^h - 1` (the Helios default; diffusers maps `midpoint`, `heun` and `logrho` to it).
    #[default]
    #[serde(alias = "midpoint", alias = "heun", alias = "logrho")]
    Bh2,
}

/// Which update `HeliosScheduler.step` makes (`scheduler_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerType {
    /// UniPC predictor-corrector (the Helios default).
    #[default]
    #[serde(rename = "unipc")]
    UniPc,
    /// First-order Euler on the flow: `x + (sigma_next - sigma) * v`.
    Euler,
}

/// `scheduler/scheduler_config.json` (either `HeliosScheduler` or `HeliosDMDScheduler`); a missing
/// key takes the diffusers 0.42.1 default ([`SchedulerConfig::default`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// `_class_name`.
    #[serde(rename = "_class_name")]
    pub class_name: SchedulerClass,
    /// Training timesteps (1000).
    pub num_train_timesteps: usize,
    /// Static shift.
    pub shift: f64,
    /// Pyramid stages.
    pub stages: usize,
    /// Stage boundaries in [0, 1], `stages + 1` values.
    pub stage_range: Vec<f64>,
    /// Stage-transition re-noise parameter.
    pub gamma: f64,
    /// What the model predicts.
    pub prediction_type: PredictionType,
    /// UniPC order.
    pub solver_order: usize,
    /// UniPC predicts x0.
    pub predict_x0: bool,
    /// UniPC's `B(h)`.
    pub solver_type: SolverType,
    /// Lower the order on the last steps.
    pub lower_order_final: bool,
    /// Steps without the UniC corrector.
    pub disable_corrector: Vec<usize>,
    /// Flow sigmas.
    pub use_flow_sigmas: bool,
    /// UniPC or Euler steps.
    pub scheduler_type: SchedulerType,
    /// Resolution-dependent shift `mu`.
    pub use_dynamic_shifting: bool,
    /// Linear or exponential shift (the default depends on the class: [`Self::shift_type`]).
    pub time_shift_type: Option<TimeShiftType>,
}

impl Default for SchedulerConfig {
    /// The defaults of diffusers' `HeliosScheduler.__init__` (the default of `time_shift_type` depends
    /// on the class).
    fn default() -> Self {
        Self {
            class_name: SchedulerClass::Helios,
            num_train_timesteps: 1000,
            shift: 1.0,
            stages: 3,
            stage_range: vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0],
            gamma: 1.0 / 3.0,
            prediction_type: PredictionType::FlowPrediction,
            solver_order: 2,
            predict_x0: true,
            solver_type: SolverType::Bh2,
            lower_order_final: true,
            disable_corrector: Vec::new(),
            use_flow_sigmas: true,
            scheduler_type: SchedulerType::UniPc,
            use_dynamic_shifting: false,
            time_shift_type: None,
        }
    }
}

impl SchedulerConfig {
    /// The shift type, with each class's default.
    pub fn shift_type(&self) -> TimeShiftType {
        self.time_shift_type.unwrap_or(match self.class_name {
            SchedulerClass::HeliosDmd => TimeShiftType::Linear,
            SchedulerClass::Helios => TimeShiftType::Exponential,
        })
    }

    /// Checks the values the schedulers rely on (the schedulers' constructors call it too).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(Error::config(path, m));
        if self.num_train_timesteps < 2 {
            return bad(format!(
                "num_train_timesteps must be >= 2, got {}",
                self.num_train_timesteps
            ));
        }
        if self.stages == 0 || self.stage_range.len() != self.stages + 1 {
            return bad(format!(
                "stage_range must have stages + 1 = {} values",
                self.stages + 1
            ));
        }
        let sorted = self.stage_range.windows(2).all(|w| w[0] <= w[1]);
        let inside = self.stage_range.iter().all(|r| (0.0..=1.0).contains(r));
        if !sorted || !inside || self.stage_range[self.stages - 1] >= 1.0 {
            return bad(format!(
                "stage_range {:?} must be non-decreasing in [0, 1] with every stage starting below 1",
                self.stage_range
            ));
        }
        if !(self.gamma > 0.0 && self.gamma.is_finite()) {
            return bad(format!("gamma must be > 0, got {}", self.gamma));
        }
        if !(self.shift > 0.0 && self.shift.is_finite()) {
            return bad(format!("shift must be > 0, got {}", self.shift));
        }
        if self.use_dynamic_shifting && self.shift != 1.0 {
            return bad(format!(
                "use_dynamic_shifting needs shift = 1.0, got {}",
                self.shift
            ));
        }
        if self.class_name == SchedulerClass::Helios {
            if self.scheduler_type == SchedulerType::UniPc && !self.predict_x0 {
                return bad(
                    "predict_x0 = false has no flow_prediction form in HeliosScheduler".into(),
                );
            }
            if !self.use_flow_sigmas {
                return bad("use_flow_sigmas = false is not supported".into());
            }
            if self.solver_order == 0 {
                return bad("solver_order must be >= 1".into());
            }
        }
        Ok(())
    }
}
