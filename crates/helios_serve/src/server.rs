//! [`Server`]: binds, starts the model worker and the hub, accepts sessions until shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use helios_worker::Worker;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::ServeConfig;
use crate::error::{ServeError, ServeResult};
use crate::hub::{Hub, HubCommand, HubLimits};
use crate::session::{self, Shared};
use crate::stats::{Counters, ServerStats};

/// Commands the worker queues (a few per stream and message; sessions never wait on it).
const WORKER_COMMAND_QUEUE: usize = 256;
/// Events the worker queues before it waits for the hub.
const WORKER_EVENT_QUEUE: usize = 64;

/// A Helios server: one model, many sessions.
///
/// ```no_run
/// # async fn serve() -> Result<(), helios_serve::ServeError> {
/// use helios_serve::{ServeConfig, Server};
/// use helios_worker::EngineConfig;
///
/// let config = ServeConfig::new("127.0.0.1:7860".parse().unwrap(), EngineConfig::default())
///     .with_token("s3cret");
/// let server = Server::bind(config).await?;
/// println!("listening on ws://{}", server.local_addr());
/// server.run().await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<watch::Sender<bool>>,
    hub: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Controls a running [`Server`] from elsewhere: its counters, and shutting it down.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    counters: Arc<Counters>,
    stop: Arc<watch::Sender<bool>>,
}

impl ServerHandle {
    /// The server's counters now.
    pub fn stats(&self) -> ServerStats {
        self.counters.snapshot()
    }

    /// Stops accepting, ends every session and the model worker; [`Server::run`] then returns.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

impl Server {
    /// Checks `config`, binds its address and starts the model worker (the model loads in the
    /// background; streams started before it is ready wait for it).
    pub async fn bind(config: ServeConfig) -> ServeResult<Self> {
        config.validate()?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
        let worker = Worker::spawn(
            config.engine.clone(),
            WORKER_COMMAND_QUEUE,
            WORKER_EVENT_QUEUE,
        )?;
        let counters = Arc::new(Counters::default());
        let limits = HubLimits {
            chunks_ahead: config.chunks_ahead,
            max_streams: config.max_streams_per_session,
            max_pixels: config.max_pixels,
        };
        let (hub, handle) = Hub::new(worker, counters.clone(), limits);
        let hub = std::thread::Builder::new()
            .name("helios-serve-hub".into())
            .spawn(move || hub.run())
            .map_err(ServeError::Spawn)?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            hub: handle,
            counters,
            next_session: AtomicU64::new(1),
            shutdown: stopped,
        });
        Ok(Self {
            listener,
            local_addr,
            shared,
            stop: Arc::new(stop),
            hub: Some(hub),
        })
    }

    /// The address the server listens on (the real port when the configuration asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to read the counters and to shut the server down.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            counters: self.shared.counters.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Accepts sessions until [`ServerHandle::shutdown`]; then closes them, stops the model
    /// worker and returns.
    pub async fn run(mut self) -> ServeResult<()> {
        let mut stopped = self.shared.shutdown.clone();
        let mut sessions = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        tracing::debug!("helios serve: connection from {peer}");
                        let _ = tcp.set_nodelay(true);
                        sessions.spawn(session::run(tcp, self.shared.clone()));
                    }
                    // Out of file descriptors and the like: keep serving who is connected.
                    Err(e) => tracing::warn!("helios serve: accept failed: {e}"),
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                _ = stopped.wait_for(|stop| *stop) => break,
            }
        }
        // Sessions see the same signal and end; give them a moment to close their sockets.
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(2));
        tokio::pin!(deadline);
        while !sessions.is_empty() {
            tokio::select! {
                _ = sessions.join_next() => {}
                () = &mut deadline => { sessions.abort_all(); break; }
            }
        }
        self.stop_hub().await;
        Ok(())
    }

    async fn stop_hub(&mut self) {
        self.shared.hub.send(HubCommand::Shutdown);
        if let Some(hub) = self.hub.take() {
            let _ = tokio::task::spawn_blocking(move || hub.join()).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A server dropped without `run` still ends its worker thread.
        self.shared.hub.send(HubCommand::Shutdown);
    }
}
