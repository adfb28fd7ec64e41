//! Dispatch of case names to the code that runs them; one file per model part.

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::{Outcome, Result};

/// Runs the case `name`.
pub fn run<B: Backend>(fixture_dir: &Path, name: &str, _device: &B::Device) -> Result<Outcome> {
    let _ = fixture_dir;
    Ok(Outcome::Skipped(format!(
        "case `{name}` is not covered by this port yet"
    )))
}
