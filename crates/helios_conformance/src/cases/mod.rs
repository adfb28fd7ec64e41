//! Dispatch of case names to the code that runs them; one file per model part.

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::case::Case;
use crate::{Outcome, Result};

mod vae;

/// Runs the case `name`.
pub fn run<B: Backend>(fixture_dir: &Path, name: &str, device: &B::Device) -> Result<Outcome> {
    match name {
        "vae" => vae::run::<B>(fixture_dir, &Case::open(fixture_dir, name)?, device),
        _ => Ok(Outcome::Skipped(format!(
            "case `{name}` is not covered by this port yet"
        ))),
    }
}
