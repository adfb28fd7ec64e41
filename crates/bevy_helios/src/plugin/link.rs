//! [`WorkerLink`]: the plugin's worker, in this process ([`Worker`]) or on a `helios serve`
//! ([`RemoteWorker`], [`HeliosSettings::remote`](crate::HeliosSettings::remote)). Both take the
//! same commands and give the same events; the systems do not know which one runs.

use crossbeam_channel::{TryRecvError, TrySendError};
use helios_serve::client::{Connection, RemoteWorker};
use helios_worker::{StreamId, Worker, WorkerCommand, WorkerEvent};

/// The worker the plugin drives.
#[derive(Debug)]
pub(crate) enum WorkerLink {
    /// The model runs on a thread of this process.
    Local(Worker),
    /// The model runs on a `helios serve`.
    Remote(RemoteWorker),
}

impl WorkerLink {
    pub fn try_send(&self, command: WorkerCommand) -> Result<(), TrySendError<WorkerCommand>> {
        match self {
            Self::Local(w) => w.try_send(command),
            Self::Remote(w) => w.try_send(command),
        }
    }

    pub fn try_recv(&self) -> Result<WorkerEvent, TryRecvError> {
        match self {
            Self::Local(w) => w.try_recv(),
            Self::Remote(w) => w.try_recv(),
        }
    }

    pub fn has_events(&self) -> bool {
        match self {
            Self::Local(w) => w.has_events(),
            Self::Remote(w) => w.has_events(),
        }
    }

    /// Cancels the chunk in progress if it belongs to `id` (a remote stream is cancelled by the
    /// server when it is stopped).
    pub fn cancel_if_generating(&self, id: StreamId) {
        if let Self::Local(w) = self {
            w.cancel_if_generating(id);
        }
    }

    pub fn is_alive(&self) -> bool {
        match self {
            Self::Local(w) => w.is_alive(),
            Self::Remote(w) => w.is_alive(),
        }
    }

    pub fn shutdown(&mut self) -> bool {
        match self {
            Self::Local(w) => w.shutdown(),
            Self::Remote(w) => w.shutdown(),
        }
    }

    /// Where a remote worker's connection stands (`None` for a local worker).
    pub fn connection(&self) -> Option<Connection> {
        match self {
            Self::Local(_) => None,
            Self::Remote(w) => Some(w.connection()),
        }
    }
}
