//! The cases `scheduler_steps` (single scheduler steps, block noise, pyramid resampling, guidance on
//! stored tensors) and `scheduler_tables` (the float64 timestep / sigma tables of
//! `scheduler_tables.json`, which has no tensors).
//!
//! Scheduler configs: the DMD checks use the fixture checkpoint's `scheduler/scheduler_config.json`
//! when it names `HeliosDMDScheduler` (the case generator's Distilled config), the UniPC checks
//! diffusers' `HeliosScheduler` defaults with dynamic shifting, as the fixture README describes each
//! case. Everything else (steps, mu, stages, shapes, resolutions, tolerances) comes from the case files.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use helios_model::config::{SchedulerConfig, TimeShiftType, TransformerConfig, read_json};
use helios_model::scheduler::guidance::{cfg, cfg_zero_star, cfg_zero_star_scale};
use helios_model::scheduler::pyramid::{downsample, renoise, upsample_nearest2x};
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
    serde_json::from_value(value).map_err(|e| case.error(format!("scheduler config: {e}")))
}

/// The DMD config: the checkpoint's when it is a DMD one, else diffusers' DMD defaults with dynamic
/// shifting.
fn dmd_config(fixture_dir: &Path, case: &Case) -> Result<SchedulerConfig> {
    let path = fixture_dir.join("scheduler/scheduler_config.json");
    if path.exists() {
        let cfg: SchedulerConfig = read_json(&path)?;
        if cfg.class_name == "HeliosDMDScheduler" {
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

/// Runs `scheduler_steps`.
pub fn run_steps<B: Backend>(fixture_dir: &Path, device: &B::Device) -> Result<Outcome> {
    let case = Case::open(fixture_dir, "scheduler_steps")?;
    let mut lines = Vec::new();

    // (a) + (b): UniPC single stage and one pyramid stage.
    for (key, single) in [("unipc1", true), ("unipcP", false)] {
        let want: StepsTable = case.get(key)?;
        let sched = build(&unipc_config(&case, single, TimeShiftType::Exponential)?)?;
        let n = want.timesteps.len();
        let request = if single {
            TimestepRequest::single_stage(n).with_mu(want.mu)
        } else {
            TimestepRequest::stage(n, want.stage).with_mu(want.mu)
        };
        let schedule = sched.set_timesteps(&request)?;
        table_lines(&case, key, &schedule, &want, &mut lines);
        let mut x = tensor5::<B>(&case, &format!("{key}_x0"), device)?;
        let mut state = sched.start(&x);
        for i in 0..n {
            let v = tensor5::<B>(&case, &format!("{key}_v{i}"), device)?;
            x = sched.step(&schedule, &mut state, v, x)?;
            let name = format!("{key}_x{}", i + 1);
            lines.push(check(&case, &name, x.clone(), &case.tolerance(&name)?)?);
        }
    }

    // (c) DMD, one stage from `dmd_start`.
    let want: StepsTable = case.get("dmd")?;
    let sched = build(&dmd_config(fixture_dir, &case)?)?;
    let schedule = sched.set_timesteps(
        &TimestepRequest::stage(want.timesteps.len(), want.stage).with_mu(want.mu),
    )?;
    table_lines(&case, "dmd", &schedule, &want, &mut lines);
    let start = tensor5::<B>(&case, "dmd_start", device)?;
    let mut state = sched.start(&start);
    let mut x = start;
    for i in 0..schedule.len() {
        let v = tensor5::<B>(&case, &format!("dmd_v{i}"), device)?;
        x = sched.step(&schedule, &mut state, v, x)?;
        let name = format!("dmd_x{}", i + 1);
        lines.push(check(&case, &name, x.clone(), &case.tolerance(&name)?)?);
    }

    // (d) block noise from the stored draws.
    let patch = match read_json::<TransformerConfig>(&fixture_dir.join("transformer/config.json")) {
        Ok(t) => [t.patch_size[1], t.patch_size[2]],
        Err(_) => [2, 2],
    };
    let block = BlockNoise::new(sched.gamma(), patch)?;
    let l_port: Vec<f32> = block.factor().iter().map(|&v| v as f32).collect();
    let n = block.block_size();
    let l_tol = case.tolerance("block_noise")?;
    lines.push(compare(
        &case.name,
        "block_L",
        &TensorData::new(l_port, [n, n]),
        &case.f32("block_L")?,
        &l_tol,
    ));
    let z_data = case.f32("block_z")?;
    if z_data.shape.as_slice().len() != 2 {
        return Err(case.error("`block_z` must have rank 2"));
    }
    let z = Tensor::<B, 2>::from_data(z_data, device);
    let golden_noise = tensor5::<B>(&case, "block_noise", device)?;
    let noise = block.sample(z, golden_noise.dims())?;
    lines.push(check(&case, "block_noise", noise.clone(), &l_tol)?);

    // (e) pyramid down-sampling (as often as the stored sizes say), nearest up-sampling, stage-1 re-noise.
    let down_in = tensor5::<B>(&case, "pyr_down_in", device)?;
    let down_h = case
        .f32("pyr_down_out")?
        .shape
        .as_slice()
        .get(3)
        .copied()
        .unwrap_or(0);
    let mut times = 0;
    let mut h = down_in.dims()[3];
    while h > down_h && h >= 2 {
        h /= 2;
        times += 1;
    }
    let tol = case.tolerance("pyr_down_out")?;
    lines.push(check(
        &case,
        "pyr_down_out",
        downsample(down_in, times)?,
        &tol,
    )?);
    let up = upsample_nearest2x(tensor5::<B>(&case, "pyr_up_in", device)?);
    lines.push(check(&case, "pyr_up_nearest", up.clone(), &tol)?);
    let coeffs = sched.renoise(1)?;
    let want_renoise: RenoiseEntry = case.get("renoise_stage1")?;
    lines.push(line_f64_table(
        &case.name,
        "renoise_stage1/alpha_beta",
        &[coeffs.alpha, coeffs.beta],
        &[want_renoise.alpha, want_renoise.beta],
    ));
    lines.push(check(
        &case,
        "pyr_renoised",
        renoise(up, noise, coeffs)?,
        &tol,
    )?);

    // (f) guidance: no tolerance entry covers it, so the case's tightest one applies.
    let scale: f64 = case.get("guidance_scale")?;
    let tol = tightest(&case)?;
    let cond = tensor5::<B>(&case, "cfg_cond", device)?;
    let uncond = tensor5::<B>(&case, "cfg_uncond", device)?;
    lines.push(check(
        &case,
        "cfg_out",
        cfg(cond.clone(), uncond.clone(), scale),
        &tol,
    )?);
    let alpha = cfg_zero_star_scale(&cond, &uncond);
    let [b, ..] = alpha.dims();
    lines.push(check(&case, "cfgz_alpha", alpha.reshape([b]), &tol)?);
    lines.push(check(
        &case,
        "cfgz_out",
        cfg_zero_star(cond, uncond, scale),
        &tol,
    )?);

    Ok(Outcome::Checked(lines))
}

#[derive(Deserialize)]
struct PyramidStageEntry {
    stage: usize,
    latent_hw: [usize; 2],
    mu_from_latent_hw: [usize; 2],
    image_seq_len: usize,
    mu: f64,
    timesteps: Vec<f64>,
    timesteps_int64_to_model: Vec<i64>,
    sigmas: Vec<f64>,
}

#[derive(Deserialize)]
struct SingleStageEntry {
    latent_hw: [usize; 2],
    image_seq_len: usize,
    mu: f64,
    sigmas_in: Vec<f64>,
    timesteps_float64_to_model: Vec<f64>,
    sigmas: Vec<f64>,
}

/// A table name: `dmd_pyramid_2_2_2[_amplified_first_chunk]`, `unipc_pyramid_20_20_20`,
/// `unipc_single_stage_50`.
enum TableKind {
    Pyramid {
        dmd: bool,
        steps: Vec<usize>,
        amplify: bool,
    },
    Single {
        steps: usize,
    },
}

fn parse_table_name(name: &str) -> Option<TableKind> {
    let steps = |s: &str| {
        s.split('_')
            .map(|v| v.parse::<usize>().ok())
            .collect::<Option<Vec<usize>>>()
    };
    if let Some(rest) = name.strip_prefix("unipc_single_stage_") {
        return Some(TableKind::Single {
            steps: rest.parse().ok()?,
        });
    }
    let (dmd, rest) = if let Some(r) = name.strip_prefix("dmd_pyramid_") {
        (true, r)
    } else {
        (false, name.strip_prefix("unipc_pyramid_")?)
    };
    let (rest, amplify) = match rest.strip_suffix("_amplified_first_chunk") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    Some(TableKind::Pyramid {
        dmd,
        steps: steps(rest)?,
        amplify,
    })
}

struct TableContext<'a> {
    case: &'a Case,
    fixture_dir: &'a Path,
    latent_hw: [usize; 2],
    patch: [usize; 3],
    shift: TimeShiftType,
    own_stage_mu: bool,
}

fn pyramid_table(
    ctx: &TableContext,
    prefix: &str,
    kind: &TableKind,
    value: &Value,
) -> Result<Vec<CheckLine>> {
    let case = &ctx.case.name;
    let TableKind::Pyramid {
        dmd,
        steps,
        amplify,
    } = kind
    else {
        return Ok(vec![]);
    };
    let want: Vec<PyramidStageEntry> = serde_json::from_value(value.clone())
        .map_err(|e| ctx.case.error(format!("{prefix}: {e}")))?;
    let mut config = if *dmd {
        dmd_config(ctx.fixture_dir, ctx.case)?
    } else {
        unipc_config(ctx.case, false, ctx.shift)?
    };
    config.time_shift_type = Some(ctx.shift);
    let sched = build(&config)?;
    let sizes = pyramid_stage_sizes(ctx.latent_hw[0], ctx.latent_hw[1], steps.len())?;
    let (mut mu_p, mut mu_g, mut ts_p, mut ts_g, mut ti_p, mut ti_g, mut sg_p, mut sg_g) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    let mut layout_notes = Vec::new();
    if want.len() != steps.len() {
        layout_notes.push(format!(
            "{} stages stored, the name says {}",
            want.len(),
            steps.len()
        ));
    }
    for (s, (entry, &n)) in want.iter().zip(steps).enumerate() {
        let src = if ctx.own_stage_mu {
            s
        } else {
            pyramid_mu_source_stage(s)
        };
        let [sh, sw] = sizes[src];
        let seq = image_seq_len(TABLE_LATENT_FRAMES, sh, sw, ctx.patch);
        if entry.stage != s
            || entry.latent_hw != sizes[s]
            || entry.mu_from_latent_hw != sizes[src]
            || entry.image_seq_len != seq
        {
            layout_notes.push(format!(
                "stage {s}: port latent {:?}, mu from {:?}, seq {seq}; golden {:?}, {:?}, {}",
                sizes[s], sizes[src], entry.latent_hw, entry.mu_from_latent_hw, entry.image_seq_len
            ));
        }
        let mu = calculate_shift(seq, &ShiftParams::default());
        let schedule =
            sched.set_timesteps(&TimestepRequest::stage(n, s).with_mu(mu).amplified(*amplify))?;
        mu_p.push(mu);
        mu_g.push(entry.mu);
        ts_p.extend(&schedule.timesteps);
        ts_g.extend(&entry.timesteps);
        ti_p.extend(schedule.timesteps_i64());
        ti_g.extend(&entry.timesteps_int64_to_model);
        sg_p.extend(&schedule.sigmas);
        sg_g.extend(&entry.sigmas);
    }
    let mut mu_line = line_f64_table(case, &format!("{prefix}/mu"), &mu_p, &mu_g);
    if !layout_notes.is_empty() {
        mu_line.ok = false;
        mu_line.note = Some(layout_notes.join("; "));
    }
    Ok(vec![
        mu_line,
        line_f64_table(case, &format!("{prefix}/timesteps"), &ts_p, &ts_g),
        line_exact(case, &format!("{prefix}/timesteps_i64"), &ti_p, &ti_g),
        line_f64_table(case, &format!("{prefix}/sigmas"), &sg_p, &sg_g),
    ])
}

fn single_table(
    ctx: &TableContext,
    prefix: &str,
    steps: usize,
    value: &Value,
) -> Result<Vec<CheckLine>> {
    let case = &ctx.case.name;
    let want: SingleStageEntry = serde_json::from_value(value.clone())
        .map_err(|e| ctx.case.error(format!("{prefix}: {e}")))?;
    let sched = build(&unipc_config(ctx.case, true, ctx.shift)?)?;
    let seq = image_seq_len(
        TABLE_LATENT_FRAMES,
        ctx.latent_hw[0],
        ctx.latent_hw[1],
        ctx.patch,
    );
    let mu = calculate_shift(seq, &ShiftParams::default());
    let request = TimestepRequest::single_stage(steps).with_mu(mu);
    let sigmas_in = request.sigmas.clone().unwrap_or_default();
    let schedule = sched.set_timesteps(&request)?;
    let mut mu_line = line_f64_table(case, &format!("{prefix}/mu"), &[mu], &[want.mu]);
    if want.latent_hw != ctx.latent_hw || want.image_seq_len != seq {
        mu_line.ok = false;
        mu_line.note = Some(format!(
            "port seq {seq} at {:?}; golden {} at {:?}",
            ctx.latent_hw, want.image_seq_len, want.latent_hw
        ));
    }
    Ok(vec![
        mu_line,
        line_f64_table(
            case,
            &format!("{prefix}/sigmas_in"),
            &sigmas_in,
            &want.sigmas_in,
        ),
        line_f64_table(
            case,
            &format!("{prefix}/timesteps"),
            &schedule.timesteps,
            &want.timesteps_float64_to_model,
        ),
        line_f64_table(
            case,
            &format!("{prefix}/sigmas"),
            &schedule.sigmas,
            &want.sigmas,
        ),
    ])
}

fn object<'a>(case: &Case, v: &'a Value, what: &str) -> Result<&'a serde_json::Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| case.error(format!("`{what}` is not an object")))
}

