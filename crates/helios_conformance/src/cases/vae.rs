//! The `vae` case: Wan VAE decode of diffusion-space latents, and encode (posterior, sample,
//! normalisation) of every `<prefix>_posterior_mean` group the case stores.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use helios_model::vae::WanVae;

use crate::case::{Case, Tolerance};
use crate::compare::{CheckLine, compare};
use crate::{Outcome, Result};

fn tensor<B: Backend>(case: &Case, name: &str, device: &B::Device) -> Result<Tensor<B, 5>> {
    let data = case.f32(name)?;
    if data.shape.len() != 5 {
        return Err(case.error(format!(
            "`{name}` has shape {:?}, expected 5 dims",
            data.shape
        )));
    }
    Ok(Tensor::from_data(data, device))
}

/// The tolerance of `name`, or of the tensor it is derived from when the case lists none for it.
fn tolerance(case: &Case, name: &str, derived_from: &str) -> Result<Tolerance> {
    case.tolerance(name)
        .or_else(|_| case.tolerance(derived_from))
}

fn check<B: Backend>(
    case: &Case,
    name: &str,
    derived_from: &str,
    port: Tensor<B, 5>,
) -> Result<CheckLine> {
    let golden = case.f32(name)?;
    let port: TensorData = port.into_data();
    Ok(compare(
        &case.name,
        name,
        &port,
        &golden,
        &tolerance(case, name, derived_from)?,
    ))
}

/// Runs the case against the checkpoint's `vae/`.
pub fn run<B: Backend>(fixture_dir: &Path, device: &B::Device) -> Result<Outcome> {
    let case = &Case::open(fixture_dir, "vae")?;
    let vae = WanVae::<B>::load(&fixture_dir.join("vae"), device)?;
    let mut lines = Vec::new();

    let normalized = tensor::<B>(case, "decode_in_normalized", device)?;
    if case.has("decode_in_vae") {
        lines.push(check(
            case,
            "decode_in_vae",
            "decode_out",
            vae.denormalize(normalized.clone())?,
        )?);
    }
    lines.push(check(
        case,
        "decode_out",
        "decode_out",
        vae.decode(normalized)?,
    )?);

    let tensors = case
        .field("tensors")?
        .as_object()
        .ok_or_else(|| case.error("`tensors` is not an object"))?;
    let mut prefixes: Vec<&str> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix("_posterior_mean"))
        .collect();
    prefixes.sort_unstable();
    for prefix in prefixes {
        // The clip input is `decode_out` itself (a round trip); other inputs are stored as `<prefix>_in`.
        let input_name = format!("{prefix}_in");
        let input = if case.has(&input_name) {
            input_name
        } else {
            "decode_out".to_string()
        };
        let posterior = vae.encode(tensor::<B>(case, &input, device)?)?;
        let mean_name = format!("{prefix}_posterior_mean");
        lines.push(check(case, &mean_name, &mean_name, posterior.mean.clone())?);
        lines.push(check(
            case,
            &format!("{prefix}_posterior_logvar"),
            &mean_name,
            posterior.logvar.clone(),
        )?);
        let noise_name = format!("{prefix}_noise");
        if case.has(&noise_name) {
            let sample = posterior.sample(tensor::<B>(case, &noise_name, device)?)?;
            let sample_name = format!("{prefix}_sample");
            if case.has(&sample_name) {
                lines.push(check(case, &sample_name, &mean_name, sample.clone())?);
            }
            let normalized_name = format!("{prefix}_latent_normalized");
            if case.has(&normalized_name) {
                lines.push(check(
                    case,
                    &normalized_name,
                    &mean_name,
                    vae.normalize(sample)?,
                )?);
            }
        }
    }
    Ok(Outcome::Checked(lines))
}
