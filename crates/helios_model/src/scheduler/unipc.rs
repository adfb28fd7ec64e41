//! UniPC (bh1 / bh2) multistep sampling for Helios Base (one stage) and Mid (per pyramid stage),
//! plus the plain Euler flow step.
//!
//! Port of diffusers `HeliosScheduler` (scheduling_helios.py, diffusers 0.42.1), which follows
//! UniPC (Zhao et al. 2023, <https://arxiv.org/abs/2302.04867>) with flow sigmas
//! (`alpha_t = 1 - sigma`, `sigma_t = max(sigma, 1e-8)`) and x0 prediction `x0 = x - sigma * v`.
//!
//! All coefficients (log-SNR steps, `expm1`, the corrector's linear solve) are computed in float64 from
//! the schedule's sigmas and rounded to f32 only when applied to the `[b, c, t, h, w]` f32 tensors,
//! as torch does with 0-dim float64 tensors against float32 tensors. The multistep history lives in an
//! explicit [`UniPcState`]: one per stage (the reference resets it at every `set_timesteps`).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::sigmas::{StageSchedule, StageTables, StepCounting, TableConfig, TimestepRequest};
use crate::config::{SchedulerConfig, SchedulerType, SolverType};
use crate::error::{Error, Result};

/// The UniPC options of `scheduler_config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniPcOptions {
    /// UniPC or Euler.
    pub step_kind: SchedulerType,
    /// `solver_order` (2).
    pub solver_order: usize,
    /// `solver_type`.
    pub solver_type: SolverType,
    /// `lower_order_final`: lower the order on the last steps.
    pub lower_order_final: bool,
    /// `disable_corrector`: step indices without the UniC corrector.
    pub disable_corrector: Vec<usize>,
}

impl UniPcOptions {
    /// Takes the UniPC fields of a config (checked by [`SchedulerConfig::validate`]).
    pub fn from_config(config: &SchedulerConfig) -> Self {
        Self {
            step_kind: config.scheduler_type,
            solver_order: config.solver_order,
            solver_type: config.solver_type,
            lower_order_final: config.lower_order_final,
            disable_corrector: config.disable_corrector.clone(),
        }
    }
}

/// Port of diffusers `HeliosScheduler` (scheduling_helios.py, diffusers 0.42.1).
///
/// Immutable after construction; the multistep history of one stage is a [`UniPcState`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeliosScheduler {
    tables: StageTables,
    options: UniPcOptions,
}

/// The multistep history of [`HeliosScheduler`] within one stage (`model_outputs`, `last_sample`,
/// `lower_order_nums`, `this_order`, `step_index`). Start a fresh one for every stage.
#[derive(Debug, Clone)]
pub struct UniPcState<B: Backend> {
    /// Converted (x0) model outputs, oldest first; `None` until filled.
    model_outputs: Vec<Option<Tensor<B, 5>>>,
    last_sample: Option<Tensor<B, 5>>,
    lower_order_nums: usize,
    this_order: usize,
    step_index: usize,
}

impl<B: Backend> UniPcState<B> {
    /// An empty history for a solver of order `solver_order`.
    pub fn new(solver_order: usize) -> Self {
        Self {
            model_outputs: vec![None; solver_order.max(1)],
            last_sample: None,
            lower_order_nums: 0,
            this_order: 0,
            step_index: 0,
        }
    }

    /// The index of the next step.
    pub fn step_index(&self) -> usize {
        self.step_index
    }

    /// The `i`-th most recent converted model output (`0` = newest), as `model_outputs[-(i + 1)]`.
    fn recent(&self, i: usize) -> Result<&Tensor<B, 5>> {
        let n = self.model_outputs.len();
        n.checked_sub(i + 1)
            .and_then(|k| self.model_outputs[k].as_ref())
            .ok_or_else(|| {
                Error::InvalidRequest(format!("UniPC history has no model output {i} steps back"))
            })
    }
}

/// `(alpha_t, sigma_t)` of a flow sigma and its log-SNR `lambda = ln(alpha) - ln(sigma)`.
fn alpha_sigma_lambda(sigma: f64) -> (f64, f64, f64) {
    let alpha = 1.0 - sigma;
    let sigma = sigma.max(1e-8);
    (alpha, sigma, alpha.ln() - sigma.ln())
}