fn f64_list(case: &Case, v: &Value, what: &str) -> Result<Vec<f64>> {
    serde_json::from_value(v.clone()).map_err(|e| case.error(format!("`{what}`: {e}")))
}

/// Runs `scheduler_tables` (the JSON only).
pub fn run_tables(fixture_dir: &Path) -> Result<Outcome> {
    let case = Case::open(fixture_dir, "scheduler_tables")?;
    let name = case.name.clone();
    let mut lines = Vec::new();
    let patch = match read_json::<TransformerConfig>(&fixture_dir.join("transformer/config.json")) {
        Ok(t) => t.patch_size,
        Err(_) => [1, 2, 2],
    };

    for (res_key, res) in object(&case, case.field("resolutions")?, "resolutions")? {
        let latent_hw: [usize; 2] =
            serde_json::from_value(res.get("latent_hw").cloned().unwrap_or(Value::Null))
                .map_err(|e| case.error(format!("{res_key}.latent_hw: {e}")))?;
        for (group, own_stage_mu) in [("tables", false), ("reference_only_own_stage_mu", true)] {
            let Some(by_shift) = res.get(group) else {
                continue;
            };
            for (shift_key, tables) in object(&case, by_shift, group)? {
                let shift: TimeShiftType = serde_json::from_value(Value::String(shift_key.clone()))
                    .map_err(|e| case.error(format!("time shift `{shift_key}`: {e}")))?;
                let ctx = TableContext {
                    case: &case,
                    fixture_dir,
                    latent_hw,
                    patch,
                    shift,
                    own_stage_mu,
                };
                let tag = if own_stage_mu { "own_mu/" } else { "" };
                for (table, value) in object(&case, tables, shift_key)? {
                    let prefix = format!("{res_key}/{shift_key}/{tag}{table}");
                    match parse_table_name(table) {
                        Some(kind @ TableKind::Pyramid { .. }) => {
                            lines.extend(pyramid_table(&ctx, &prefix, &kind, value)?)
                        }
                        Some(TableKind::Single { steps }) => {
                            lines.extend(single_table(&ctx, &prefix, steps, value)?)
                        }
                        None => lines.push(line_fail(&name, &prefix, "unknown table name".into())),
                    }
                }
            }
        }
    }

    // Stage internals, re-noise and the block-noise factor of the DMD config.
    let dmd = dmd_config(fixture_dir, &case)?;
    let gamma: f64 = case.get("gamma")?;
    lines.push(line_f64_table(&name, "gamma", &[dmd.gamma], &[gamma]));
    let tables = StageTables::new(TableConfig::from_config(&dmd)?)?;
    if let Some(int) = case.json.get("scheduler_internals_stages3") {
        let field = |k: &str| -> Result<Vec<f64>> {
            f64_list(&case, int.get(k).unwrap_or(&Value::Null), k)
        };
        let st = &tables.stages;
        let pairs = |k: &str| -> Result<Vec<f64>> {
            let v: Vec<[f64; 2]> =
                serde_json::from_value(int.get(k).cloned().unwrap_or(Value::Null))
                    .map_err(|e| case.error(format!("`{k}`: {e}")))?;
            Ok(v.into_iter().flatten().collect())
        };
        let port: [(&str, Vec<f64>); 6] = [
            (
                "ori_start_sigmas",
                st.iter().map(|s| s.ori_start_sigma).collect(),
            ),
            ("start_sigmas", st.iter().map(|s| s.start_sigma).collect()),
            ("end_sigmas", st.iter().map(|s| s.end_sigma).collect()),
            (
                "timesteps_per_stage_max",
                st.iter().map(|s| s.timestep_max).collect(),
            ),
            (
                "timesteps_per_stage_min",
                st.iter().map(|s| s.timestep_min).collect(),
            ),
            (
                "timestep_ratios",
                st.iter()
                    .flat_map(|s| [s.timestep_ratio.0, s.timestep_ratio.1])
                    .collect(),
            ),
        ];
        for (k, p) in port {
            let g = if k == "timestep_ratios" {
                pairs(k)?
            } else {
                field(k)?
            };
            lines.push(line_f64_table(&name, &format!("internals/{k}"), &p, &g));
        }
        let p: Vec<f64> = st
            .iter()
            .flat_map(|s| [s.sigma_first, s.sigma_last])
            .collect();
        lines.push(line_f64_table(
            &name,
            "internals/sigmas_per_stage_first_last",
            &p,
            &pairs("sigmas_per_stage_first_last")?,
        ));
    }
    if let Some(ren) = case.json.get("renoise") {
        for (key, entry) in object(&case, ren, "renoise")? {
            let stage: usize = key
                .strip_prefix("stage")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let got = |k: &str| entry.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
            match tables.renoise(stage) {
                Ok(r) => {
                    let ori = tables.stages[stage].ori_start_sigma;
                    lines.push(line_f64_table(
                        &name,
                        &format!("renoise/{key}"),
                        &[ori, 1.0 - ori, r.alpha, r.beta],
                        &[
                            got("ori_start_sigma"),
                            got("ori_sigma_signal"),
                            got("alpha"),
                            got("beta"),
                        ],
                    ));
                }
                Err(e) => lines.push(line_fail(&name, &format!("renoise/{key}"), e.to_string())),
            }
        }
    }
    let block = BlockNoise::new(dmd.gamma, [patch[1], patch[2]])?;
    for (key, round_f32) in [
        ("block_noise_cholesky_f64", false),
        ("block_noise_cholesky_f32", true),
    ] {
        let Some(v) = case.json.get(key) else {
            continue;
        };
        let g: Vec<Vec<f64>> =
            serde_json::from_value(v.clone()).map_err(|e| case.error(format!("`{key}`: {e}")))?;
        let g: Vec<f64> = g.into_iter().flatten().collect();
        let p: Vec<f64> = block
            .factor()
            .iter()
            .map(|&x| if round_f32 { x as f32 as f64 } else { x })
            .collect();
        lines.push(line_f64_table(&name, key, &p, &g));
    }
    Ok(Outcome::Checked(lines))
}
