//! `scheduler_steps`: single scheduler steps, block noise, pyramid resampling and guidance on the
//! case's stored tensors.

use burn::tensor::TensorData;
use helios_model::scheduler::guidance::{cfg, cfg_zero_star, cfg_zero_star_scale};
use helios_model::scheduler::pyramid::{downsample, renoise, upsample_nearest2x};

use super::*;

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
