//! [`ServeConfig`]: what a server listens on, who may use it, and its limits.

use std::net::SocketAddr;
use std::time::Duration;

use helios_worker::EngineConfig;

use crate::error::{ServeError, ServeResult};

/// How `helios serve` runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen (port 0: any free port, see [`Server::local_addr`](crate::Server::local_addr)).
    pub addr: SocketAddr,
    /// A shared secret every session must present in its `hello`; `None` lets anyone in (bind to
    /// loopback then).
    pub token: Option<String>,
    /// Sessions served at once; more are turned away with [`ErrorCode::Busy`](crate::ErrorCode::Busy).
    pub max_sessions: usize,
    /// Streams one session may run at once.
    pub max_streams_per_session: usize,
    /// The largest `width * height` a stream may ask for (the model's memory grows with it).
    pub max_pixels: usize,
    /// Chunks a stream may have made but not yet sent: the model never runs further ahead of a
    /// client than this.
    pub chunks_ahead: u32,
    /// How long one message may wait for a client to read before the session is closed with
    /// [`ErrorCode::SlowClient`](crate::ErrorCode::SlowClient).
    pub stall_timeout: Duration,
    /// How long a new connection has to send its `hello`.
    pub hello_timeout: Duration,
    /// The largest message a client may send (conditioning images), in bytes.
    pub max_message_bytes: usize,
    /// The model the server runs.
    pub engine: EngineConfig,
}

impl ServeConfig {
    /// Defaults around `engine`, listening on `addr`: 8 sessions of 4 streams, frames up to
    /// 640x384, 2 chunks ahead, 10 s of patience with a stalled client.
    pub fn new(addr: SocketAddr, engine: EngineConfig) -> Self {
        Self {
            addr,
            token: None,
            max_sessions: 8,
            max_streams_per_session: 4,
            max_pixels: 640 * 384,
            chunks_ahead: 2,
            stall_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(5),
            max_message_bytes: 16 << 20,
            engine,
        }
    }

    /// With a shared token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Checks the limits make sense.
    pub fn validate(&self) -> ServeResult<()> {
        let positive = [
            ("max_sessions", self.max_sessions),
            ("max_streams_per_session", self.max_streams_per_session),
            ("max_pixels", self.max_pixels),
            ("chunks_ahead", self.chunks_ahead as usize),
            ("max_message_bytes", self.max_message_bytes),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ServeError::Config(format!("{name} must be at least 1")));
        }
        if self.stall_timeout.is_zero() || self.hello_timeout.is_zero() {
            return Err(ServeError::Config(
                "timeouts must be longer than zero".into(),
            ));
        }
        if self.token.as_deref() == Some("") {
            return Err(ServeError::Config(
                "an empty token would let anyone in; leave it out instead".into(),
            ));
        }
        Ok(())
    }
}
