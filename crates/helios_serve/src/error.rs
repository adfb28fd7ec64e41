//! The one error type of `helios_serve`.

/// What can stop a server from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listening socket could not be bound or read.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The model worker could not be started.
    #[error("cannot start the model worker")]
    Worker(#[from] helios_worker::WorkerError),
    /// The configuration is invalid.
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// The hub thread could not be spawned.
    #[error("cannot spawn the server's hub thread")]
    Spawn(#[source] std::io::Error),
}

/// `Result` with [`ServeError`].
pub type ServeResult<T> = Result<T, ServeError>;