/// Solves `a x = b` (row-major `n x n`) in f64 by Gaussian elimination with partial pivoting
/// (LAPACK `gesv`, which `torch.linalg.solve` calls, does the same).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .filter(|&p| a[p][col] != 0.0)
            .ok_or_else(|| {
                Error::InvalidRequest("UniPC: singular order system (repeated sigmas?)".into())
            })?;
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let f = a[row][col] / pivot_row[col];
            for (v, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *v -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Ok(x)
}

/// The `R` matrix and `b` vector shared by predictor and corrector, plus `h_phi_1` and `B(h)`.
struct OrderSystem {
    r: Vec<Vec<f64>>,
    b: Vec<f64>,
    h_phi_1: f64,
    b_h: f64,
}

fn order_system(rks: &[f64], hh: f64, order: usize, solver: SolverType) -> OrderSystem {
    let h_phi_1 = hh.exp_m1();
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let mut factorial_i = 1.0;
    let b_h = match solver {
        SolverType::Bh1 => hh,
        SolverType::Bh2 => hh.exp_m1(),
    };
    let mut r = Vec::with_capacity(order);
    let mut b = Vec::with_capacity(order);
    for i in 1..=order {
        r.push(rks.iter().map(|rk| rk.powi(i as i32 - 1)).collect());
        b.push(h_phi_k * factorial_i / b_h);
        factorial_i *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / factorial_i;
    }
    OrderSystem { r, b, h_phi_1, b_h }
}

impl HeliosScheduler {
    /// Builds the scheduler from `scheduler_config.json`.
    pub fn new(config: &SchedulerConfig) -> Result<Self> {
        Ok(Self {
            tables: StageTables::new(TableConfig::from_config(config)?)?,
            options: UniPcOptions::from_config(config),
        })
    }

    /// The float64 tables.
    pub fn tables(&self) -> &StageTables {
        &self.tables
    }

    /// The typed UniPC options.
    pub fn options(&self) -> &UniPcOptions {
        &self.options
    }

    /// `set_timesteps`: for a pyramid config, `num_steps` steps of stage `request.stage`; for a
    /// single-stage config, the request's sigmas (see [`TimestepRequest::single_stage`]).
    pub fn set_timesteps(&self, request: &TimestepRequest) -> Result<StageSchedule> {
        self.tables.set_timesteps(request, StepCounting::Plain)
    }

    /// A fresh multistep history (the reference resets it in every `set_timesteps`).
    pub fn new_state<B: Backend>(&self) -> UniPcState<B> {
        UniPcState::new(self.options.solver_order)
    }

    /// One step: `sample` `[b, c, t, h, w]` and the model's flow velocity `model_output` (same shape)
    /// at step `state.step_index()` of `schedule` give the next sample. Advances `state`.
    pub fn step<B: Backend>(
        &self,
        schedule: &StageSchedule,
        state: &mut UniPcState<B>,
        model_output: Tensor<B, 5>,
        sample: Tensor<B, 5>,
    ) -> Result<Tensor<B, 5>> {
        super::check_same_shape("UniPC model_output", &model_output, &sample)?;
        let idx = state.step_index;
        let step = schedule.step(idx).ok_or_else(|| {
            Error::InvalidRequest(format!("step {idx} of a {}-step schedule", schedule.len()))
        })?;
        if self.options.step_kind == SchedulerType::Euler {
            state.step_index += 1;
            return Ok(sample + model_output.mul_scalar((step.sigma_next - step.sigma) as f32));
        }
        let order_cfg = self.options.solver_order;
        let use_corrector = idx > 0
            && !self.options.disable_corrector.contains(&(idx - 1))
            && state.last_sample.is_some();

        // convert_model_output: x0 = x - sigma * v.
        let converted = sample.clone() - model_output.mul_scalar(step.sigma as f32);

        let mut sample = sample;
        if use_corrector {
            let last = state
                .last_sample
                .clone()
                .ok_or_else(|| Error::InvalidRequest("UniPC: no last sample".into()))?;
            sample = self.corrector(schedule, state, converted.clone(), last)?;
        }

        state.model_outputs.rotate_left(1);
        if let Some(slot) = state.model_outputs.last_mut() {
            *slot = Some(converted);
        }

        let this_order = if self.options.lower_order_final {
            order_cfg.min(schedule.len() - idx)
        } else {
            order_cfg
        };
        state.this_order = this_order.min(state.lower_order_nums + 1);

        state.last_sample = Some(sample.clone());
        let prev = self.predictor(schedule, state, sample)?;

        if state.lower_order_nums < order_cfg {
            state.lower_order_nums += 1;
        }
        state.step_index += 1;
        Ok(prev)
    }

