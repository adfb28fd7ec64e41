//! [`HeliosSystems::Receive`](super::HeliosSystems::Receive) (worker results into the screens)
//! and [`HeliosSystems::Upload`](super::HeliosSystems::Upload) (paced playback into the `Image`s);
//! and the shutdown on `AppExit`.

use bevy::prelude::*;

use super::state::{HeliosWorker, HeliosWorkerState, HeliosWorkerStatus};
use crate::error::HeliosError;
use crate::gpu::FrameSource;
use crate::messages::{ChunkReady, HeliosWorkerError, PromptApplied, StreamStarted, StreamStopped};
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream, HeliosStreamStatus};
use crate::settings::{HeliosSettings, UploadPath};
use crate::worker::{StreamId, WorkerEvent};

/// At most this many worker events are handled per tick (the rest wait in the bounded channel).
const MAX_EVENTS_PER_TICK: usize = 64;

/// Drains the worker's results (non-blocking) into the screens and writes the outbound messages.
#[allow(clippy::too_many_arguments)]
pub fn drain_worker(
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    mut screens: Query<(&mut HeliosPlayback, &mut HeliosStream)>,
    mut started: MessageWriter<StreamStarted>,
    mut stopped: MessageWriter<StreamStopped>,
    mut ready: MessageWriter<ChunkReady>,
    mut applied: MessageWriter<PromptApplied>,
    mut errors: MessageWriter<HeliosWorkerError>,
) {
    let worker = worker.as_mut();
    let mut drained = false;
    for _ in 0..MAX_EVENTS_PER_TICK {
        let Some(event) = worker.worker.as_ref().and_then(|w| w.try_recv().ok()) else {
            drained = true;
            break;
        };
        let entity_of = |id: &StreamId| worker.streams.get(id).copied();
        match event {
            WorkerEvent::Loaded => status.state = HeliosWorkerState::Ready,
            WorkerEvent::Started { id } => {
                if let Some(entity) = entity_of(&id)
                    && let Ok((_, mut stream)) = screens.get_mut(entity)
                {
                    stream.status = if stream.priority.is_some() {
                        HeliosStreamStatus::Streaming
                    } else {
                        HeliosStreamStatus::Paused
                    };
                    started.write(StreamStarted(entity));
                }
            }
            WorkerEvent::Generating { .. } => {}
            WorkerEvent::Chunk {
                id,
                index,
                frames,
                seconds,
                ..
            } => {
                status.chunks += 1;
                if let Some(entity) = entity_of(&id)
                    && let Ok((mut playback, mut stream)) = screens.get_mut(entity)
                    && playback.started
                {
                    let n = frames.len();
                    playback.grant_outstanding = false;
                    playback.ring.push(frames);
                    stream.chunks += 1;
                    stream.last_chunk_seconds = seconds;
                    stream.buffered = playback.ring.len();
                    ready.write(ChunkReady {
                        entity,
                        index,
                        frames: n,
                        seconds,
                    });
                }
            }
            WorkerEvent::PromptApplied { id, prompt } => {
                if let Some(entity) = entity_of(&id)
                    && let Ok((_, mut stream)) = screens.get_mut(entity)
                {
                    stream.applied_prompt = Some(prompt.clone());
                    applied.write(PromptApplied { entity, prompt });
                }
            }
            WorkerEvent::Stopped { id } => {
                if let Some(entity) = worker.streams.remove(&id) {
                    if let Ok((mut playback, mut stream)) = screens.get_mut(entity) {
                        playback.started = false;
                        playback.grant_outstanding = false;
                        if !matches!(stream.status, HeliosStreamStatus::Failed(_)) {
                            stream.status = HeliosStreamStatus::Stopped;
                        }
                    }
                    stopped.write(StreamStopped(entity));
                }
            }
            WorkerEvent::Error { id, error } => {
                status.errors += 1;
                let message = error.to_string();
                warn!("bevy_helios: {message}");
                match id.and_then(|id| entity_of(&id)) {
                    Some(entity) => {
                        if let Ok((mut playback, mut stream)) = screens.get_mut(entity) {
                            playback.want_running = Some(false);
                            stream.status = HeliosStreamStatus::Failed(message);
                        }
                        errors.write(HeliosWorkerError {
                            entity: Some(entity),
                            error,
                        });
                    }
                    None => {
                        status.state = HeliosWorkerState::Failed(message.clone());
                        for (mut playback, mut stream) in &mut screens {
                            if playback.started || playback.want_running != Some(false) {
                                playback.started = false;
                                playback.want_running = Some(false);
                                stream.status = HeliosStreamStatus::Failed(message.clone());
                            }
                        }
                        worker.streams.clear();
                        errors.write(HeliosWorkerError {
                            entity: None,
                            error,
                        });
                    }
                }
            }
        }
    }
    // A thread that ended without saying why (all its events are read by now).
    let gone = drained && worker.worker.as_ref().is_some_and(|w| !w.is_alive());
    if gone
        && !matches!(
            status.state,
            HeliosWorkerState::Failed(_) | HeliosWorkerState::ShutDown
        )
    {
        status.state = HeliosWorkerState::Failed(HeliosError::WorkerGone.to_string());
        status.errors += 1;
        errors.write(HeliosWorkerError {
            entity: None,
            error: HeliosError::WorkerGone,
        });
    }
}

