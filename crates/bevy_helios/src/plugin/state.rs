//! The worker resource ([`HeliosWorker`]) and its status ([`HeliosWorkerStatus`]).

use std::collections::HashMap;
use std::collections::VecDeque;

use bevy::prelude::*;
use crossbeam_channel::TrySendError;

use crate::settings::HeliosSettings;
use crate::worker::{StreamId, Worker, WorkerCommand};

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
    /// Commands dropped because the command queue and its overflow were full.
    pub dropped_commands: u64,
    /// Errors reported.
    pub errors: u64,
}

/// Run condition: the model is loaded and streams can run.
pub fn helios_ready() -> impl FnMut(Option<Res<HeliosWorkerStatus>>) -> bool + Clone {
    |status| status.is_some_and(|s| s.state == HeliosWorkerState::Ready)
}

/// The worker handle (a crossbeam `Sender`/`Receiver` pair and the thread's `JoinHandle`, inside
/// [`Worker`]) plus the game-side bookkeeping. Dropping it cancels and joins the thread.
#[derive(Resource, Default)]
pub struct HeliosWorker {
    pub(super) worker: Option<Worker>,
    /// Commands that did not fit the channel yet (bounded by the settings' `command_queue`).
    pub(super) overflow: VecDeque<WorkerCommand>,
    pub(super) streams: HashMap<StreamId, Entity>,
    pub(super) settings: Option<HeliosSettings>,
    pub(super) next_seed: u64,
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
        self.worker.as_ref().is_some_and(Worker::is_alive)
    }

    pub(super) fn send(
        &mut self,
        command: WorkerCommand,
        capacity: usize,
        status: &mut HeliosWorkerStatus,
    ) {
        let Some(worker) = &self.worker else { return };
        if !self.overflow.is_empty() {
            self.push_overflow(command, capacity, status);
            return;
        }
        match worker.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(command)) => self.push_overflow(command, capacity, status),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn push_overflow(
        &mut self,
        command: WorkerCommand,
        capacity: usize,
        status: &mut HeliosWorkerStatus,
    ) {
        if self.overflow.len() >= capacity.max(1) {
            // Keep the newest: drop the oldest command that is not a start/stop.
            let victim = self
                .overflow
                .iter()
                .position(|c| {
                    !matches!(c, WorkerCommand::Start { .. } | WorkerCommand::Stop { .. })
                })
                .unwrap_or(0);
            self.overflow.remove(victim);
            status.dropped_commands += 1;
        }
        self.overflow.push_back(command);
    }

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
