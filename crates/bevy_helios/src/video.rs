//! The game's own frames as a stream's context (V2V): [`HeliosVideoContext`] on a
//! [`HeliosScreen`](crate::HeliosScreen) reads back a render target the game draws into, at the
//! rate it names, and hands the latest frames to the worker right before each chunk it grants;
//! the worker VAE-encodes them into the stream's three-scale history, so the generated video
//! continues what the game shows.
//!
//! Frames travel with the chunk grants rather than on their own clock: the worker encodes each
//! push once, just before the chunk that needs it, and a stream whose context has not delivered
//! its first frames yet waits for them (its first chunk already continues the game's picture).

use std::collections::VecDeque;

use bevy::prelude::*;
use bevy::render::render_resource::TextureUsages;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use helios_worker::{StreamId, WorkerCommand};

use crate::capture::image_to_rgb;
use crate::messages::HeliosWorkerError;
use crate::plugin::HeliosWorker;
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream};
use crate::settings::HeliosSettings;

/// Readbacks of one context that may be on their way at once (more would only queue up behind
/// a slow GPU).
const MAX_IN_FLIGHT: u32 = 2;

/// Feeds a [`HeliosScreen`](crate::HeliosScreen)'s stream the frames a game camera renders into
/// [`HeliosVideoContext::source`] (V2V).
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy::camera::RenderTarget;
/// # use bevy_helios::prelude::*;
/// fn setup(mut commands: Commands, mut images: ResMut<Assets<Image>>) {
///     // The game's view of the scene, rendered into an image the plugin reads back.
///     let view = images.add(HeliosVideoContext::render_target(256, 256));
///     commands.spawn((Camera3d::default(), RenderTarget::Image(view.clone().into())));
///     // The generated video continues that view.
///     let screen = images.add(HeliosScreen::blank_image(128, 128));
///     commands.spawn((
///         HeliosScreen::new(screen).with_prompt("the same street, at dusk"),
///         HeliosVideoContext::new(view),
///     ));
/// }
/// ```
#[derive(Component, Clone, Debug, Reflect)]
#[reflect(Component)]
#[require(VideoCapture)]
pub struct HeliosVideoContext {
    /// The image a game camera renders into (`RenderTarget::Image`); it needs the `COPY_SRC`
    /// usage, as [`HeliosVideoContext::render_target`] gives it.
    pub source: Handle<Image>,
    /// Frames handed over per chunk, oldest first; the worker encodes the last `1 + 4k` of them
    /// (at most 33) into `1 + k` latent frames of the stream's history. Default 9 (3 latents).
    pub frames: usize,
    /// Frames read back per second of game time. Default 12.
    pub capture_fps: f32,
    /// Whether frames are captured and handed over (a stream that already started goes on
    /// without them when this turns off).
    pub enabled: bool,
}

impl HeliosVideoContext {
    /// A context reading `source` at the default rate.
    pub fn new(source: Handle<Image>) -> Self {
        Self {
            source,
            frames: 9,
            capture_fps: 12.0,
            enabled: true,
        }
    }

    /// Hands over `frames` frames per chunk.
    #[must_use]
    pub fn with_frames(mut self, frames: usize) -> Self {
        self.frames = frames;
        self
    }

    /// Reads back `fps` frames per second.
    #[must_use]
    pub fn with_capture_fps(mut self, fps: f32) -> Self {
        self.capture_fps = fps;
        self
    }

    /// An RGBA8 sRGB image a camera can render into and the plugin can read back (a
    /// [`HeliosScreen::blank_image`] that is also a render attachment).
    pub fn render_target(width: u32, height: u32) -> Image {
        let mut image = HeliosScreen::blank_image(width, height);
        image.texture_descriptor.usage |= TextureUsages::RENDER_ATTACHMENT;
        image
    }

    fn frames_per_push(&self) -> usize {
        self.frames.clamp(1, 33)
    }
}

/// What a context has captured and handed over (internal).
#[derive(Component, Debug, Default)]
pub(crate) struct VideoCapture {
    /// The latest frames, oldest first (at most `frames`).
    ring: VecDeque<image::RgbImage>,
    /// Frames captured since the last hand-over.
    fresh: usize,
    /// Readbacks on their way.
    in_flight: u32,
    /// Game seconds since the last readback was asked for.
    since: f32,
    /// The stream the frames went to last; a new stream waits for its first frames.
    fed: Option<StreamId>,
}

impl VideoCapture {
    fn store(&mut self, frame: image::RgbImage, keep: usize) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.ring.push_back(frame);
        while self.ring.len() > keep {
            self.ring.pop_front();
        }
        self.fresh += 1;
    }
}

/// Asks for a readback of each enabled context's source at its rate; the observer stores the
/// frame (or reports why it could not be read).
pub(crate) fn capture_video_frames(
    mut commands: Commands,
    time: Res<Time>,
    mut contexts: Query<(Entity, &HeliosVideoContext, &mut VideoCapture)>,
) {
    for (entity, context, mut capture) in &mut contexts {
        if !context.enabled || context.capture_fps <= 0.0 {
            continue;
        }
        capture.since += time.delta_secs();
        if capture.since < 1.0 / context.capture_fps || capture.in_flight >= MAX_IN_FLIGHT {
            continue;
        }
        capture.since = 0.0;
        capture.in_flight += 1;
        commands
            .spawn(Screenshot::image(context.source.clone()))
            .observe(
                move |captured: On<ScreenshotCaptured>,
                      mut contexts: Query<(&HeliosVideoContext, &mut VideoCapture)>,
                      mut errors: MessageWriter<HeliosWorkerError>| {
                    let Ok((context, mut capture)) = contexts.get_mut(entity) else {
                        return;
                    };
                    match image_to_rgb(&captured.image) {
                        Ok(frame) => capture.store(frame, context.frames_per_push()),
                        Err(error) => {
                            capture.in_flight = capture.in_flight.saturating_sub(1);
                            errors.write(HeliosWorkerError {
                                entity: Some(entity),
                                error,
                            });
                        }
                    }
                },
            );
    }
}

/// Before the chunk grants: hands a stream about to get its next chunk the latest frames (a
/// full set of fresh ones), and holds back the first grant of a stream whose context has not
/// delivered yet.
pub(crate) fn hand_over_video_frames(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut screens: Query<(
        &HeliosVideoContext,
        &mut VideoCapture,
        &mut HeliosPlayback,
        &mut HeliosStream,
    )>,
) {
    for (context, mut capture, mut playback, mut stream) in &mut screens {
        let Some(id) = playback.state.running_id() else {
            playback.awaiting_video = false;
            continue;
        };
        let due = playback.chunk_due(stream.priority, settings.low_water_frames);
        let needed = context.frames_per_push();
        if context.enabled && due && capture.fresh >= needed && capture.ring.len() >= needed {
            let frames = capture.ring.iter().cloned().collect();
            worker.send(
                WorkerCommand::PushVideo { id, frames },
                settings.command_queue,
            );
            capture.fresh = 0;
            capture.fed = Some(id);
            stream.video_pushes += 1;
        }
        playback.awaiting_video = context.enabled && capture.fed != Some(id);
    }
}
