//! `helios serve`: one Helios model on one GPU, serving many game clients over WebSocket.
//!
//! A [`Server`] owns one model [`Worker`](helios_worker::Worker) and serves many sessions (one
//! per WebSocket connection). Each session starts streams with a prompt and the generation
//! parameters, switches their prompts (blended over N chunks), sends conditioning images,
//! changes priorities and stops them; frames come back per chunk as raw RGBA8, PNG or JPEG. The
//! message schema is in [`protocol`] (versioned: [`PROTOCOL_VERSION`]).
//!
//! What a demanding operator needs is built in:
//! - **back-pressure**: the model makes at most [`ServeConfig::chunks_ahead`] chunks of a stream
//!   that its client has not read yet, and a client that stops reading for
//!   [`ServeConfig::stall_timeout`] is closed with [`ErrorCode::SlowClient`]; nothing queues
//!   without bound;
//! - **sharing**: streams of every session share the model by priority (lower first, ties
//!   round-robin), as the plugin's screens do;
//! - **limits**: sessions per server, streams per session, pixels per frame, message size;
//! - **a shared token** ([`ServeConfig::token`]) so that only the game's own clients get in;
//! - **a clear error** for every malformed message, after which the session goes on.
//!
//! The `helios serve` command of `helios_cli` runs one.

pub mod client;
mod config;
mod encode;
mod error;
mod hub;
pub mod protocol;
mod server;
mod session;
mod stats;

pub use config::ServeConfig;
pub use encode::JPEG_QUALITY;
pub use error::{ServeError, ServeResult};
pub use protocol::{
    ClientBinary, ClientMessage, ErrorCode, FrameFormat, FrameHeader, PROTOCOL_VERSION,
    ServerMessage,
};
pub use server::{Server, ServerHandle};
pub use stats::ServerStats;
