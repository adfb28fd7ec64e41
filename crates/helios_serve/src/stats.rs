//! [`ServerStats`]: what a running server has done, read without stopping it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A snapshot of a server's counters ([`ServerHandle::stats`](crate::ServerHandle::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Whether the model has finished loading.
    pub model_loaded: bool,
    /// Sessions connected now (past their `hello`).
    pub sessions: usize,
    /// Streams running now, over all sessions.
    pub streams: usize,
    /// Chunks sent completely, since the start.
    pub chunks_sent: u64,
    /// Frames sent, since the start.
    pub frames_sent: u64,
    /// Sessions closed because their client stopped reading.
    pub slow_clients: u64,
    /// Sessions turned away: the server was full, the token or the version was wrong.
    pub refused: u64,
    /// Client messages that could not be read.
    pub malformed: u64,
}

/// The live counters behind [`ServerStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub model_loaded: AtomicBool,
    pub sessions: AtomicUsize,
    pub streams: AtomicUsize,
    pub chunks_sent: AtomicU64,
    pub frames_sent: AtomicU64,
    pub slow_clients: AtomicU64,
    pub refused: AtomicU64,
    pub malformed: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> ServerStats {
        let o = Ordering::Acquire;
        ServerStats {
            model_loaded: self.model_loaded.load(o),
            sessions: self.sessions.load(o),
            streams: self.streams.load(o),
            chunks_sent: self.chunks_sent.load(o),
            frames_sent: self.frames_sent.load(o),
            slow_clients: self.slow_clients.load(o),
            refused: self.refused.load(o),
            malformed: self.malformed.load(o),
        }
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::AcqRel);
    }
}
