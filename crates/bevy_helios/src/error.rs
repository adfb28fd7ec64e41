//! The one error type of `bevy_helios`.

use helios_worker::WorkerError;

/// Everything that can go wrong between the game and the Helios worker.
///
/// Errors never panic inside a system: they reach the game as a
/// [`HeliosWorkerError`](crate::messages::HeliosWorkerError) message, and the affected stream's
/// [`HeliosStream::status`](crate::screen::HeliosStream) shows them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HeliosError {
    /// The worker ([`helios_worker`]) failed: the model could not be loaded or failed while
    /// generating ([`WorkerError::Model`], the source error kept), the thread panicked, could
    /// not be spawned or is gone ([`WorkerError::WorkerGone`]: a `StartStream` restarts it), the
    /// backend is unavailable, ...
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The settings are invalid (see [`HeliosSettings::validate`](crate::HeliosSettings::validate)).
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The Vulkan device for burn and Bevy could not be created
    /// ([`HeliosGpuDevice`](crate::gpu::HeliosGpuDevice)).
    #[error("GPU device: {0}")]
    GpuDevice(String),
    /// A captured conditioning image has a format that cannot be converted to RGB8.
    #[error("conditioning image: {0}")]
    ConditioningImage(String),
}

impl From<helios_model::Error> for HeliosError {
    fn from(error: helios_model::Error) -> Self {
        Self::Worker(WorkerError::from(error))
    }
}

/// `Result` with [`HeliosError`].
pub type HeliosResult<T> = Result<T, HeliosError>;
