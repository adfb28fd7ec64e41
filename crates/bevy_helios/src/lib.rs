#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod capture;
mod error;
pub mod gpu;
#[cfg(feature = "inspector")]
pub mod inspector;
mod light;
mod messages;
mod playback;
mod plugin;
mod precision;
mod prompt;
mod screen;
mod settings;
mod video;

pub use error::{HeliosError, HeliosResult};
pub use helios_model::pipeline::GenerationParams;
pub use helios_worker::WorkerError;
#[cfg(feature = "inspector")]
pub use inspector::{HeliosInspectorPlugin, HeliosPortraitTarget};
pub use light::{HeliosLight, HeliosLightState};
pub use messages::{
    ChunkReady, HeliosWorkerError, PromptApplied, RequestPortraitCapture, SetConditioningImage,
    StartStream, StopStream, StreamStarted, StreamStopped,
};
pub use playback::{FrameStats, STATS_GRID};
pub use plugin::{
    HeliosPlugin, HeliosSystems, HeliosWorker, HeliosWorkerState, HeliosWorkerStatus, helios_ready,
};
pub use precision::HeliosPrecision;
pub use prompt::{PromptTemplate, SceneContext, compact_prompt};
pub use screen::{HeliosScreen, HeliosStream, HeliosStreamStatus};
pub use settings::{
    GpuSharing, HeliosBackend, HeliosRemote, HeliosSettings, HeliosSettingsAsset,
    HeliosSettingsLoaderError, UploadPath,
};
pub use video::HeliosVideoContext;

/// Frames injected without a worker (the `plugin_tick` benchmark); not part of the API.
#[doc(hidden)]
pub mod bench_support {
    pub use crate::playback::Frame;
    pub use crate::screen::HeliosPlayback;
}

/// What a game needs: the plugin, its settings, the components, the messages and the sets.
pub mod prelude {
    pub use crate::precision::HeliosPrecision;
    pub use crate::{
        ChunkReady, GenerationParams, GpuSharing, HeliosBackend, HeliosLight, HeliosPlugin,
        HeliosRemote, HeliosScreen, HeliosSettings, HeliosStream, HeliosStreamStatus,
        HeliosSystems, HeliosVideoContext, HeliosWorkerError, HeliosWorkerStatus, PromptApplied,
        RequestPortraitCapture, SceneContext, SetConditioningImage, StartStream, StopStream,
        StreamStarted, StreamStopped, UploadPath, helios_ready,
    };
    #[cfg(feature = "inspector")]
    pub use crate::{HeliosInspectorPlugin, HeliosPortraitTarget};
}
