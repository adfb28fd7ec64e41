//! Dispatch of case names to the code that runs them; one file per model part.

mod vae;

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::{Outcome, Result};

/// Runs the case `name`.
pub fn run<B: Backend>(fixture_dir: &Path, name: &str, device: &B::Device) -> Result<Outcome> {
    match name {
        "vae" => vae::run::<B>(fixture_dir, device),
        _ => Ok(Outcome::Skipped(format!("case `{name}` is not covered by this port yet"))),
    }
}
