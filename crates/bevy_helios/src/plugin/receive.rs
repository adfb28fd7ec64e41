//! [`HeliosSystems::Receive`](super::HeliosSystems::Receive): the worker's events, read without
//! blocking into an inbox, then applied by one system per kind: errors first (so a stream that
//! failed is known as failed when its stop arrives), then chunks, then the streams' lifecycle.

use bevy::prelude::*;
use helios_serve::client::Connection;
use helios_worker::{StreamId, WorkerError, WorkerEvent};

use super::state::{HeliosWorker, HeliosWorkerState, HeliosWorkerStatus};
use crate::error::HeliosError;
use crate::messages::{ChunkReady, HeliosWorkerError, PromptApplied, StreamStarted, StreamStopped};
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream, HeliosStreamStatus, StreamState};

/// At most this many worker events are handled per tick (the rest wait in the bounded channel).
const MAX_EVENTS_PER_TICK: usize = 64;

/// The worker's events of this tick.
#[derive(Resource, Default)]
pub(super) struct WorkerInbox(Vec<WorkerEvent>);

/// Whether `id` is the stream the screen runs now (not one it ran before a restart).
fn is_current(playback: &HeliosPlayback, id: StreamId) -> bool {
    playback.state.running_id() == Some(id)
}

/// Reads up to [`MAX_EVENTS_PER_TICK`] events from the worker (never blocking).
pub(super) fn receive_worker_events(worker: Res<HeliosWorker>, mut inbox: ResMut<WorkerInbox>) {
    inbox.0.clear();
    let Some(w) = &worker.worker else { return };
    inbox
        .0
        .extend(std::iter::from_fn(|| w.try_recv().ok()).take(MAX_EVENTS_PER_TICK));
}

/// Reports the errors: a stream's error halts that stream; a model error (no stream) fails the
/// worker and every stream that runs or wants to.
pub(super) fn report_worker_errors(
    mut inbox: ResMut<WorkerInbox>,
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    mut screens: Query<(&HeliosScreen, &mut HeliosPlayback, &mut HeliosStream)>,
    mut errors: MessageWriter<HeliosWorkerError>,
) {
    let mut rest = Vec::with_capacity(inbox.0.len());
    for event in inbox.0.drain(..) {
        let WorkerEvent::Error { id, error } = event else {
            rest.push(event);
            continue;
        };
        let error = HeliosError::from(error);
        status.errors += 1;
        let message = error.to_string();
        warn!("bevy_helios: {message}");
        let Some(id) = id else {
            status.state = HeliosWorkerState::Failed(message.clone());
            for (screen, mut playback, mut stream) in &mut screens {
                if playback.wants_running(screen.autostart) {
                    playback.state = StreamState::Halted;
                    stream.status = HeliosStreamStatus::Failed(message.clone());
                }
            }
            worker.streams.clear();
            errors.write(HeliosWorkerError {
                entity: None,
                error,
            });
            continue;
        };
        let entity = worker.streams.get(&id).copied();
        if let Some((_, mut playback, mut stream)) = entity.and_then(|e| screens.get_mut(e).ok())
            && is_current(&playback, id)
        {
            playback.state = StreamState::Halted;
            stream.status = HeliosStreamStatus::Failed(message);
        }
        errors.write(HeliosWorkerError { entity, error });
    }
    inbox.0 = rest;
}

/// Queues each chunk of a running stream into its screen's frame ring.
pub(super) fn queue_chunks(
    mut inbox: ResMut<WorkerInbox>,
    worker: Res<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    mut screens: Query<(&mut HeliosPlayback, &mut HeliosStream)>,
    mut ready: MessageWriter<ChunkReady>,
) {
    for event in &mut inbox.0 {
        let WorkerEvent::Chunk {
            id,
            index,
            frames,
            seconds,
            steps,
            size,
        } = event
        else {
            continue;
        };
        status.chunks += 1;
        let Some(entity) = worker.streams.get(&*id).copied() else {
            continue;
        };
        let Ok((mut playback, mut stream)) = screens.get_mut(entity) else {
            continue;
        };
        let playback = playback.as_mut();
        let StreamState::Running {
            id: running,
            grant_outstanding,
            ..
        } = &mut playback.state
        else {
            continue;
        };
        if *running != *id {
            continue;
        }
        *grant_outstanding = false;
        let frames = std::mem::take(frames);
        let n = frames.len();
        playback.ring.push(frames);
        stream.chunks += 1;
        stream.last_chunk_seconds = *seconds;
        stream.last_chunk_frames = n;
        stream.steps = steps.take();
        stream.generated_size = size.map(|(w, h)| UVec2::new(w as u32, h as u32));
        stream.buffered = playback.ring.len();
        ready.write(ChunkReady {
            entity,
            index: *index,
            frames: n,
            seconds: *seconds,
        });
    }
}

