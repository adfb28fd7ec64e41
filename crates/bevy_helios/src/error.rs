//! The one error type of `bevy_helios`.

use std::sync::Arc;

/// Everything that can go wrong between the game and the Helios worker.
///
/// Errors never panic inside a system: they reach the game as a
/// [`HeliosWorkerError`](crate::messages::HeliosWorkerError) message, and the affected stream's
/// [`HeliosStream::status`](crate::screen::HeliosStream) shows them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HeliosError {
    /// The model could not be loaded or failed while generating (bad folder, bad request, ...).
    ///
    /// `helios_model::Error` is not `Clone`; it sits in an `Arc` so one error can be delivered
    /// to every stream it affects.
    #[error("helios model: {0}")]
    Model(#[source] Arc<helios_model::Error>),
    /// The worker thread ended without saying why; a `StartStream` restarts it.
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
    /// The settings are invalid (see [`HeliosSettings::validate`](crate::HeliosSettings::validate)).
    #[error("invalid settings: {0}")]
    Settings(String),
    /// Packing a chunk into GPU-resident frames failed on the device.
    #[error("GPU-resident frames: {0}")]
    GpuFrames(String),
    /// The Vulkan device for burn and Bevy could not be created
    /// ([`HeliosGpuDevice`](crate::gpu::HeliosGpuDevice)).
    #[error("GPU device: {0}")]
    GpuDevice(String),
    /// The configured backend cannot run on this machine (e.g. CUDA without a driver).
    #[error("the {backend} backend is unavailable: {reason}")]
    BackendUnavailable {
        /// The backend.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// A captured conditioning image has a format that cannot be converted to RGB8.
    #[error("conditioning image: {0}")]
    ConditioningImage(String),
}

impl From<helios_model::Error> for HeliosError {
    fn from(error: helios_model::Error) -> Self {
        Self::Model(Arc::new(error))
    }
}

/// `Result` with [`HeliosError`].
pub type HeliosResult<T> = Result<T, HeliosError>;
