//! The background worker: one dedicated `std::thread` per loaded model, owning the generator and
//! all its streams.
//!
//! Not a task pool: generation never ends and would starve it. The host talks to the thread
//! through two bounded `crossbeam-channel`s (crossbeam rather than `std::sync::mpsc` because the
//! std receiver is not `Sync`, and a game engine's shared resources, or a server's shared state,
//! must be; and a crossbeam receiver can be `select!`ed on). A game uses only `try_send` /
//! `try_recv`, so it never blocks; the worker blocks on a full result channel, which is the
//! backpressure that keeps memory bounded when the host stalls. How many chunks a stream may have
//! in flight is bounded too: the host grants chunks ([`WorkerCommand::Grant`]).
//!
//! Scheduling: among the streams with a grant, the one with the lowest priority value (a game may
//! use the distance to the camera) makes the next chunk; ties go round-robin. A stream with
//! priority `None` (e.g. off-screen) is paused: it keeps its state but makes nothing.

#[cfg(feature = "cuda")]
mod cuda;
mod engine;
mod helios_engine;
mod quality;
#[cfg(test)]
mod tests;
mod thread;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TryRecvError, TrySendError, bounded};

use crate::error::{WorkerError, WorkerResult};
use crate::frame::Frame;
pub use engine::{ChunkEngine, EngineChunk, EngineConfig, StreamId};
use helios_model::pipeline::StreamRequest;
pub use quality::{QualityController, QualityLevel, QualityPolicy};
use thread::WorkerThread;

/// A request to the worker.
#[derive(Debug)]
pub enum WorkerCommand {
    /// Create (or replace) a stream.
    Start {
        /// The stream.
        id: StreamId,
        /// What to generate.
        request: Box<StreamRequest>,
        /// Adaptive quality: `Some` lowers the steps when chunks take longer than they play.
        quality: Option<QualityPolicy>,
    },
    /// Drop a stream.
    Stop {
        /// The stream.
        id: StreamId,
    },
    /// Switch a stream's prompt, interpolated over `over_chunks` chunks.
    SetPrompt {
        /// The stream.
        id: StreamId,
        /// The new prompt.
        prompt: String,
        /// Interpolation length in chunks.
        over_chunks: usize,
    },
    /// Set a stream's I2V conditioning image.
    SetImage {
        /// The stream.
        id: StreamId,
        /// The image.
        image: Box<image::RgbImage>,
    },
    /// Feed a stream the latest frames of a live video (V2V: e.g. the game's own rendered
    /// picture): VAE-encoded into its history before its next chunk.
    PushVideo {
        /// The stream.
        id: StreamId,
        /// The frames, oldest first (the last `1 + 4k`, at most 33, are used).
        frames: Vec<image::RgbImage>,
    },
    /// Set a stream's priority (lower first); `None` pauses it.
    SetPriority {
        /// The stream.
        id: StreamId,
        /// The priority.
        priority: Option<f32>,
    },
    /// Allow a stream to make `chunks` more chunks.
    Grant {
        /// The stream.
        id: StreamId,
        /// How many.
        chunks: u32,
    },
    /// Stop everything and end the thread.
    Shutdown,
}

impl WorkerCommand {
    /// The stream the command is about (`None` for [`WorkerCommand::Shutdown`]).
    pub fn stream(&self) -> Option<StreamId> {
        match self {
            Self::Start { id, .. }
            | Self::Stop { id }
            | Self::SetPrompt { id, .. }
            | Self::SetImage { id, .. }
            | Self::PushVideo { id, .. }
            | Self::SetPriority { id, .. }
            | Self::Grant { id, .. } => Some(*id),
            Self::Shutdown => None,
        }
    }
}

/// Something the worker reports.
#[derive(Debug)]
pub enum WorkerEvent {
    /// The model is loaded; streams can run.
    Loaded,
    /// A stream was created.
    Started {
        /// The stream.
        id: StreamId,
    },
    /// A chunk is ready.
    Chunk {
        /// The stream.
        id: StreamId,
        /// Chunk number in the stream.
        index: usize,
        /// The frames, with their colour statistics.
        frames: Vec<Frame>,
        /// Seconds the chunk took.
        seconds: f32,
        /// The steps per stage it was made with, when adaptive quality runs on the stream.
        steps: Option<Vec<usize>>,
        /// The size (width, height) the model made it at, when adaptive quality runs on the
        /// stream; the frames themselves keep the stream's size (resampled when smaller).
        size: Option<(usize, usize)>,
    },
    /// The worker switched a stream to this prompt.
    PromptApplied {
        /// The stream.
        id: StreamId,
        /// The prompt.
        prompt: String,
    },
    /// A stream was dropped (on request, or after its error).
    Stopped {
        /// The stream.
        id: StreamId,
    },
    /// Something failed: the model load (`id: None`, the thread then ends) or one stream (which
    /// is dropped; the others go on).
    Error {
        /// The stream, if the error is about one.
        id: Option<StreamId>,
        /// What happened.
        error: WorkerError,
    },
}

