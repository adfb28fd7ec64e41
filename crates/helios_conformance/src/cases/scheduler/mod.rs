//! The cases `scheduler_steps` (single scheduler steps, block noise, pyramid resampling, guidance on
//! stored tensors) and `scheduler_tables` (the float64 timestep / sigma tables of
//! `scheduler_tables.json`, which has no tensors).
//!
//! Scheduler configs: the DMD checks use the fixture checkpoint's `scheduler/scheduler_config.json`
//! when it names `HeliosDMDScheduler` (the case generator's Distilled config), the UniPC checks
//! diffusers' `HeliosScheduler` defaults with dynamic shifting, as the fixture README describes each
//! case. Everything else (steps, mu, stages, shapes, resolutions, tolerances) comes from the case files.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use helios_model::config::{
    SchedulerClass, SchedulerConfig, TimeShiftType, TransformerConfig, read_json,
};
use helios_model::scheduler::sigmas::{StageTables, TableConfig};
use helios_model::scheduler::{
    BlockNoise, FlowScheduler, ShiftParams, StageSchedule, TimestepRequest, calculate_shift,
    image_seq_len, pyramid_mu_source_stage, pyramid_stage_sizes,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Case, CheckLine, Outcome, Result, Tolerance, compare};

/// Tolerance of the float64 tables: 1e-9 absolute (the reference's own values are float64; a
/// faithful port differs by a few ulps, ~1e-13 at t ~ 1000) and 1e-12 relative-L2.
const F64_TABLE_MAX_ABS: f64 = 1e-9;
/// See [`F64_TABLE_MAX_ABS`].
const F64_TABLE_REL_L2: f64 = 1e-12;

/// Latent frames per chunk that `scheduler_tables.json` computes `image_seq_len` with (`T = 9` in its
/// notes: Helios' 33-frame chunk).
const TABLE_LATENT_FRAMES: usize = 9;

/// A line comparing float64 values at the table tolerance (`compare` works in f32, too coarse here).
fn line_f64(
    case: &str,
    name: &str,
    port: &[f64],
    golden: &[f64],
    max_abs_tol: f64,
    rel_tol: f64,
) -> CheckLine {
    let mut line = CheckLine {
        case: case.to_string(),
        tensor: name.to_string(),
        max_abs: f64::INFINITY,
        rel_l2: f64::INFINITY,
        tol_max_abs: max_abs_tol,
        tol_rel_l2: rel_tol,
        ok: false,
        note: None,
    };
    if port.len() != golden.len() {
        line.note = Some(format!("{} values vs golden {}", port.len(), golden.len()));
        return line;
    }
    let (mut max_abs, mut d2, mut g2) = (0f64, 0f64, 0f64);
    let mut finite = true;
    for (p, g) in port.iter().zip(golden) {
        finite &= p.is_finite() == g.is_finite();
        let d = if p == g { 0.0 } else { (p - g).abs() };
        max_abs = max_abs.max(d);
        d2 += d * d;
        g2 += g * g;
    }
    line.max_abs = if finite { max_abs } else { f64::INFINITY };
    line.rel_l2 = if g2 > 0.0 {
        (d2 / g2).sqrt()
    } else {
        d2.sqrt()
    };
    line.ok = finite && line.max_abs <= max_abs_tol && line.rel_l2 <= rel_tol;
    if !finite {
        line.note = Some("non-finite values".into());
    }
    line
}

/// A line requiring exact equality of integers.
fn line_exact(case: &str, name: &str, port: &[i64], golden: &[i64]) -> CheckLine {
    let p: Vec<f64> = port.iter().map(|&v| v as f64).collect();
    let g: Vec<f64> = golden.iter().map(|&v| v as f64).collect();
    line_f64(case, name, &p, &g, 0.0, 0.0)
}

fn line_f64_table(case: &str, name: &str, port: &[f64], golden: &[f64]) -> CheckLine {
    line_f64(
        case,
        name,
        port,
        golden,
        F64_TABLE_MAX_ABS,
        F64_TABLE_REL_L2,
    )
}

/// A failing line for something the port could not compute.
fn line_fail(case: &str, name: &str, why: String) -> CheckLine {
    let mut line = line_f64(case, name, &[], &[0.0], 0.0, 0.0);
    line.note = Some(why);
    line
}

