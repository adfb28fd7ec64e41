//! The worker resource ([`HeliosWorker`]) and its status ([`HeliosWorkerStatus`]).

use std::collections::HashMap;
use std::collections::VecDeque;

use bevy::prelude::*;
use crossbeam_channel::TrySendError;
use helios_worker::{StreamId, WorkerCommand};

use super::link::WorkerLink;

use crate::error::HeliosError;
use crate::settings::HeliosSettings;

/// Where the worker stands.
#[derive(Clone, Debug, Default, PartialEq, Reflect)]
pub enum HeliosWorkerState {
    /// No worker yet.
    #[default]
    NotStarted,
    /// The model is loading.
    Loading,
    /// The model is loaded; streams run.
    Ready,
    /// The model failed (message); change the settings or send a `StartStream` to retry.
    Failed(String),
    /// Shut down (on `AppExit`).
    ShutDown,
    /// The `helios serve` of [`HeliosSettings::remote`] cannot be reached; the plugin keeps
    /// trying (with back-off) and its streams resume when it is back.
    Reconnecting,
}

/// The worker's state and counters.
#[derive(Resource, Clone, Debug, Default, Reflect)]
#[reflect(Resource)]
pub struct HeliosWorkerStatus {
    /// Where the worker stands.
    pub state: HeliosWorkerState,
    /// Times the worker was (re)spawned.
    pub spawns: u64,
    /// Chunks received from the worker.
    pub chunks: u64,
    /// Commands dropped because the command queue and its overflow were full (per stream in
    /// [`HeliosStream::dropped_commands`](crate::HeliosStream::dropped_commands)).
    pub dropped_commands: u64,
    /// Errors reported.
    pub errors: u64,
}

/// Run condition: the model is loaded and streams can run.
pub fn helios_ready() -> impl FnMut(Option<Res<HeliosWorkerStatus>>) -> bool + Clone {
    |status| status.is_some_and(|s| s.state == HeliosWorkerState::Ready)
}

/// The worker handle (a local worker thread, or the connection to a `helios serve`) plus the
/// game-side bookkeeping. Dropping it cancels and joins the thread.
#[derive(Resource, Default)]
pub struct HeliosWorker {
    pub(super) worker: Option<WorkerLink>,
    /// Commands that did not fit the channel yet (bounded by the settings' `command_queue`).
    pub(super) overflow: VecDeque<WorkerCommand>,
    /// Commands evicted from a full overflow since the last report (their stream, if any).
    pub(super) evicted: Vec<Option<StreamId>>,
    /// Which screen each of the worker's streams belongs to.
    pub(super) streams: HashMap<StreamId, Entity>,
    /// The settings the worker was spawned with.
    pub(super) settings: Option<HeliosSettings>,
    /// The settings error in effect (nothing starts while there is one).
    pub(super) invalid_settings: Option<HeliosError>,
    /// A `StartStream` arrived this tick (it retries a failed or dead worker).
    pub(super) start_requested: bool,
    pub(super) next_seed: u64,
    pub(super) next_id: StreamId,
}

impl HeliosWorker {
    /// Cancels the current chunk, ends the worker thread and joins it; `true` when it was joined
    /// cleanly (`false` when there was no worker).
    pub fn shutdown(&mut self) -> bool {
        self.overflow.clear();
        self.worker.take().is_some_and(|mut w| w.shutdown())
    }

    /// Whether a worker thread is running.
    pub fn is_running(&self) -> bool {
        self.worker.as_ref().is_some_and(WorkerLink::is_alive)
    }

    /// A fresh stream id.
    pub(super) fn new_stream_id(&mut self) -> StreamId {
        self.next_id += 1;
        self.next_id
    }

    /// Queues `command` without blocking: into the channel, or behind the commands waiting for
    /// room. When those reach `capacity`, the oldest one that is not a start / stop is evicted
    /// (and reported by [`super::submit::flush_commands`]).
    pub(crate) fn send(&mut self, command: WorkerCommand, capacity: usize) {
        let Some(worker) = &self.worker else { return };
        if !self.overflow.is_empty() {
            self.push_overflow(command, capacity);
            return;
        }
        match worker.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(command)) => self.push_overflow(command, capacity),
            // The thread is gone; `detect_lost_worker` reports it.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn push_overflow(&mut self, command: WorkerCommand, capacity: usize) {
        if self.overflow.len() >= capacity.max(1) {
            let victim = self
                .overflow
                .iter()
                .position(|c| {
                    !matches!(c, WorkerCommand::Start { .. } | WorkerCommand::Stop { .. })
                })
                .unwrap_or(0);
            if let Some(evicted) = self.overflow.remove(victim) {
                self.evicted.push(evicted.stream());
            }
        }
        self.overflow.push_back(command);
    }

    /// Sends what waits in the overflow while the channel has room.
    pub(super) fn flush(&mut self) {
        let Some(worker) = &self.worker else { return };
        while let Some(command) = self.overflow.pop_front() {
            if let Err(TrySendError::Full(command)) = worker.try_send(command) {
                self.overflow.push_front(command);
                break;
            }
        }
    }
}
