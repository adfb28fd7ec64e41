//! Components on the game side: [`HeliosScreen`] (a stream whose frames land in an `Image`) and
//! [`HeliosStream`] (its visible state and counters).

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};
use helios_worker::StreamId;

use crate::playback::{FrameRing, FrameStats};
use crate::prompt::PromptTracker;

/// A generated video stream shown in an `Image`.
///
/// Spawn it on an NPC (optionally with a [`SceneContext`](crate::prompt::SceneContext), which
/// then drives the prompt) and use [`HeliosScreen::image`] in a material, a UI node or a sprite.
/// The plugin starts the stream on its own unless [`HeliosScreen::autostart`] is `false`
/// (then send [`StartStream`](crate::messages::StartStream)). With a
/// [`start_image`](HeliosScreen::with_start_image) (a portrait of the NPC, say) every start of the
/// stream is image-to-video from that picture.
#[derive(Component, Clone, Debug, Reflect)]
#[reflect(Component)]
#[require(HeliosStream)]
pub struct HeliosScreen {
    /// The image that shows the current frame (see [`HeliosScreen::blank_image`]).
    pub image: Handle<Image>,
    /// Start generating as soon as the worker is up.
    pub autostart: bool,
    /// Pause generation while the entity is not visible to any camera (needs `ViewVisibility`).
    pub pause_when_hidden: bool,
    /// The prompt when the entity has no `SceneContext`.
    pub prompt: String,
    /// The picture each start of the stream begins from (I2V); `None`: the prompt alone (T2V).
    /// A start waits until the image asset is loaded.
    pub start_image: Option<Handle<Image>>,
}

impl HeliosScreen {
    /// A screen showing its frames in `image`.
    pub fn new(image: Handle<Image>) -> Self {
        Self {
            image,
            autostart: true,
            pause_when_hidden: true,
            prompt: String::new(),
            start_image: None,
        }
    }

    /// Starts the stream from `image` (image-to-video), e.g. a portrait of the character; see
    /// [`SetConditioningImage`](crate::messages::SetConditioningImage) to change it mid-stream.
    #[must_use]
    pub fn with_start_image(mut self, image: Handle<Image>) -> Self {
        self.start_image = Some(image);
        self
    }

    /// Sets the prompt used when the entity has no `SceneContext`.
    #[must_use]
    pub fn with_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = prompt.into();
        self
    }

    /// Do not start on spawn; wait for a [`StartStream`](crate::messages::StartStream).
    #[must_use]
    pub fn manual(mut self) -> Self {
        self.autostart = false;
        self
    }

    /// An opaque black RGBA8 sRGB image of the given size, usable as a texture and as a copy
    /// source and destination (both upload paths and GPU readback work on it).
    pub fn blank_image(width: u32, height: u32) -> Image {
        let mut image = Image::new_fill(
            Extent3d {
                width: width.max(1),
                height: height.max(1),
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            &[0, 0, 0, 255],
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
        );
        image.texture_descriptor.usage =
            TextureUsages::TEXTURE_BINDING | TextureUsages::COPY_DST | TextureUsages::COPY_SRC;
        image
    }
}

/// Where a stream stands.
#[derive(Clone, Debug, Default, PartialEq, Reflect)]
pub enum HeliosStreamStatus {
    /// Not started (waiting for the worker, or for a `StartStream`).
    #[default]
    Idle,
    /// Start sent; waiting for the worker.
    Starting,
    /// Generating and playing.
    Streaming,
    /// Off-screen: the worker keeps the stream but makes no chunks for it.
    Paused,
    /// Stopped on request.
    Stopped,
    /// The stream (or the model) failed; the message says why. A `StartStream` retries.
    Failed(String),
}

/// The visible state of a [`HeliosScreen`]'s stream (read-only for the game; the plugin writes it).
///
/// Its counters count the stream since the screen's last
/// [`StartStream`](crate::messages::StartStream) (a restart begins a new stream, from zero); a
/// worker that is spawned again and starts the screen's stream again continues them.
#[derive(Component, Clone, Debug, Default, Reflect)]
#[reflect(Component)]
#[require(HeliosPlayback)]
pub struct HeliosStream {
    /// Where the stream stands.
    pub status: HeliosStreamStatus,
    /// The prompt last sent to the worker.
    pub prompt: Option<String>,
    /// The prompt the worker last confirmed.
    pub applied_prompt: Option<String>,
    /// Chunks received.
    pub chunks: u64,
    /// Frames shown.
    pub frames_shown: u64,
    /// Frames copied into the texture straight from the model's GPU buffer (no readback).
    pub frames_from_gpu: u64,
    /// Frames that were due while no frame was buffered (the last frame was held).
    pub underruns: u64,
    /// Frames dropped (ring full, or skipped on a long tick).
    pub dropped_frames: u64,
    /// Frames not shown because their size is not the settings' frame size (frames of a stream
    /// started before the size changed); each first, second, fourth, ... is also logged.
    pub wrong_size_frames: u64,
    /// Commands for this stream evicted from the full command queue (each logged).
    pub dropped_commands: u64,
    /// Sets of game frames handed to the stream as its video context
    /// ([`HeliosVideoContext`](crate::HeliosVideoContext)).
    pub video_pushes: u64,
    /// Frames buffered now.
    pub buffered: usize,
    /// Seconds the last chunk took to generate.
    pub last_chunk_seconds: f32,
    /// Frames in the last chunk.
    pub last_chunk_frames: usize,
    /// Denoising steps per stage of the last chunk, when
    /// [`HeliosSettings::adaptive_quality`](crate::HeliosSettings::adaptive_quality) runs the
    /// stream (they drop when chunks take longer to make than they play for).
    pub steps: Option<Vec<usize>>,
    /// The size the model made the last chunk at, when adaptive quality runs the stream: below
    /// the frame size when even one step per stage was too slow (the frames are scaled back up
    /// to the frame size before they reach the texture).
    pub generated_size: Option<UVec2>,
    /// The scheduling priority (distance to the nearest camera); `None` while paused.
    pub priority: Option<f32>,
    /// Colour statistics of the frame on screen (drives [`HeliosLight`](crate::light::HeliosLight)).
    #[reflect(ignore)]
    pub frame_stats: Option<FrameStats>,
}

