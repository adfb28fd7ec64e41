//! DiT cases: `transformer_full`, `transformer_intermediates`, `transformer_pyramid_odd`.
//!
//! As the fixture README states, `transformer_intermediates` taps the `transformer_full` call, and
//! the pyramid / odd-size calls reuse `transformer_full`'s prompt embeddings and frame indices (and,
//! for the pyramid stages, its history); those inputs are therefore read from
//! `transformer_full.safetensors`. Every golden tensor that has a tolerance entry is compared.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use helios_model::dit::{
    DitInput, HeliosTransformer3DModel, History, HistoryTerm, Precision, Tap, WeightQuantization,
};

use crate::{Case, CheckLine, Outcome, Result, Tolerance, compare};

#[derive(Default)]
struct Collect(HashMap<String, TensorData>);

impl Tap for Collect {
    fn tap(&mut self, name: &str, value: TensorData) {
        self.0.insert(name.to_string(), value);
    }
}

fn tensor<B: Backend, const D: usize>(
    case: &Case,
    name: &str,
    device: &B::Device,
) -> Result<Tensor<B, D>> {
    let data = case.f32(name)?;
    if data.shape.len() != D {
        return Err(case.error(format!(
            "tensor `{name}` has rank {}, expected {D}",
            data.shape.len()
        )));
    }
    Ok(Tensor::from_data(data, device))
}

fn ints(case: &Case, name: &str) -> Result<Vec<i64>> {
    Ok(case.i64(name)?.0)
}

fn timesteps(case: &Case, name: &str) -> Result<Vec<f64>> {
    Ok(ints(case, name)?.into_iter().map(|t| t as f64).collect())
}

/// The DiT input of a case: `prefix` selects `pyr0_`, `odd_`, ... tensors in `case`; everything the
/// case does not store itself comes from `full` (the `transformer_full` case).
fn input<B: Backend>(
    case: &Case,
    full: &Case,
    prefix: &str,
    device: &B::Device,
) -> Result<DitInput<B>> {
    let pick = |name: &str| -> &Case {
        if case.has(&format!("{prefix}{name}")) {
            case
        } else {
            full
        }
    };
    let named = |name: &str| {
        if pick(name).name == case.name {
            format!("{prefix}{name}")
        } else {
            name.to_string()
        }
    };
    let term = |name: &str, idx: &str| -> Result<HistoryTerm<B>> {
        Ok(HistoryTerm {
            latents: tensor::<B, 5>(pick(name), &named(name), device)?,
            indices: ints(full, idx)?,
        })
    };
    Ok(DitInput {
        hidden_states: tensor::<B, 5>(pick("hidden_states"), &named("hidden_states"), device)?,
        timesteps: timesteps(pick("timestep"), &named("timestep"))?,
        encoder_hidden_states: tensor::<B, 3>(full, "encoder_hidden_states", device)?,
        indices: ints(full, "indices_hidden_states")?,
        history: Some(History {
            short: term("latents_history_short", "indices_latents_history_short")?,
            mid: Some(term("latents_history_mid", "indices_latents_history_mid")?),
            long: Some(term(
                "latents_history_long",
                "indices_latents_history_long",
            )?),
        }),
    })
}

fn check(case: &Case, golden_name: &str, port: &TensorData) -> Result<CheckLine> {
    let tol = case.tolerance(golden_name)?;
    Ok(compare(
        &case.name,
        golden_name,
        port,
        &case.f32(golden_name)?,
        &tol,
    ))
}

fn load<B: Backend>(fixture_dir: &Path, device: &B::Device) -> Result<HeliosTransformer3DModel<B>> {
    Ok(HeliosTransformer3DModel::load(
        &fixture_dir.join("transformer"),
        device,
        &mut |_| {},
    )?)
}

/// `transformer_full`: the float32 forward, and the half-precision forward against its own
/// tolerance (compared with `velocity_f32` and with the reference's own bf16 run).
pub fn full<B: Backend>(fixture_dir: &Path, device: &B::Device) -> Result<Outcome> {
    let case = Case::open(fixture_dir, "transformer_full")?;
    let model = load::<B>(fixture_dir, device)?;
    let out = model
        .forward(input::<B>(&case, &case, "", device)?)?
        .into_data();
    let mut lines = vec![check(&case, "velocity_f32", &out)?];
    let precision = Precision::half_for::<B>(device);
    let half_model = model.with_precision(precision);
    let half = half_model
        .forward(input::<B>(&case, &case, "", device)?)?
        .into_data();
    let tol = case.tolerance("velocity_bf16")?;
    let mut vs_f32 = compare(
        &case.name,
        "half_precision vs velocity_f32",
        &half,
        &case.f32("velocity_f32")?,
        &tol,
    );
    vs_f32.note = Some(format!("{precision:?}"));
    lines.push(vs_f32);
    lines.push(compare(
        &case.name,
        "half_precision vs velocity_bf16",
        &half,
        &case.f32("velocity_bf16")?,
        &tol,
    ));
    Ok(Outcome::Checked(lines))
}