/// Advances each screen's playback and shows the current frame (CPU write or GPU copy), within
/// the settings' per-tick upload budget (nearest screens first).
pub fn upload_frames(
    time: Res<Time>,
    settings: Res<HeliosSettings>,
    mut images: ResMut<Assets<Image>>,
    mut gpu: Option<ResMut<crate::gpu::HeliosGpuUploads>>,
    mut screens: Query<(
        Entity,
        &HeliosScreen,
        &mut HeliosPlayback,
        &mut HeliosStream,
    )>,
    mut order: Local<Vec<(f32, Entity)>>,
) {
    let dt = f64::from(time.delta_secs());
    let fps = f64::from(settings.fps);
    order.clear();
    for (entity, _, mut playback, mut stream) in &mut screens {
        let playback = playback.as_mut();
        if let Some(frame) = playback.ring.advance(dt, fps) {
            playback.held = Some(frame);
        }
        stream.buffered = playback.ring.len();
        stream.underruns = playback.ring.underruns();
        stream.dropped_frames = playback.ring.dropped();
        stream.frames_shown = playback.ring.shown();
        if playback.held.is_some() {
            order.push((stream.priority.unwrap_or(f32::INFINITY), entity));
        }
    }
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let use_gpu = settings.upload == UploadPath::GpuResident && gpu.is_some();
    for &(_, entity) in order.iter().take(settings.max_uploads_per_tick.max(1)) {
        let Ok((_, screen, mut playback, mut stream)) = screens.get_mut(entity) else {
            continue;
        };
        let Some(frame) = playback.held.take() else {
            continue;
        };
        stream.frame_stats = Some(frame.stats);
        let (w, h) = (settings.width, settings.height);
        // A frame left on the GPU goes to the texture on the GPU.
        if let Some(gpu_frame) = frame.gpu {
            if let Some(gpu) = gpu.as_deref_mut()
                && gpu_frame.buffer.width() == w
                && gpu_frame.buffer.height() == h
            {
                gpu.push(screen.image.id(), w, h, FrameSource::Gpu(gpu_frame));
                stream.frames_from_gpu += 1;
            }
            continue;
        }
        if frame.pixels.len() != (w * h * 4) as usize {
            continue;
        }
        if use_gpu && let Some(gpu) = gpu.as_deref_mut() {
            gpu.push(screen.image.id(), w, h, FrameSource::Bytes(frame.pixels));
            continue;
        }
        let Some(mut image) = images.get_mut(&screen.image) else {
            continue;
        };
        if image.width() != w || image.height() != h {
            *image = HeliosScreen::blank_image(w, h);
        }
        image.data = Some(frame.pixels);
    }
}

/// Cancels and joins the worker when the app exits.
pub fn shutdown_on_exit(
    mut exits: MessageReader<AppExit>,
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
) {
    if exits.read().next().is_some() && worker.worker.is_some() {
        let clean = worker.shutdown();
        status.state = HeliosWorkerState::ShutDown;
        info!("bevy_helios: worker shut down (joined cleanly: {clean})");
    }
}