/// Applies the streams' lifecycle: the model loaded, a stream started, its prompt switched, it
/// stopped.
pub(super) fn apply_stream_events(
    inbox: Res<WorkerInbox>,
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    mut screens: Query<(&mut HeliosPlayback, &mut HeliosStream)>,
    mut started: MessageWriter<StreamStarted>,
    mut applied: MessageWriter<PromptApplied>,
    mut stopped: MessageWriter<StreamStopped>,
) {
    for event in &inbox.0 {
        match event {
            WorkerEvent::Loaded => status.state = HeliosWorkerState::Ready,
            WorkerEvent::Started { id } => {
                let Some(entity) = worker.streams.get(id).copied() else {
                    continue;
                };
                if let Ok((playback, mut stream)) = screens.get_mut(entity)
                    && is_current(&playback, *id)
                {
                    stream.status = if stream.priority.is_some() {
                        HeliosStreamStatus::Streaming
                    } else {
                        HeliosStreamStatus::Paused
                    };
                    started.write(StreamStarted(entity));
                }
            }
            WorkerEvent::PromptApplied { id, prompt } => {
                let Some(entity) = worker.streams.get(id).copied() else {
                    continue;
                };
                if let Ok((_, mut stream)) = screens.get_mut(entity) {
                    stream.applied_prompt = Some(prompt.clone());
                    applied.write(PromptApplied {
                        entity,
                        prompt: prompt.clone(),
                    });
                }
            }
            WorkerEvent::Stopped { id } => {
                let Some(entity) = worker.streams.remove(id) else {
                    continue;
                };
                if let Ok((mut playback, mut stream)) = screens.get_mut(entity)
                    && is_current(&playback, *id)
                {
                    playback.state = StreamState::Halted;
                    if !matches!(stream.status, HeliosStreamStatus::Failed(_)) {
                        stream.status = HeliosStreamStatus::Stopped;
                    }
                }
                stopped.write(StreamStopped(entity));
            }
            WorkerEvent::Chunk { .. } | WorkerEvent::Error { .. } => {}
        }
    }
}

/// Shows a remote worker's connection in [`HeliosWorkerStatus`]: `Reconnecting` while the server
/// is gone, `Ready` again once it is back (a local worker has no connection).
pub(super) fn track_connection(worker: Res<HeliosWorker>, mut status: ResMut<HeliosWorkerStatus>) {
    let Some(connection) = worker.worker.as_ref().and_then(|w| w.connection()) else {
        return;
    };
    let next = match (connection, &status.state) {
        (Connection::Retrying, HeliosWorkerState::Ready | HeliosWorkerState::Loading) => {
            Some(HeliosWorkerState::Reconnecting)
        }
        (Connection::Connected, HeliosWorkerState::Reconnecting) => Some(HeliosWorkerState::Ready),
        _ => None,
    };
    if let Some(next) = next {
        if next == HeliosWorkerState::Reconnecting {
            warn!("bevy_helios: the Helios server is unreachable; reconnecting");
        }
        status.state = next;
    }
}

/// Reports a worker thread that ended without saying why (once all its events are read).
pub(super) fn detect_lost_worker(
    worker: Res<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    mut errors: MessageWriter<HeliosWorkerError>,
) {
    let gone = worker
        .worker
        .as_ref()
        .is_some_and(|w| !w.is_alive() && !w.has_events());
    let reported = matches!(
        status.state,
        HeliosWorkerState::Failed(_) | HeliosWorkerState::ShutDown
    );
    if gone && !reported {
        let error = HeliosError::Worker(WorkerError::WorkerGone);
        warn!("bevy_helios: {error}");
        status.state = HeliosWorkerState::Failed(error.to_string());
        status.errors += 1;
        errors.write(HeliosWorkerError {
            entity: None,
            error,
        });
    }
}