/// `transformer_intermediates`: every tapped stage of the `transformer_full` call, plus the
/// conditioning at the case's float timestep.
pub fn intermediates<B: Backend>(fixture_dir: &Path, device: &B::Device) -> Result<Outcome> {
    let case = Case::open(fixture_dir, "transformer_intermediates")?;
    let full = Case::open(fixture_dir, "transformer_full")?;
    let model = load::<B>(fixture_dir, device)?;
    let mut taps = Collect::default();
    model.forward_tapped(input::<B>(&full, &full, "", device)?, Some(&mut taps))?;
    let float_t: f64 = case.get("float_timestep")?;
    let tfloat = model.condition_embedder.time(&[float_t], device);
    taps.0.insert("temb_tfloat".into(), tfloat.temb.into_data());
    taps.0
        .insert("timestep_proj_tfloat".into(), tfloat.proj.into_data());
    let mut lines = Vec::new();
    for tol in case.tolerances()? {
        for name in &tol.tensors {
            let port = taps
                .0
                .get(name)
                .ok_or_else(|| case.error(format!("the port has no intermediate `{name}`")))?;
            lines.push(compare(&case.name, name, port, &case.f32(name)?, &tol));
        }
    }
    Ok(Outcome::Checked(lines))
}

/// `transformer_pyramid_odd`: the forward at each stored pyramid-stage size (`pyr{k}_`) and at the
/// odd latent size (`odd_`), with the odd call's RoPE table and block input.
pub fn pyramid_odd<B: Backend>(fixture_dir: &Path, device: &B::Device) -> Result<Outcome> {
    let case = Case::open(fixture_dir, "transformer_pyramid_odd")?;
    let full = Case::open(fixture_dir, "transformer_full")?;
    let model = load::<B>(fixture_dir, device)?;
    let mut lines = Vec::new();
    for tol in case.tolerances()? {
        for name in &tol.tensors {
            let Some((prefix, what)) = name.split_once('_') else {
                return Err(case.error(format!("unexpected tensor name `{name}`")));
            };
            let prefix = format!("{prefix}_");
            let mut taps = Collect::default();
            let out = model
                .forward_tapped(input::<B>(&case, &full, &prefix, device)?, Some(&mut taps))?;
            let port = match what {
                "velocity_f32" => out.into_data(),
                "rope_full" | "block0_input" => taps
                    .0
                    .remove(what)
                    .ok_or_else(|| case.error(format!("the port has no intermediate `{what}`")))?,
                other => return Err(case.error(format!("no port output for `{other}`"))),
            };
            lines.push(check(&case, name, &port)?);
        }
    }
    Ok(Outcome::Checked(lines))
}

/// The accuracy of weight-only quantisation: the `transformer_full` forward with the DiT's block
/// weights stored as `quantization` (float32 compute), against the reference's float32 velocity.
/// The reference has no quantised path, so the bound is this port's own: `int8_tolerance()`.
pub fn quantized<B: Backend>(
    fixture_dir: &Path,
    quantization: WeightQuantization,
    device: &B::Device,
) -> Result<CheckLine> {
    let case = Case::open(fixture_dir, "transformer_full")?;
    let (model, _) = HeliosTransformer3DModel::<B>::load_quantized(
        &fixture_dir.join("transformer"),
        device,
        Precision::F32,
        quantization,
        &mut |_| {},
    )?;
    let out = model
        .forward(input::<B>(&case, &case, "", device)?)?
        .into_data();
    Ok(compare(
        &case.name,
        &format!("{quantization:?} weights vs velocity_f32"),
        &out,
        &case.f32("velocity_f32")?,
        &int8_tolerance(),
    ))
}

/// The bound on int8 block weights (32 values per scale): a few percent of the velocity.
pub fn int8_tolerance() -> Tolerance {
    Tolerance {
        what: "int8 block weights".into(),
        tensors: vec!["velocity_f32".into()],
        max_abs: 0.25,
        rel_l2: 0.03,
    }
}
