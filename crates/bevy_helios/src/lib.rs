#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod capture;
pub mod error;
pub mod frame;
pub mod gpu;
pub mod light;
pub mod messages;
pub mod playback;
pub mod plugin;
mod precision;
pub mod prompt;
pub mod screen;
pub mod settings;
pub mod worker;

pub use error::{HeliosError, HeliosResult};
pub use light::{HeliosLight, HeliosLightState};
pub use messages::{
    ChunkReady, HeliosWorkerError, PromptApplied, RequestPortraitCapture, SetConditioningImage,
    StartStream, StopStream, StreamStarted, StreamStopped,
};
pub use plugin::{
    HeliosPlugin, HeliosSystems, HeliosWorker, HeliosWorkerState, HeliosWorkerStatus, helios_ready,
};
pub use precision::HeliosPrecision;
pub use prompt::{PromptTemplate, SceneContext, compact_prompt};
pub use screen::{HeliosScreen, HeliosStream, HeliosStreamStatus};
pub use settings::{GpuSharing, HeliosBackend, HeliosSettings, HeliosSettingsAsset, UploadPath};

/// What a game needs: the plugin, its settings, the components, the messages and the sets.
pub mod prelude {
    pub use crate::light::HeliosLight;
    pub use crate::messages::{
        ChunkReady, HeliosWorkerError, PromptApplied, RequestPortraitCapture, SetConditioningImage,
        StartStream, StopStream, StreamStarted, StreamStopped,
    };
    pub use crate::plugin::{HeliosPlugin, HeliosSystems, HeliosWorkerStatus, helios_ready};
    pub use crate::precision::HeliosPrecision;
    pub use crate::prompt::SceneContext;
    pub use crate::screen::{HeliosScreen, HeliosStream, HeliosStreamStatus};
    pub use crate::settings::{GpuSharing, HeliosBackend, HeliosSettings, UploadPath};
}
