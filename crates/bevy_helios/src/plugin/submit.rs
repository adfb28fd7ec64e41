//! [`HeliosSystems::Submit`](super::HeliosSystems::Submit), once a worker runs: starts the
//! wanted streams and sends prompts, priorities, chunk grants and conditioning images; then
//! flushes the commands that waited for room and reports the ones evicted.

use bevy::prelude::*;
use helios_model::pipeline::{Conditioning, StreamRequest};
use helios_worker::{QualityPolicy, WorkerCommand};

use super::state::{HeliosWorker, HeliosWorkerStatus};
use crate::capture::{PendingConditioning, PendingImage, image_to_rgb};
use crate::messages::{HeliosWorkerError, SetConditioningImage};
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream, HeliosStreamStatus, StreamState};
use crate::settings::HeliosSettings;

/// Run condition of the systems that drive the streams: a worker runs and the settings are valid.
pub(super) fn streams_can_run(worker: Res<HeliosWorker>) -> bool {
    worker.is_running() && worker.invalid_settings.is_none()
}

/// Sends a start for each stream that wants one (an autostarting idle screen, or a
/// [`StartStream`](crate::StartStream)), with its first prompt, its start image (once loaded) and
/// its priority. A start image that cannot be read is a [`HeliosWorkerError`]; the stream then
/// starts from the prompt alone.
pub(super) fn start_streams(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    images: Res<Assets<Image>>,
    mut errors: MessageWriter<HeliosWorkerError>,
    mut screens: Query<(
        Entity,
        &HeliosScreen,
        &mut HeliosPlayback,
        &mut HeliosStream,
    )>,
) {
    let capacity = settings.command_queue;
    for (entity, screen, mut playback, mut stream) in &mut screens {
        let wanted = match playback.state {
            StreamState::Idle => screen.autostart,
            StreamState::StartWanted => true,
            StreamState::Running { .. } | StreamState::Halted => false,
        };
        if !wanted {
            continue;
        }
        let conditioning = match &screen.start_image {
            None => Conditioning::None,
            Some(handle) => match images.get(handle).map(image_to_rgb) {
                None => continue,
                Some(Ok(rgb)) => Conditioning::Image(rgb),
                Some(Err(error)) => {
                    warn!("bevy_helios: start image of {entity}: {error}");
                    errors.write(HeliosWorkerError {
                        entity: Some(entity),
                        error,
                    });
                    Conditioning::None
                }
            },
        };
        let id = worker.new_stream_id();
        let prompt = playback.wanted_prompt.clone();
        let mut params = settings.generation.clone();
        params.seed = params.seed.wrapping_add(worker.next_seed);
        worker.next_seed += 1;
        let mut request = StreamRequest::with_params(prompt.clone(), params);
        request.conditioning = conditioning;
        let request = Box::new(request);
        let quality = settings
            .adaptive_quality
            .then(|| QualityPolicy::at_fps(settings.fps));
        worker.send(
            WorkerCommand::Start {
                id,
                request,
                quality,
            },
            capacity,
        );
        let priority = stream.priority;
        worker.send(WorkerCommand::SetPriority { id, priority }, capacity);
        worker.streams.insert(id, entity);
        playback.reset(StreamState::Running {
            id,
            grant_outstanding: false,
            sent_priority: priority,
        });
        playback.tracker.offer(&prompt, 0.0, 0.0);
        stream.prompt = Some(prompt);
        stream.status = HeliosStreamStatus::Starting;
    }
}

/// Sends each running stream's new prompt (debounced by `collect_scene_context`).
pub(super) fn send_prompts(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut screens: Query<(&mut HeliosPlayback, &mut HeliosStream)>,
) {
    for (mut playback, mut stream) in &mut screens {
        let Some(id) = playback.state.running_id() else {
            continue;
        };
        if let Some(prompt) = playback.outgoing_prompt.take() {
            stream.prompt = Some(prompt.clone());
            let over_chunks = settings.prompt_interpolation_chunks;
            let command = WorkerCommand::SetPrompt {
                id,
                prompt,
                over_chunks,
            };
            worker.send(command, settings.command_queue);
        }
    }
}

