//! The one error type of `helios_train`.

use std::path::PathBuf;

/// What can go wrong while training the demo model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The model code refused an input or failed to load / save a part.
    #[error(transparent)]
    Model(#[from] helios_model::Error),
    /// A file of the output checkpoint could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The options cannot be trained with.
    #[error("invalid training options: {0}")]
    Options(String),
    /// The loss stopped being a finite number.
    #[error("the {part} loss diverged at step {step} ({loss})")]
    Diverged {
        /// `vae` or `transformer`.
        part: &'static str,
        /// The optimiser step.
        step: usize,
        /// The value.
        loss: f32,
    },
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
