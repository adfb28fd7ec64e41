//! The float64 timestep / sigma tables shared by both Helios schedulers.
//!
//! Port of the table code common to diffusers `HeliosScheduler` and `HeliosDMDScheduler`
//! (`init_sigmas`, `init_sigmas_for_each_stage`, `set_timesteps`, `time_shift`; scheduling_helios.py and
//! scheduling_helios_dmd.py, diffusers 0.42.1) and of the pipelines' `calculate_shift`.
//!
//! Everything here is `f64` and follows the reference operation by operation (including numpy's
//! `linspace`), so that the tables match `scheduler_tables.json` to the last few ulps.

use std::path::PathBuf;

use crate::config::{SchedulerConfig, TimeShiftType};
use crate::error::{Error, Result};

pub use super::schedule::{ScheduleStep, StageSchedule, TimestepRequest, truncate_timestep};
pub use super::shift::{ShiftParams, calculate_shift, image_seq_len, linspace, time_shift};

/// Where the config error is reported (the scheduler only sees the parsed config).
fn config_path() -> PathBuf {
    PathBuf::from("scheduler/scheduler_config.json")
}

/// The fixed per-stage ranges of one pyramid stage (`init_sigmas_for_each_stage`).
#[derive(Debug, Clone, PartialEq)]
pub struct StageRange {
    /// `ori_start_sigmas[s]`: the global sigma at the stage's start index.
    pub ori_start_sigma: f64,
    /// `start_sigmas[s]`: `ori_start_sigma`, corrected for the re-noise for `s > 0`.
    pub start_sigma: f64,
    /// `end_sigmas[s]`.
    pub end_sigma: f64,
    /// `timestep_ratios[s]`: the stage's share of the flow, `(start, end)` in [0, 1).
    pub timestep_ratio: (f64, f64),
    /// `timesteps_per_stage[s][0]`.
    pub timestep_first: f64,
    /// `timesteps_per_stage[s][-1]`.
    pub timestep_last: f64,
    /// `timesteps_per_stage[s].max()`.
    pub timestep_max: f64,
    /// `timesteps_per_stage[s].min()`.
    pub timestep_min: f64,
    /// `sigmas_per_stage[s][0]` (0.999).
    pub sigma_first: f64,
    /// `sigmas_per_stage[s][-1]` (0.000999).
    pub sigma_last: f64,
}

/// The stage re-noise of a pyramid stage transition: `x = alpha * up(x) + beta * block_noise`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Renoise {
    /// Scale of the upsampled latents.
    pub alpha: f64,
    /// Scale of the block noise.
    pub beta: f64,
}

/// What `set_timesteps` needs from the scheduler config, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TableConfig {
    /// Training timesteps (1000).
    pub num_train_timesteps: usize,
    /// Static shift (must be 1 with dynamic shifting).
    pub shift: f64,
    /// Stage boundaries, `stages + 1` values in [0, 1].
    pub stage_range: Vec<f64>,
    /// Re-noise parameter.
    pub gamma: f64,
    /// Resolution-dependent shift `mu`.
    pub use_dynamic_shifting: bool,
    /// Linear or exponential shift.
    pub time_shift_type: TimeShiftType,
}

impl TableConfig {
    /// Takes the table fields of a scheduler config and checks them.
    pub fn from_config(config: &SchedulerConfig) -> Result<Self> {
        config.validate(&config_path())?;
        Ok(Self {
            num_train_timesteps: config.num_train_timesteps,
            shift: config.shift,
            stage_range: config.stage_range.clone(),
            gamma: config.gamma,
            use_dynamic_shifting: config.use_dynamic_shifting,
            time_shift_type: config.shift_type(),
        })
    }

    /// Number of stages.
    pub fn stages(&self) -> usize {
        self.stage_range.len() - 1
    }
}

/// How `set_timesteps` counts steps: UniPC uses `n` points, DMD `n + 1` (or `2n + 1` for the
/// amplified first chunk) and then drops the last timestep and the second-to-last sigma.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepCounting {
    /// `HeliosScheduler` (`scheduler_type` unipc / euler).
    Plain,
    /// `HeliosDMDScheduler`.
    Dmd {
        /// `is_amplify_first_chunk`: twice the steps.
        amplify_first_chunk: bool,
    },
}

/// The float64 tables a Helios scheduler computes at construction (`init_sigmas` +
/// `init_sigmas_for_each_stage`), and `set_timesteps` on top of them.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTables {
    config: TableConfig,
    /// `init_sigmas()`: the global sigmas, `num_train_timesteps` values from ~1 down.
    pub sigmas: Vec<f64>,
    /// `sigmas * num_train_timesteps`.
    pub timesteps: Vec<f64>,
    /// One entry per stage.
    pub stages: Vec<StageRange>,
}