/// Handle to a running worker thread. Dropping it cancels the current chunk and joins the thread.
pub struct Worker {
    commands: Option<Sender<WorkerCommand>>,
    events: Receiver<WorkerEvent>,
    cancel: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    current: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Spawns the worker thread; it loads the engine for `config` first.
    pub fn spawn(
        config: EngineConfig,
        command_queue: usize,
        result_queue: usize,
    ) -> WorkerResult<Self> {
        Self::spawn_with(
            move || helios_engine::load(&config),
            command_queue,
            result_queue,
        )
    }

    /// Spawns the worker thread with a custom engine loader (run on the thread; a panic in it is
    /// reported as an error event).
    pub fn spawn_with<F>(load: F, command_queue: usize, result_queue: usize) -> WorkerResult<Self>
    where
        F: FnOnce() -> WorkerResult<Box<dyn ChunkEngine>> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = bounded(command_queue.max(1));
        let (ev_tx, ev_rx) = bounded(result_queue.max(1));
        let cancel = Arc::new(AtomicBool::new(false));
        let shutdown = Arc::new(AtomicBool::new(false));
        let current = Arc::new(AtomicU64::new(0));
        let thread = WorkerThread::new(
            cmd_rx,
            ev_tx,
            cancel.clone(),
            shutdown.clone(),
            current.clone(),
        );
        let handle = std::thread::Builder::new()
            .name("helios-worker".into())
            .spawn(move || thread.run(load))
            .map_err(|e| WorkerError::WorkerSpawn(Arc::new(e)))?;
        Ok(Self {
            commands: Some(cmd_tx),
            events: ev_rx,
            cancel,
            shutdown,
            current,
            handle: Some(handle),
        })
    }

    /// Sends a command without blocking; gives it back when the queue is full.
    pub fn try_send(&self, command: WorkerCommand) -> Result<(), TrySendError<WorkerCommand>> {
        match &self.commands {
            Some(tx) => tx.try_send(command),
            None => Err(TrySendError::Disconnected(command)),
        }
    }

    /// Sends a command, waiting at most `timeout` for room in the queue; gives it back on a
    /// timeout, or when the worker is gone or shut down.
    pub fn send_timeout(
        &self,
        command: WorkerCommand,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<WorkerCommand>> {
        match &self.commands {
            Some(tx) => tx.send_timeout(command, timeout),
            None => Err(SendTimeoutError::Disconnected(command)),
        }
    }

    /// The next event, without blocking.
    pub fn try_recv(&self) -> Result<WorkerEvent, TryRecvError> {
        self.events.try_recv()
    }

    /// The event channel itself, to block on (`recv`, `recv_timeout`) or to wait on together with
    /// other channels (`crossbeam_channel::select!`). It disconnects once the thread has ended
    /// and its events are read.
    pub fn events(&self) -> &Receiver<WorkerEvent> {
        &self.events
    }

    /// Whether events wait to be read.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Cancels the chunk in progress if it belongs to `id` (between two model calls).
    pub fn cancel_if_generating(&self, id: StreamId) {
        if self.current.load(Ordering::Acquire) == id.wrapping_add(1) {
            self.cancel.store(true, Ordering::Release);
        }
    }

    /// Whether the thread is still running.
    pub fn is_alive(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Cancels the current chunk, ends the thread and joins it. Returns `true` once joined cleanly
    /// (`false` if the thread had panicked outside the engine or was already joined).
    pub fn shutdown(&mut self) -> bool {
        self.shutdown.store(true, Ordering::Release);
        self.cancel.store(true, Ordering::Release);
        if let Some(tx) = self.commands.take() {
            let _ = tx.try_send(WorkerCommand::Shutdown);
        }
        // Unblock a worker waiting on a full result channel.
        while self.events.try_recv().is_ok() {}
        match self.handle.take() {
            Some(handle) => handle.join().is_ok(),
            None => false,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
