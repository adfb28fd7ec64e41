//! Golden-case conformance: runs the port on the inputs of a fixture set's `cases/*.json` +
//! `*.safetensors` and compares every stored output at the case's own tolerances (max-abs AND rel-L2).
//!
//! Nothing of a particular fixture set is hard-coded: shapes, configs, prompts, timesteps and
//! tolerances come from the case files and the checkpoint next to them. `helios check` and the test
//! suite both call [`run_case`], so they cannot drift apart.

mod case;
mod cases;
mod compare;

pub use case::{Case, Tolerance};
pub use compare::{CheckLine, compare};

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

/// Errors of the conformance runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConformanceError {
    /// The port failed (loading, bad input, ...).
    #[error(transparent)]
    Model(#[from] helios_model::Error),
    /// A case file is missing or malformed.
    #[error("case {path}: {message}")]
    Case {
        /// The case file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A fixture folder cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A field of a case file does not deserialise.
    #[error("case {path}: field `{field}`: {source}")]
    Field {
        /// The case file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// A tensor of a case cannot be read as the type the check needs.
    #[error("case {path}: tensor `{tensor}`: {source}")]
    TensorData {
        /// The case file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What burn found.
        #[source]
        source: burn::tensor::DataError,
    },
}

/// `Result` with [`ConformanceError`].
pub type Result<T, E = ConformanceError> = std::result::Result<T, E>;

/// What running one case produced.
#[derive(Debug)]
pub enum Outcome {
    /// The case ran; one line per compared tensor.
    Checked(Vec<CheckLine>),
    /// The port cannot run this case yet.
    Skipped(String),
}

/// The case names of a fixture set: the stems of `cases/*.json`, sorted.
pub fn case_names(fixture_dir: &Path) -> Result<Vec<String>> {
    let dir = fixture_dir.join("cases");
    let entries = std::fs::read_dir(&dir).map_err(|source| ConformanceError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension().is_some_and(|x| x == "json"))
                .then(|| p.file_stem().map(|s| s.to_string_lossy().into_owned()))?
        })
        .collect();
    names.sort();
    Ok(names)
}

pub use cases::int8_tolerance;

/// The `transformer_full` forward with the DiT's block weights quantised (`quantization`),
/// against the reference's float32 velocity, at this port's own bound ([`int8_tolerance`]): the
/// reference has no quantised path.
pub fn check_quantized_transformer<B: Backend>(
    fixture_dir: &Path,
    quantization: helios_model::dit::WeightQuantization,
    device: &B::Device,
) -> Result<CheckLine> {
    cases::quantized_transformer::<B>(fixture_dir, quantization, device)
}

/// Runs one golden case of the fixture set in `fixture_dir` on backend `B`.
pub fn run_case<B: Backend>(fixture_dir: &Path, name: &str, device: &B::Device) -> Result<Outcome> {
    cases::run::<B>(fixture_dir, name, device)
}