    /// `multistep_uni_p_bh_update` (x0 prediction).
    fn predictor<B: Backend>(
        &self,
        schedule: &StageSchedule,
        state: &UniPcState<B>,
        x: Tensor<B, 5>,
    ) -> Result<Tensor<B, 5>> {
        let idx = state.step_index;
        let order = state.this_order;
        let m0 = state.recent(0)?.clone();
        let (alpha_t, sigma_t, lambda_t) = alpha_sigma_lambda(sigma_at(schedule, idx + 1)?);
        let (_, sigma_s0, lambda_s0) = alpha_sigma_lambda(sigma_at(schedule, idx)?);
        let h = lambda_t - lambda_s0;

        let mut rks = Vec::with_capacity(order);
        let mut d1s = Vec::with_capacity(order);
        for i in 1..order {
            let si = idx
                .checked_sub(i)
                .ok_or_else(|| Error::InvalidRequest("UniPC: order exceeds history".into()))?;
            let (_, _, lambda_si) = alpha_sigma_lambda(sigma_at(schedule, si)?);
            let rk = (lambda_si - lambda_s0) / h;
            rks.push(rk);
            d1s.push((state.recent(i)?.clone() - m0.clone()).div_scalar(rk as f32));
        }
        rks.push(1.0);
        let sys = order_system(&rks, -h, order, self.options.solver_type);

        let x_t = x.mul_scalar((sigma_t / sigma_s0) as f32)
            - m0.mul_scalar((alpha_t * sys.h_phi_1) as f32);
        if d1s.is_empty() {
            return Ok(x_t);
        }
        let rhos_p: Vec<f64> = if order == 2 {
            vec![0.5]
        } else {
            let k = order - 1;
            let r: Vec<Vec<f64>> = sys.r[..k].iter().map(|row| row[..k].to_vec()).collect();
            solve(r, sys.b[..k].to_vec())?
        };
        match weighted_sum(&rhos_p, d1s) {
            Some(pred_res) => Ok(x_t - pred_res.mul_scalar((alpha_t * sys.b_h) as f32)),
            None => Ok(x_t),
        }
    }

    /// `multistep_uni_c_bh_update` (x0 prediction): recomputes the sample the last predictor made from
    /// `last_sample`, now with the new model output `model_t` (the predicted sample itself is not used).
    fn corrector<B: Backend>(
        &self,
        schedule: &StageSchedule,
        state: &UniPcState<B>,
        model_t: Tensor<B, 5>,
        last_sample: Tensor<B, 5>,
    ) -> Result<Tensor<B, 5>> {
        let idx = state.step_index;
        let order = state.this_order;
        let m0 = state.recent(0)?.clone();
        let (alpha_t, sigma_t, lambda_t) = alpha_sigma_lambda(sigma_at(schedule, idx)?);
        let prev = idx
            .checked_sub(1)
            .ok_or_else(|| Error::InvalidRequest("UniPC: corrector at step 0".into()))?;
        let (_, sigma_s0, lambda_s0) = alpha_sigma_lambda(sigma_at(schedule, prev)?);
        let h = lambda_t - lambda_s0;

        let mut rks = Vec::with_capacity(order);
        let mut d1s = Vec::with_capacity(order);
        for i in 1..order {
            let si = idx.checked_sub(i + 1).ok_or_else(|| {
                Error::InvalidRequest("UniPC: corrector order exceeds history".into())
            })?;
            let (_, _, lambda_si) = alpha_sigma_lambda(sigma_at(schedule, si)?);
            let rk = (lambda_si - lambda_s0) / h;
            rks.push(rk);
            d1s.push((state.recent(i)?.clone() - m0.clone()).div_scalar(rk as f32));
        }
        rks.push(1.0);
        let sys = order_system(&rks, -h, order, self.options.solver_type);
        let rhos_c: Vec<f64> = if order == 1 {
            vec![0.5]
        } else {
            solve(sys.r.clone(), sys.b.clone())?
        };
        // rhos_c is cast to the sample dtype before use.
        let rhos_c: Vec<f64> = rhos_c.iter().map(|&r| r as f32 as f64).collect();

        let x_t = last_sample.mul_scalar((sigma_t / sigma_s0) as f32)
            - m0.clone().mul_scalar((alpha_t * sys.h_phi_1) as f32);
        let d1_t = model_t - m0;
        let rho_last = rhos_c.last().copied().unwrap_or(0.5);
        let mut res = d1_t.mul_scalar(rho_last as f32);
        if let Some(corr_res) = weighted_sum(&rhos_c[..rhos_c.len().saturating_sub(1)], d1s) {
            res = corr_res + res;
        }
        Ok(x_t - res.mul_scalar((alpha_t * sys.b_h) as f32))
    }
}