impl HeliosStream {
    /// Zeroes the counters and the last chunk's figures for a new stream, keeping the status,
    /// the prompt last sent, the priority and the colour statistics of the frame still on screen.
    pub(crate) fn restart(&mut self) {
        *self = HeliosStream {
            status: std::mem::take(&mut self.status),
            prompt: self.prompt.take(),
            priority: self.priority,
            frame_stats: self.frame_stats.take(),
            ..Default::default()
        };
    }

    /// The rate the model made the last chunk at, in frames per second of wall time (its frames
    /// over the seconds it took); `None` before the first chunk. Below the playback fps
    /// ([`HeliosSettings::fps`](crate::HeliosSettings::fps)), the stream underruns sooner or later.
    pub fn generation_fps(&self) -> Option<f32> {
        (self.last_chunk_frames > 0 && self.last_chunk_seconds > 0.0)
            .then(|| self.last_chunk_frames as f32 / self.last_chunk_seconds)
    }
}

/// Where a screen's stream stands on the game side: one state per stream, changed only by the
/// plugin's systems.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum StreamState {
    /// Nothing asked yet: starts once a worker runs if the screen autostarts.
    #[default]
    Idle,
    /// A start is wanted ([`StartStream`](crate::messages::StartStream), or a running stream
    /// whose worker was replaced): sent as soon as a worker runs.
    StartWanted,
    /// The worker has (or is creating) stream `id`.
    Running {
        /// The worker's id of this stream (a new one per start).
        id: StreamId,
        /// A chunk was granted and has not arrived yet.
        grant_outstanding: bool,
        /// The priority last sent to the worker.
        sent_priority: Option<f32>,
    },
    /// Stopped on request or failed: waits for a [`StartStream`](crate::messages::StartStream).
    Halted,
}

impl StreamState {
    /// The worker's id of the stream, while it runs.
    pub(crate) fn running_id(&self) -> Option<StreamId> {
        match self {
            Self::Running { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// Internal per-screen playback and submission state.
#[derive(Component, Debug)]
pub struct HeliosPlayback {
    pub(crate) state: StreamState,
    pub(crate) ring: FrameRing,
    pub(crate) tracker: PromptTracker,
    pub(crate) wanted_prompt: String,
    pub(crate) outgoing_prompt: Option<String>,
    pub(crate) held: Option<crate::playback::Frame>,
    /// The stream's video context has not delivered its first frames: no grant yet.
    pub(crate) awaiting_video: bool,
}

impl Default for HeliosPlayback {
    fn default() -> Self {
        Self {
            state: StreamState::Idle,
            ring: FrameRing::new(72),
            tracker: PromptTracker::default(),
            wanted_prompt: String::new(),
            outgoing_prompt: None,
            held: None,
            awaiting_video: false,
        }
    }
}

impl HeliosPlayback {
    /// Queues frames as if the worker had sent them (benchmarks and tools; games never need it).
    #[doc(hidden)]
    pub fn inject_frames(&mut self, frames: impl IntoIterator<Item = crate::playback::Frame>) {
        self.ring.push(frames);
    }

    /// Whether the screen wants its stream to run (`autostart` applies while nothing was asked).
    pub(crate) fn wants_running(&self, autostart: bool) -> bool {
        match self.state {
            StreamState::Idle => autostart,
            StreamState::StartWanted | StreamState::Running { .. } => true,
            StreamState::Halted => false,
        }
    }

    /// Whether the stream's next chunk is due: it runs with no chunk in flight, it is visible
    /// (`priority` is `Some`), and its ring is down to `low_water` frames. The grant and the
    /// video context's hand-over both go by it.
    pub(crate) fn chunk_due(&self, priority: Option<f32>, low_water: usize) -> bool {
        matches!(
            self.state,
            StreamState::Running {
                grant_outstanding: false,
                ..
            }
        ) && priority.is_some()
            && self.ring.len() <= low_water
    }

    /// Forgets the stream's frames and prompt progress and moves to `state`.
    pub(crate) fn reset(&mut self, state: StreamState) {
        self.ring.clear();
        self.tracker.reset();
        self.outgoing_prompt = None;
        self.held = None;
        self.state = state;
    }
}