impl StageTables {
    /// Computes the tables of a scheduler config.
    pub fn new(config: TableConfig) -> Result<Self> {
        let t_count = config.num_train_timesteps;
        let tf = t_count as f64;
        let shift = config.shift;
        // init_sigmas: alphas = linspace(1, 1/T, T + 1); sigmas = flip(shift*s/(1+(shift-1)*s))[:-1].
        let alphas = linspace(1.0, 1.0 / tf, t_count + 1);
        let shifted: Vec<f64> = alphas
            .iter()
            .map(|a| {
                let s = 1.0 - a;
                shift * s / (1.0 + (shift - 1.0) * s)
            })
            .collect();
        let sigmas: Vec<f64> = shifted.iter().rev().take(t_count).copied().collect();
        let timesteps: Vec<f64> = sigmas.iter().map(|s| s * tf).collect();

        let n_stages = config.stages();
        let mut partial = Vec::with_capacity(n_stages);
        let mut distance = Vec::with_capacity(n_stages);
        for s in 0..n_stages {
            let start_index = py_int(config.stage_range[s] * tf).max(0) as usize;
            let end_index = (py_int(config.stage_range[s + 1] * tf).max(0) as usize).min(t_count);
            let ori_start_sigma = *sigmas.get(start_index).ok_or_else(|| {
                Error::config(
                    config_path(),
                    format!("stage {s} starts at index {start_index} >= {t_count}"),
                )
            })?;
            let end_sigma = if end_index < t_count {
                sigmas[end_index]
            } else {
                0.0
            };
            let mut start_sigma = ori_start_sigma;
            if s != 0 {
                let ori = 1.0 - start_sigma;
                let corrected =
                    (1.0 / ((1.0 + 1.0 / config.gamma).sqrt() * (1.0 - ori) + ori)) * ori;
                start_sigma = 1.0 - corrected;
            }
            distance.push(start_sigma - end_sigma);
            partial.push((ori_start_sigma, start_sigma, end_sigma));
        }
        let total: f64 = py_sum(&distance);
        let stage_sigmas = {
            let mut v = linspace(0.999, 0.0, t_count + 1);
            v.pop();
            v
        };
        let mut stages = Vec::with_capacity(n_stages);
        for (s, &(ori_start_sigma, start_sigma, end_sigma)) in partial.iter().enumerate() {
            let start_ratio = if s == 0 {
                0.0
            } else {
                py_sum(&distance[..s]) / total
            };
            let end_ratio = if s == n_stages - 1 {
                0.999_999_999_999_999_9
            } else {
                py_sum(&distance[..=s]) / total
            };
            let max_index = (py_int(start_ratio * tf).max(0) as usize).min(t_count - 1);
            let min_index = (py_int(end_ratio * tf).max(0) as usize).min(t_count - 1);
            let t_max = timesteps[max_index].min(999.0);
            let t_min = timesteps[min_index];
            let mut per_stage = linspace(t_max, t_min, t_count + 1);
            per_stage.pop();
            let first = per_stage[0];
            let last = per_stage[per_stage.len() - 1];
            let (lo, hi) = per_stage
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            stages.push(StageRange {
                ori_start_sigma,
                start_sigma,
                end_sigma,
                timestep_ratio: (start_ratio, end_ratio),
                timestep_first: first,
                timestep_last: last,
                timestep_max: hi,
                timestep_min: lo,
                sigma_first: stage_sigmas[0],
                sigma_last: stage_sigmas[stage_sigmas.len() - 1],
            });
        }
        Ok(Self {
            config,
            sigmas,
            timesteps,
            stages,
        })
    }

    /// The validated config.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// The re-noise of the transition into `stage` (`stage >= 1`), as HeliosPyramidPipeline computes
    /// it: `ori = 1 - ori_start_sigma`, `alpha = 1 / (sqrt(1 + 1/gamma) (1 - ori) + ori)`,
    /// `beta = alpha (1 - ori) / sqrt(gamma)`.
    pub fn renoise(&self, stage: usize) -> Result<Renoise> {
        if stage == 0 || stage >= self.stages.len() {
            return Err(Error::InvalidRequest(format!(
                "re-noise exists for stages 1..{}, not stage {stage}",
                self.stages.len()
            )));
        }
        let ori = 1.0 - self.stages[stage].ori_start_sigma;
        let gamma = self.config.gamma;
        let alpha = 1.0 / ((1.0 + 1.0 / gamma).sqrt() * (1.0 - ori) + ori);
        let beta = alpha * (1.0 - ori) / gamma.sqrt();
        Ok(Renoise { alpha, beta })
    }

