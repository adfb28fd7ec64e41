//! The one error type of `helios_model`.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running Helios.
///
/// Every variant names the file (and tensor) it is about, so a user who points the port at a broken
/// checkpoint learns what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read (missing, permissions, ...).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (a checkpoint being saved).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is malformed, or a field is missing, has the wrong type or an unknown value.
    #[error("invalid JSON in {path}{}: {source}", at_field(field))]
    Json {
        /// The file.
        path: PathBuf,
        /// Where serde stopped (`solver_type`, `dim_mult[2]`; `.` for the top level).
        field: String,
        /// What serde found (with the line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A config value is present but unusable (e.g. inconsistent sizes).
    #[error("invalid config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `model_index.json` names a class this port does not implement.
    #[error("{path}: component `{component}` is `{class}`, expected one of {expected:?}")]
    UnknownModelClass {
        /// The `model_index.json` (or component config) path.
        path: PathBuf,
        /// The component (`transformer`, `vae`, ...).
        component: String,
        /// The class it names.
        class: String,
        /// The classes this port supports there.
        expected: Vec<&'static str>,
    },
    /// A safetensors file is truncated or corrupt.
    #[error("corrupt safetensors file {path}: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A tensor is stored in a dtype the port cannot read.
    #[error("{path}: tensor `{key}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// The stored dtype.
        dtype: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("{part}: tensor `{key}` is missing from {path}")]
    MissingTensor {
        /// The model part (`transformer`, `vae`, `text_encoder`).
        part: &'static str,
        /// The checkpoint key.
        key: String,
        /// The folder or file searched.
        path: PathBuf,
    },
    /// The checkpoint holds tensors the model does not use (a different architecture or config).
    #[error("{part}: {path} holds {} tensor(s) the model does not use, e.g. `{}`", keys.len(), keys.first().map(String::as_str).unwrap_or(""))]
    UnexpectedTensors {
        /// The model part.
        part: &'static str,
        /// The folder or file.
        path: PathBuf,
        /// The unused keys.
        keys: Vec<String>,
    },
    /// A stored tensor's shape does not match what the config implies.
    #[error("{part}: tensor `{key}` in {path} has shape {got:?}, the config implies {expected:?}")]
    TensorShape {
        /// The model part.
        part: &'static str,
        /// The checkpoint key.
        key: String,
        /// The file holding it.
        path: PathBuf,
        /// The shape implied by the config.
        expected: Vec<usize>,
        /// The stored shape.
        got: Vec<usize>,
    },
    /// The tokenizer could not be loaded or failed on a prompt.
    #[error("tokenizer {path}: {source}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong (the `tokenizers` or JSON error, or what the port found).
        #[source]
        source: tokenizers::Error,
    },
    /// A runtime input has the wrong shape.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// The input.
        what: String,
        /// What was expected.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A generation request cannot be served (bad sizes, empty prompt, wrong steps list, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Generation was cancelled between two model calls.
    #[error("cancelled")]
    Cancelled,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// ` at `field`` for a field below the top level of a JSON file, else nothing.
fn at_field(field: &str) -> String {
    if field.is_empty() || field == "." {
        String::new()
    } else {
        format!(" at `{field}`")
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}
