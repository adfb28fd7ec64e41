//! [`RemoteWorker`]: a `helios serve` on the other end of a WebSocket, driven with the same
//! [`WorkerCommand`]s and answering with the same [`WorkerEvent`]s as a local
//! [`Worker`](helios_worker::Worker), so a host can switch between the two.
//!
//! The connection lives on its own thread (a single-threaded tokio runtime). Streams are paced
//! by the host's grants ([`WorkerCommand::Grant`] becomes a `grant` message), so a game that plays
//! frames at its own rate is never mistaken for a slow client. When the server goes away the
//! thread reconnects with exponential back-off and starts the host's streams again with their
//! latest prompt, priority, image and outstanding grants; [`RemoteWorker::connection`] says where
//! it stands meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError, TrySendError};
use helios_worker::{WorkerCommand, WorkerError, WorkerEvent, WorkerResult};
use tokio::sync::mpsc;

use crate::protocol::FrameFormat;

mod link;

use link::Link;

/// Where a [`RemoteWorker`] connects and how.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteConfig {
    /// The server, e.g. `ws://gpu-box:7860`.
    pub url: String,
    /// The server's shared token, if it has one.
    pub token: Option<String>,
    /// How frames travel: raw RGBA8 (loopback, LAN) or PNG / JPEG (less bandwidth, more CPU).
    pub format: FrameFormat,
    /// The first wait before reconnecting; it doubles after each failed try...
    pub retry_min: Duration,
    /// ... up to this.
    pub retry_max: Duration,
}

impl RemoteConfig {
    /// `url` without a token, raw frames, retrying after 0.5 s, then up to every 10 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            format: FrameFormat::Rgba8,
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(10),
        }
    }
}

/// Where a [`RemoteWorker`]'s connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Connection {
    /// The first connection is being made.
    Connecting,
    /// Connected and welcomed.
    Connected,
    /// The server went away or could not be reached; the next try comes after a back-off.
    Retrying,
    /// The server refused this client for good (wrong token or protocol version), or the
    /// worker was shut down.
    Closed,
}

impl Connection {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Connecting,
            1 => Self::Connected,
            2 => Self::Retrying,
            _ => Self::Closed,
        }
    }
}

/// A handle to the connection thread. Dropping it closes the connection and joins the thread.
pub struct RemoteWorker {
    commands: Option<mpsc::Sender<WorkerCommand>>,
    events: Receiver<WorkerEvent>,
    connection: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RemoteWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWorker")
            .field("connection", &self.connection())
            .finish_non_exhaustive()
    }
}

impl RemoteWorker {
    /// Starts the connection thread (it connects in the background).
    pub fn connect(
        config: RemoteConfig,
        command_queue: usize,
        result_queue: usize,
    ) -> WorkerResult<Self> {
        let (cmd_tx, cmd_rx) = mpsc::channel(command_queue.max(1));
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(result_queue.max(1));
        let connection = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let link = Link::new(config, cmd_rx, ev_tx, connection.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("helios-remote".into())
            .spawn(move || link.run())
            .map_err(|e| WorkerError::WorkerSpawn(Arc::new(e)))?;
        Ok(Self {
            commands: Some(cmd_tx),
            events: ev_rx,
            connection,
            stop,
            thread: Some(thread),
        })
    }

    /// Sends a command without blocking; gives it back when the queue is full.
    pub fn try_send(&self, command: WorkerCommand) -> Result<(), TrySendError<WorkerCommand>> {
        match &self.commands {
            Some(tx) => tx.try_send(command).map_err(|e| match e {
                mpsc::error::TrySendError::Full(c) => TrySendError::Full(c),
                mpsc::error::TrySendError::Closed(c) => TrySendError::Disconnected(c),
            }),
            None => Err(TrySendError::Disconnected(command)),
        }
    }

    /// The next event, without blocking.
    pub fn try_recv(&self) -> Result<WorkerEvent, TryRecvError> {
        self.events.try_recv()
    }

    /// The event receiver, to wait or `select!` on.
    pub fn events(&self) -> &Receiver<WorkerEvent> {
        &self.events
    }

    /// Whether events wait to be read.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Where the connection stands.
    pub fn connection(&self) -> Connection {
        Connection::from_u8(self.connection.load(Ordering::Acquire))
    }

    /// Whether the connection thread still runs (it reconnects on its own while it does).
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Closes the connection and joins the thread; `true` once joined cleanly.
    pub fn shutdown(&mut self) -> bool {
        self.stop.store(true, Ordering::Release);
        if let Some(tx) = self.commands.take() {
            let _ = tx.try_send(WorkerCommand::Shutdown);
        }
        // Unblock a thread waiting on a full event channel.
        while self.events.try_recv().is_ok() {}
        match self.thread.take() {
            Some(thread) => thread.join().is_ok(),
            None => false,
        }
    }
}

impl Drop for RemoteWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