/// `sigmas[i]` of a schedule, or an error.
fn sigma_at(schedule: &StageSchedule, i: usize) -> Result<f64> {
    schedule.sigmas.get(i).copied().ok_or_else(|| {
        Error::InvalidRequest(format!(
            "sigma {i} of a {}-sigma schedule",
            schedule.sigmas.len()
        ))
    })
}

/// `einsum("k,bkc...->bc...", rhos, D1s)`: `sum_k rhos[k] * d1s[k]` (f32 coefficients); `None` when
/// there is no term.
fn weighted_sum<B: Backend>(rhos: &[f64], d1s: Vec<Tensor<B, 5>>) -> Option<Tensor<B, 5>> {
    rhos.iter()
        .zip(d1s)
        .map(|(r, d)| d.mul_scalar(*r as f32))
        .reduce(|acc, t| acc + t)
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::TestBackend;

    #[test]
    fn solve_small_systems() {
        let x = solve(vec![vec![1.0, 1.0], vec![0.5, 1.0]], vec![3.0, 2.0]).unwrap();
        assert!((x[0] - 2.0).abs() < 1e-12 && (x[1] - 1.0).abs() < 1e-12);
        assert!(solve(vec![vec![1.0, 1.0], vec![1.0, 1.0]], vec![1.0, 2.0]).is_err());
    }

    #[test]
    fn first_step_is_a_first_order_exponential_step() {
        let cfg: SchedulerConfig = serde_json::from_str(
            r#"{"_class_name": "HeliosScheduler", "stages": 1, "stage_range": [0.0, 1.0],
                "use_dynamic_shifting": true, "time_shift_type": "exponential"}"#,
        )
        .unwrap();
        let s = HeliosScheduler::new(&cfg).unwrap();
        let sched = s
            .set_timesteps(&TimestepRequest::single_stage(3).with_mu(0.55))
            .unwrap();
        let dev = Default::default();
        let x = Tensor::<TestBackend, 5>::from_data(
            TensorData::new(vec![1.0f32, -2.0], [1, 1, 1, 1, 2]),
            &dev,
        );
        let v = Tensor::<TestBackend, 5>::from_data(
            TensorData::new(vec![0.25f32, 0.5], [1, 1, 1, 1, 2]),
            &dev,
        );
        let mut state = s.new_state();
        let out = s
            .step(&sched, &mut state, v, x)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // Order 1 with x0 prediction is exact for a constant velocity: x - (sigma - sigma_next) * v.
        let (s0, s1) = (sched.sigmas[0], sched.sigmas[1]);
        assert!((out[0] as f64 - (1.0 - (s0 - s1) * 0.25)).abs() < 1e-5);
        assert!((out[1] as f64 - (-2.0 - (s0 - s1) * 0.5)).abs() < 1e-5);
        assert_eq!(state.step_index(), 1);
    }
}