fn scheduler_config(case: &Case, value: Value) -> Result<SchedulerConfig> {
    serde_json::from_value(value).map_err(|e| case.field_error("scheduler config", e))
}

/// The DMD config: the checkpoint's when it is a DMD one, else diffusers' DMD defaults with dynamic
/// shifting.
fn dmd_config(fixture_dir: &Path, case: &Case) -> Result<SchedulerConfig> {
    let path = fixture_dir.join("scheduler/scheduler_config.json");
    if path.exists() {
        let cfg: SchedulerConfig = read_json(&path)?;
        if cfg.class_name == SchedulerClass::HeliosDmd {
            return Ok(cfg);
        }
    }
    scheduler_config(
        case,
        json!({"_class_name": "HeliosDMDScheduler", "use_dynamic_shifting": true}),
    )
}

/// diffusers' `HeliosScheduler` defaults with dynamic shifting (3 stages, or 1 with `single`).
fn unipc_config(case: &Case, single: bool, shift: TimeShiftType) -> Result<SchedulerConfig> {
    let mut v = json!({"_class_name": "HeliosScheduler", "use_dynamic_shifting": true, "time_shift_type": shift});
    if single {
        v["stages"] = json!(1);
        v["stage_range"] = json!([0.0, 1.0]);
    }
    scheduler_config(case, v)
}

fn build(config: &SchedulerConfig) -> Result<FlowScheduler> {
    config.validate(Path::new("scheduler/scheduler_config.json"))?;
    Ok(FlowScheduler::new(config)?)
}

/// A stored tensor as a rank-5 tensor on `device`.
fn tensor5<B: Backend>(case: &Case, name: &str, device: &B::Device) -> Result<Tensor<B, 5>> {
    let data = case.f32(name)?;
    if data.shape.as_slice().len() != 5 {
        return Err(case.error(format!(
            "`{name}` has shape {:?}, expected rank 5",
            data.shape.as_slice()
        )));
    }
    Ok(Tensor::from_data(data, device))
}

/// Compares a port tensor with the stored one at the tolerance covering `tol_name`.
fn check<B: Backend, const D: usize>(
    case: &Case,
    name: &str,
    port: Tensor<B, D>,
    tol: &Tolerance,
) -> Result<CheckLine> {
    let golden = case.f32(name)?;
    Ok(compare(&case.name, name, &port.into_data(), &golden, tol))
}

/// The tightest recommended tolerance of a case (for stored tensors no tolerance entry covers).
fn tightest(case: &Case) -> Result<Tolerance> {
    let all = case.tolerances()?;
    let max_abs = all.iter().map(|t| t.max_abs).fold(f64::INFINITY, f64::min);
    let rel_l2 = all.iter().map(|t| t.rel_l2).fold(f64::INFINITY, f64::min);
    if !max_abs.is_finite() || !rel_l2.is_finite() {
        return Err(case.error("the case lists no tolerances"));
    }
    Ok(Tolerance {
        what: "tightest of the case".into(),
        tensors: vec![],
        max_abs,
        rel_l2,
    })
}

#[derive(Deserialize)]
struct StepsTable {
    mu: f64,
    #[serde(default)]
    stage: usize,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    #[serde(default)]
    timesteps_int64: Option<Vec<i64>>,
}

#[derive(Deserialize)]
struct RenoiseEntry {
    alpha: f64,
    beta: f64,
}

fn table_lines(
    case: &Case,
    prefix: &str,
    got: &StageSchedule,
    want: &StepsTable,
    out: &mut Vec<CheckLine>,
) {
    out.push(line_f64_table(
        &case.name,
        &format!("{prefix}/timesteps"),
        &got.timesteps,
        &want.timesteps,
    ));
    out.push(line_f64_table(
        &case.name,
        &format!("{prefix}/sigmas"),
        &got.sigmas,
        &want.sigmas,
    ));
    if let Some(t64) = &want.timesteps_int64 {
        out.push(line_exact(
            &case.name,
            &format!("{prefix}/timesteps_i64"),
            &got.timesteps_i64(),
            t64,
        ));
    }
}

mod steps;
mod tables;

pub use steps::run_steps;
pub use tables::run_tables;
