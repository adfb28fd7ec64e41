//! `helios serve`: the model behind a WebSocket server for game clients (`helios_serve`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use helios_serve::{ServeConfig, Server};
use helios_worker::{EngineBackend, EngineConfig, EnginePrecision};

use crate::backend::{BackendChoice, PrecisionChoice};
use crate::common::EngineArgs;

/// The environment variable that holds the shared token (kept out of the process list).
pub const TOKEN_ENV: &str = "HELIOS_SERVE_TOKEN";

/// `helios serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; with another address, set a token)
    #[arg(long, default_value = "127.0.0.1:7860")]
    pub addr: SocketAddr,
    /// The model and where it runs.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Read the shared token every client must present from $HELIOS_SERVE_TOKEN
    #[arg(long)]
    pub token_from_env: bool,
    /// Sessions served at once
    #[arg(long, default_value_t = 8)]
    pub max_sessions: usize,
    /// Streams per session
    #[arg(long, default_value_t = 4)]
    pub max_streams: usize,
    /// The largest frame a stream may ask for, as WIDTHxHEIGHT pixels
    #[arg(long, default_value = "640x384", value_parser = parse_size)]
    pub max_frame: (usize, usize),
    /// Chunks the model may run ahead of what a client has read
    #[arg(long, default_value_t = 2)]
    pub chunks_ahead: u32,
    /// Seconds a client may leave a message unread before its session is closed
    #[arg(long, default_value_t = 10.0)]
    pub stall_seconds: f64,
}

fn parse_size(text: &str) -> Result<(usize, usize), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{text}` is not WIDTHxHEIGHT"))?;
    let side = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|e| format!("`{v}` in `{text}`: {e}"))
    };
    Ok((side(w)?, side(h)?))
}

impl ServeArgs {
    /// The server's configuration.
    pub fn config(&self) -> Result<ServeConfig> {
        let args = &self.engine;
        let engine = EngineConfig {
            model_dir: args.model.clone(),
            backend: match args.backend {
                BackendChoice::Ndarray => EngineBackend::NdArray,
                BackendChoice::Wgpu => EngineBackend::Wgpu,
                BackendChoice::Cuda => EngineBackend::Cuda,
            },
            precision: match args.precision {
                None => EnginePrecision::Auto,
                Some(PrecisionChoice::F32) => EnginePrecision::F32,
                Some(PrecisionChoice::Half) => EnginePrecision::Half,
            },
            quantization: args.quantize.into(),
            offload_blocks: args.offload_blocks,
            ..EngineConfig::default()
        };
        let mut config = ServeConfig::new(self.addr, engine);
        if self.token_from_env {
            let token = std::env::var(TOKEN_ENV)
                .with_context(|| format!("--token-from-env: ${TOKEN_ENV} is not set"))?;
            config = config.with_token(token);
        } else if !self.addr.ip().is_loopback() {
            tracing::warn!(
                "serving {} without a token: anyone who reaches it can use the GPU \
                 (--token-from-env with ${TOKEN_ENV})",
                self.addr
            );
        }
        config.max_sessions = self.max_sessions;
        config.max_streams_per_session = self.max_streams;
        config.max_pixels = self.max_frame.0.saturating_mul(self.max_frame.1);
        config.chunks_ahead = self.chunks_ahead;
        config.stall_timeout = Duration::try_from_secs_f64(self.stall_seconds)
            .with_context(|| format!("--stall-seconds {}", self.stall_seconds))?;
        Ok(config)
    }
}

/// Serves until Ctrl-C.
pub fn run(args: &ServeArgs) -> Result<()> {
    let config = args.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("helios-serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        let handle = server.handle();
        if let Err(e) = ctrlc::set_handler(move || {
            eprintln!("\nshutting down");
            handle.shutdown();
        }) {
            tracing::warn!("Ctrl-C will not shut the server down cleanly: {e}");
        }
        eprintln!("helios serve: listening on ws://{}", server.local_addr());
        server.run().await?;
        anyhow::Ok(())
    })
}