    /// `set_timesteps` of either class (`counting` says which).
    pub fn set_timesteps(
        &self,
        request: &TimestepRequest,
        counting: StepCounting,
    ) -> Result<StageSchedule> {
        let cfg = &self.config;
        let tf = cfg.num_train_timesteps as f64;
        if request.num_steps == 0 {
            return Err(Error::InvalidRequest(
                "a stage needs at least one inference step".into(),
            ));
        }
        let n = match counting {
            StepCounting::Plain => request.num_steps,
            StepCounting::Dmd {
                amplify_first_chunk: true,
            } => request.num_steps * 2 + 1,
            StepCounting::Dmd {
                amplify_first_chunk: false,
            } => request.num_steps + 1,
        };
        let (mut timesteps, mut sigmas) = if cfg.stages() == 1 {
            let sigmas: Vec<f64> = match &request.sigmas {
                Some(s) => {
                    if s.len() != n {
                        return Err(Error::InvalidRequest(format!(
                            "{} sigmas given for {n} scheduler points",
                            s.len()
                        )));
                    }
                    s.clone()
                }
                None => {
                    // linspace(1, 1/T, n + 1)[:-1].astype(float32), then the static shift.
                    let mut s: Vec<f64> = linspace(1.0, 1.0 / tf, n + 1)
                        .iter()
                        .map(|&v| v as f32 as f64)
                        .collect();
                    s.pop();
                    if cfg.shift != 1.0 {
                        s.iter_mut()
                            .for_each(|v| *v = time_shift(cfg.time_shift_type, cfg.shift, *v));
                    }
                    s
                }
            };
            (sigmas.iter().map(|s| s * tf).collect::<Vec<f64>>(), sigmas)
        } else {
            if request.sigmas.is_some() {
                return Err(Error::InvalidRequest(
                    "explicit sigmas need a single-stage scheduler".into(),
                ));
            }
            let range = self.stage_range(request.stage)?;
            (
                linspace(range.timestep_first, range.timestep_last, n),
                linspace(range.sigma_first, range.sigma_last, n),
            )
        };
        sigmas.push(0.0);
        if let StepCounting::Dmd { .. } = counting {
            timesteps.pop();
            let last = sigmas.pop().unwrap_or(0.0);
            sigmas.pop();
            sigmas.push(last);
        }
        if cfg.use_dynamic_shifting {
            let mu = request.mu.ok_or_else(|| {
                Error::InvalidRequest(
                    "this scheduler uses dynamic shifting: set_timesteps needs mu".into(),
                )
            })?;
            sigmas
                .iter_mut()
                .for_each(|s| *s = time_shift(cfg.time_shift_type, mu, *s));
            let body = &sigmas[..sigmas.len() - 1];
            timesteps = if cfg.stages() == 1 {
                body.iter().map(|s| s * tf).collect()
            } else {
                let range = self.stage_range(request.stage)?;
                let span = range.timestep_max - range.timestep_min;
                body.iter().map(|s| range.timestep_min + s * span).collect()
            };
        }
        Ok(StageSchedule {
            stage: request.stage,
            mu: if cfg.use_dynamic_shifting {
                request.mu
            } else {
                None
            },
            timesteps,
            sigmas,
        })
    }

    fn stage_range(&self, stage: usize) -> Result<&StageRange> {
        self.stages.get(stage).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "stage {stage} does not exist ({} stages)",
                self.stages.len()
            ))
        })
    }
}

/// Python `int(x)` of a float: truncation toward zero.
fn py_int(x: f64) -> i64 {
    x.trunc() as i64
}

/// Python `sum(list)`: left to right from 0.
fn py_sum(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |acc, x| acc + x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmd_config() -> SchedulerConfig {
        serde_json::from_str(
            r#"{"_class_name": "HeliosDMDScheduler", "gamma": 0.3333333333333333, "stages": 3,
                "stage_range": [0.0, 0.3333333333333333, 0.6666666666666666, 1.0],
                "use_dynamic_shifting": true, "time_shift_type": "linear"}"#,
        )
        .unwrap()
    }

    #[test]
    fn dmd_stage_tables_and_lagging_mu() {
        let tables = StageTables::new(TableConfig::from_config(&dmd_config()).unwrap()).unwrap();
        assert!((tables.stages[1].ori_start_sigma - 0.6663330000000001).abs() < 1e-12);
        let req = TimestepRequest::stage(2, 1).with_mu(0.4627604166666667);
        let s = tables
            .set_timesteps(
                &req,
                StepCounting::Dmd {
                    amplify_first_chunk: false,
                },
            )
            .unwrap();
        assert_eq!(s.timesteps_i64(), vec![742, 499]);
        assert_eq!(s.sigmas.len(), 3);
        assert_eq!(s.sigmas[2], 0.0);
        let r = tables.renoise(1).unwrap();
        assert!(
            (r.alpha - 0.6001201440528393).abs() < 1e-12
                && (r.beta - 0.6926122274238059).abs() < 1e-12
        );
        assert!(tables.renoise(0).is_err());
    }

    #[test]
    fn bad_requests_are_errors() {
        let tables = StageTables::new(TableConfig::from_config(&dmd_config()).unwrap()).unwrap();
        let plain = StepCounting::Plain;
        assert!(
            tables
                .set_timesteps(&TimestepRequest::stage(0, 0).with_mu(0.5), plain)
                .is_err()
        );
        assert!(
            tables
                .set_timesteps(&TimestepRequest::stage(2, 3).with_mu(0.5), plain)
                .is_err()
        );
        assert!(
            tables
                .set_timesteps(&TimestepRequest::stage(2, 0), plain)
                .is_err()
        );
        let mut cfg = dmd_config();
        cfg.stage_range = vec![0.0, 1.0];
        assert!(TableConfig::from_config(&cfg).is_err());
    }
}