/// Sends each running stream's changed priority; `None` (hidden) pauses it.
pub(super) fn send_priorities(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut screens: Query<(&mut HeliosPlayback, &mut HeliosStream)>,
) {
    for (mut playback, mut stream) in &mut screens {
        let priority = stream.priority;
        let StreamState::Running {
            id, sent_priority, ..
        } = &mut playback.state
        else {
            continue;
        };
        if *sent_priority == priority {
            continue;
        }
        *sent_priority = priority;
        let id = *id;
        worker.send(
            WorkerCommand::SetPriority { id, priority },
            settings.command_queue,
        );
        match (&stream.status, priority) {
            (HeliosStreamStatus::Streaming, None) => stream.status = HeliosStreamStatus::Paused,
            (HeliosStreamStatus::Paused, Some(_)) => stream.status = HeliosStreamStatus::Streaming,
            _ => {}
        }
    }
}

/// Grants a running, visible stream its next chunk once its ring is down to
/// `low_water_frames` (one chunk in flight per stream; a stream with a video context only once
/// it has its first frames); keeps the rings at `ring_capacity`.
pub(super) fn grant_chunks(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut screens: Query<(&mut HeliosPlayback, &HeliosStream)>,
) {
    for (mut playback, stream) in &mut screens {
        let playback = playback.as_mut();
        playback.ring.set_capacity(settings.ring_capacity);
        if !playback.chunk_due(stream.priority, settings.low_water_frames)
            || playback.awaiting_video
        {
            continue;
        }
        if let StreamState::Running {
            id,
            grant_outstanding,
            ..
        } = &mut playback.state
        {
            *grant_outstanding = true;
            let command = WorkerCommand::Grant { id: *id, chunks: 1 };
            worker.send(command, settings.command_queue);
        }
    }
}

/// Sends the conditioning images ([`SetConditioningImage`] once its asset is loaded, and the
/// portrait captures) to their running streams. An image for a screen that is not streaming is
/// dropped with a warning; one that cannot be converted is a [`HeliosWorkerError`].
pub(super) fn send_conditioning_images(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut messages: MessageReader<SetConditioningImage>,
    mut pending: ResMut<PendingConditioning>,
    images: Res<Assets<Image>>,
    screens: Query<&HeliosPlayback>,
    mut errors: MessageWriter<HeliosWorkerError>,
) {
    let queued = messages
        .read()
        .map(|m| (m.entity, PendingImage::Asset(m.image.clone())));
    pending.0.extend(queued);
    let mut waiting = Vec::new();
    for (entity, image) in pending.0.drain(..) {
        let Some(id) = screens.get(entity).ok().and_then(|p| p.state.running_id()) else {
            warn!("bevy_helios: conditioning image for {entity}, which is not streaming; dropped");
            continue;
        };
        let rgb = match image {
            PendingImage::Captured(rgb) => Ok(rgb),
            PendingImage::Asset(handle) => match images.get(&handle) {
                Some(image) => image_to_rgb(image),
                None => {
                    waiting.push((entity, PendingImage::Asset(handle)));
                    continue;
                }
            },
        };
        match rgb {
            Ok(rgb) => {
                let image = Box::new(rgb);
                worker.send(
                    WorkerCommand::SetImage { id, image },
                    settings.command_queue,
                );
            }
            Err(error) => {
                warn!("bevy_helios: {error}");
                errors.write(HeliosWorkerError {
                    entity: Some(entity),
                    error,
                });
            }
        }
    }
    pending.0 = waiting;
}

/// Sends the commands that waited for room in the channel, then counts and logs the ones
/// evicted from the full overflow (per stream and in [`HeliosWorkerStatus`]).
pub(super) fn flush_commands(
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    mut streams: Query<&mut HeliosStream>,
) {
    worker.flush();
    let worker = worker.as_mut();
    for id in worker.evicted.drain(..) {
        status.dropped_commands += 1;
        let entity = id.and_then(|id| worker.streams.get(&id).copied());
        warn!(
            "bevy_helios: the worker's command queue is full; a command for {entity:?} was dropped"
        );
        if let Some(mut stream) = entity.and_then(|e| streams.get_mut(e).ok()) {
            stream.dropped_commands += 1;
        }
    }
}
