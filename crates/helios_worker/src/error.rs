//! [`WorkerError`]: everything the worker reports as failed.

use std::sync::Arc;

/// What can go wrong in the worker: loading the model, one stream's request or chunk, the thread.
///
/// `Clone`, so one error can be delivered to every stream it affects.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The model could not be loaded or failed while generating (bad folder, bad request, ...).
    ///
    /// `helios_model::Error` is not `Clone`; it sits in an `Arc`.
    #[error("helios model: {0}")]
    Model(#[source] Arc<helios_model::Error>),
    /// The worker thread ended without saying why (the host notices it; the worker itself never
    /// reports this).
    #[error("the Helios worker thread is gone")]
    WorkerGone,
    /// The worker thread could not be spawned.
    #[error("cannot spawn the Helios worker thread")]
    WorkerSpawn(#[source] Arc<std::io::Error>),
    /// The worker panicked inside the model; the stream that was generating is dropped.
    #[error("the Helios worker panicked: {0}")]
    WorkerPanicked(String),
    /// A request names a stream the worker does not know.
    #[error("unknown stream {0}")]
    UnknownStream(u64),
    /// Packing a chunk into GPU-resident frames failed on the device.
    #[error("GPU-resident frames: {0}")]
    GpuFrames(String),
    /// A remote worker's server (`helios serve`) refused a request or this client.
    #[error("the Helios server: {0}")]
    Remote(String),
    /// The configured backend cannot run on this machine (e.g. CUDA without a driver, or a build
    /// without the `cuda` feature).
    #[error("the {backend} backend is unavailable: {reason}")]
    BackendUnavailable {
        /// The backend.
        backend: &'static str,
        /// Why.
        reason: String,
    },
}

impl From<helios_model::Error> for WorkerError {
    fn from(error: helios_model::Error) -> Self {
        Self::Model(Arc::new(error))
    }
}

impl WorkerError {
    /// Whether this is the model's answer to a cancelled chunk (not a failure).
    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(self, Self::Model(e) if matches!(**e, helios_model::Error::Cancelled))
    }
}

/// `Result` with [`WorkerError`].
pub type WorkerResult<T> = Result<T, WorkerError>;
