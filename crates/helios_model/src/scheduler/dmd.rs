//! The few-step DMD sampler of Helios Distilled.
//!
//! Port of diffusers `HeliosDMDScheduler` (scheduling_helios_dmd.py, diffusers 0.42.1).
//!
//! Each step predicts `x0 = x - sigma_t * v` and, except at the last step of a stage, re-noises it
//! towards the stage START latent (not fresh noise): `x' = (1 - sigma_next) * x0 + sigma_next * start`.
//! Both sigmas are looked up by `argmin |timesteps - int64(t)|`, i.e. with the timestep truncated,
//! exactly as the reference does.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::sigmas::{
    StageSchedule, StageTables, StepCounting, TableConfig, TimestepRequest, truncate_timestep,
};
use crate::config::SchedulerConfig;
use crate::error::{Error, Result};

/// Port of diffusers `HeliosDMDScheduler` (scheduling_helios_dmd.py, diffusers 0.42.1).
///
/// Immutable after construction: `set_timesteps` returns a [`StageSchedule`] and [`Self::step`] is a
/// pure function of that schedule, the step index and the stage start latent.
#[derive(Debug, Clone, PartialEq)]
pub struct HeliosDmdScheduler {
    tables: StageTables,
}

impl HeliosDmdScheduler {
    /// Builds the scheduler from `scheduler_config.json`.
    pub fn new(config: &SchedulerConfig) -> Result<Self> {
        Ok(Self {
            tables: StageTables::new(TableConfig::from_config(config)?)?,
        })
    }

    /// The float64 tables.
    pub fn tables(&self) -> &StageTables {
        &self.tables
    }

    /// `set_timesteps(num_steps, stage, mu=mu, is_amplify_first_chunk=...)`: `num_steps` steps
    /// (`2 * num_steps` when amplified).
    pub fn set_timesteps(&self, request: &TimestepRequest) -> Result<StageSchedule> {
        self.tables.set_timesteps(
            request,
            StepCounting::Dmd {
                amplify_first_chunk: request.amplify_first_chunk,
            },
        )
    }

    /// The sigma DMD uses for timestep `t`: `sigmas[argmin |timesteps - int64(t)|]` (first minimum).
    pub fn lookup_sigma(schedule: &StageSchedule, t: f64) -> Result<f64> {
        let target = truncate_timestep(t) as f64;
        let mut best: Option<(usize, f64)> = None;
        for (i, &ts) in schedule.timesteps.iter().enumerate() {
            let d = (ts - target).abs();
            if best.is_none_or(|(_, bd)| d < bd) {
                best = Some((i, d));
            }
        }
        best.and_then(|(i, _)| schedule.sigmas.get(i).copied())
            .ok_or_else(|| Error::InvalidRequest("the DMD schedule is empty".into()))
    }

    /// One DMD step of `sample` `[b, c, t, h, w]` with the model's flow velocity `model_output`
    /// (same shape) at step `index` of `schedule`. `stage_start` is the latent the stage started from
    /// (after the stage's up-sample and re-noise), the re-noise target of every step but the last.
    ///
    /// The reference computes `x0` in float64 and casts it to the sample dtype, then mixes in float64;
    /// here the float64 coefficients are rounded to f32 and applied to f32 tensors (the difference is
    /// a few f32 ulps, see the `scheduler_steps` conformance case).
    pub fn step<B: Backend>(
        &self,
        schedule: &StageSchedule,
        index: usize,
        model_output: Tensor<B, 5>,
        sample: Tensor<B, 5>,
        stage_start: &Tensor<B, 5>,
    ) -> Result<Tensor<B, 5>> {
        super::check_same_shape("DMD model_output", &model_output, &sample)?;
        super::check_same_shape("DMD stage_start", stage_start, &sample)?;
        let t = *schedule.timesteps.get(index).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "step {index} of a {}-step DMD schedule",
                schedule.len()
            ))
        })?;
        let sigma_t = Self::lookup_sigma(schedule, t)?;
        let x0 = sample - model_output.mul_scalar(sigma_t as f32);
        match schedule.timesteps.get(index + 1) {
            Some(&t_next) => {
                let sigma = Self::lookup_sigma(schedule, t_next)?;
                Ok(x0.mul_scalar((1.0 - sigma) as f32)
                    + stage_start.clone().mul_scalar(sigma as f32))
            }
            None => Ok(x0),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::TestBackend;

    fn scheduler() -> HeliosDmdScheduler {
        let cfg: SchedulerConfig = serde_json::from_str(
            r#"{"_class_name": "HeliosDMDScheduler", "use_dynamic_shifting": true, "time_shift_type": "linear"}"#,
        )
        .unwrap();
        HeliosDmdScheduler::new(&cfg).unwrap()
    }

    #[test]
    fn amplified_chunk_doubles_the_steps() {
        let s = scheduler();
        let plain = s
            .set_timesteps(&TimestepRequest::stage(2, 0).with_mu(0.4627604166666667))
            .unwrap();
        let amp = s
            .set_timesteps(
                &TimestepRequest::stage(2, 0)
                    .with_mu(0.4627604166666667)
                    .amplified(true),
            )
            .unwrap();
        assert_eq!(plain.timesteps_i64(), vec![998, 824]);
        assert_eq!(amp.timesteps_i64(), vec![998, 891, 824, 777]);
        assert_eq!(amp.sigmas.len(), 5);
    }

    #[test]
    fn last_step_returns_x0_and_others_renoise_towards_the_start() {
        let s = scheduler();
        let sched = s
            .set_timesteps(&TimestepRequest::stage(2, 1).with_mu(0.5))
            .unwrap();
        let dev = Default::default();
        let x = Tensor::<TestBackend, 5>::from_data(
            TensorData::new(vec![1.0f32; 4], [1, 1, 1, 2, 2]),
            &dev,
        );
        let v = Tensor::<TestBackend, 5>::from_data(
            TensorData::new(vec![0.5f32; 4], [1, 1, 1, 2, 2]),
            &dev,
        );
        let start = x.clone().mul_scalar(3.0);
        let last = s.step(&sched, 1, v.clone(), x.clone(), &start).unwrap();
        let expect = 1.0 - sched.sigmas[1] * 0.5;
        let got = last.into_data().to_vec::<f32>().unwrap();
        assert!((got[0] as f64 - expect).abs() < 1e-6);
        let first = s.step(&sched, 0, v.clone(), x.clone(), &start).unwrap();
        let x0 = 1.0 - sched.sigmas[0] * 0.5;
        let expect = (1.0 - sched.sigmas[1]) * x0 + sched.sigmas[1] * 3.0;
        let got = first.into_data().to_vec::<f32>().unwrap();
        assert!((got[0] as f64 - expect).abs() < 1e-6);
        assert!(s.step(&sched, 2, v, x, &start).is_err());
    }
}
