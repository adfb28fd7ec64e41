//! The plugin's `Message`s (all registered with `add_message`).
//!
//! Inbound (the game writes them): [`StartStream`], [`StopStream`], [`SetConditioningImage`],
//! [`RequestPortraitCapture`]. Outbound (the game reads them): [`StreamStarted`], [`ChunkReady`],
//! [`PromptApplied`], [`StreamStopped`], [`HeliosWorkerError`].

use bevy::prelude::*;

use crate::error::HeliosError;

/// Start (or restart, e.g. after an error) the stream of a [`HeliosScreen`](crate::HeliosScreen).
#[derive(Message, Clone, Debug)]
pub struct StartStream(pub Entity);

/// Stop the stream of a [`HeliosScreen`](crate::HeliosScreen); its image keeps the last frame.
#[derive(Message, Clone, Debug)]
pub struct StopStream(pub Entity);

/// Condition a stream on an image (I2V), from now on.
///
/// The image is read once its asset is loaded (RGBA8 or BGRA8, sRGB or not; another format is a
/// [`HeliosWorkerError`] with [`HeliosError::ConditioningImage`]). The stream must be running.
#[derive(Message, Clone, Debug)]
pub struct SetConditioningImage {
    /// The screen entity.
    pub entity: Entity,
    /// The image (resized by the model to the stream's size).
    pub image: Handle<Image>,
}

/// Capture `target` (a portrait camera's render-target image) on the GPU and condition the
/// stream of `entity` on it. Needs the render app (`Screenshot::image`).
#[derive(Message, Clone, Debug)]
pub struct RequestPortraitCapture {
    /// The screen entity whose stream gets the image.
    pub entity: Entity,
    /// The render target to capture.
    pub target: Handle<Image>,
}

/// The worker created the stream.
#[derive(Message, Clone, Debug)]
pub struct StreamStarted(pub Entity);

/// The stream ended (on request or after an error).
#[derive(Message, Clone, Debug)]
pub struct StreamStopped(pub Entity);

/// A chunk arrived and was queued for playback.
#[derive(Message, Clone, Debug)]
pub struct ChunkReady {
    /// The screen entity.
    pub entity: Entity,
    /// Chunk number in the stream.
    pub index: usize,
    /// Frames in the chunk.
    pub frames: usize,
    /// Seconds it took to generate.
    pub seconds: f32,
}

/// The worker switched the stream to a new prompt.
#[derive(Message, Clone, Debug)]
pub struct PromptApplied {
    /// The screen entity.
    pub entity: Entity,
    /// The prompt.
    pub prompt: String,
}

/// Something failed in the worker; the game keeps running. `entity` is `None` when the model
/// itself failed (e.g. a bad model folder); the affected streams show
/// [`HeliosStreamStatus::Failed`](crate::screen::HeliosStreamStatus::Failed).
#[derive(Message, Clone, Debug)]
pub struct HeliosWorkerError {
    /// The screen entity, if the error is about one stream.
    pub entity: Option<Entity>,
    /// What happened.
    pub error: HeliosError,
}
