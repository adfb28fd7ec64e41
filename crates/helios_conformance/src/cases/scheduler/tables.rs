//! `scheduler_tables`: the float64 timestep / sigma tables of `scheduler_tables.json`, per pyramid
//! stage and single stage, recomputed and compared.

use super::*;

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
    ctx: &TableContext<'_>,
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
    let want: Vec<PyramidStageEntry> =
        serde_json::from_value(value.clone()).map_err(|e| ctx.case.field_error(prefix, e))?;
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
    ctx: &TableContext<'_>,
    prefix: &str,
    steps: usize,
    value: &Value,
) -> Result<Vec<CheckLine>> {
    let case = &ctx.case.name;
    let want: SingleStageEntry =
        serde_json::from_value(value.clone()).map_err(|e| ctx.case.field_error(prefix, e))?;
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
    serde_json::from_value(v.clone()).map_err(|e| case.field_error(what, e))
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
                .map_err(|e| case.field_error(format!("{res_key}.latent_hw"), e))?;
        for (group, own_stage_mu) in [("tables", false), ("reference_only_own_stage_mu", true)] {
            let Some(by_shift) = res.get(group) else {
                continue;
            };
            for (shift_key, tables) in object(&case, by_shift, group)? {
                let shift: TimeShiftType = serde_json::from_value(Value::String(shift_key.clone()))
                    .map_err(|e| case.field_error(format!("{group}.{shift_key}"), e))?;
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
                    .map_err(|e| case.field_error(k, e))?;
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
            serde_json::from_value(v.clone()).map_err(|e| case.field_error(key, e))?;
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
