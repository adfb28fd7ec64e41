//! Dispatch of case names to the code that runs them; one file per model part.

mod pipeline;
mod scheduler;
mod text_encoder;
mod transformer;
mod vae;

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::{Outcome, Result};

pub use transformer::{int8_tolerance, quantized as quantized_transformer};

/// Runs the case `name`.
pub fn run<B: Backend>(fixture_dir: &Path, name: &str, device: &B::Device) -> Result<Outcome> {
    match name {
        "scheduler_steps" => scheduler::run_steps::<B>(fixture_dir, device),
        "scheduler_tables" => scheduler::run_tables(fixture_dir),
        "text_encoder" => text_encoder::run::<B>(fixture_dir, device),
        "transformer_full" => transformer::full::<B>(fixture_dir, device),
        "transformer_intermediates" => transformer::intermediates::<B>(fixture_dir, device),
        "transformer_pyramid_odd" => transformer::pyramid_odd::<B>(fixture_dir, device),
        "vae" => vae::run::<B>(fixture_dir, device),
        pipe if pipe.starts_with("pipe_") => pipeline::run::<B>(fixture_dir, pipe, device),
        _ => Ok(Outcome::Skipped(format!(
            "case `{name}` is not covered by this port yet"
        ))),
    }
}
