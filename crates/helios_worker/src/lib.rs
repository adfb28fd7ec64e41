//! The Helios streaming generator on a background thread, for any host: a game engine plugin, a
//! server, a tool.
//!
//! A [`Worker`] is one dedicated `std::thread` that loads a checkpoint once (on the CPU, on a wgpu
//! device, possibly one shared with a renderer, or on CUDA; see [`EngineConfig`]) and serves
//! several streams of video from it. The host talks to it through two bounded channels:
//!
//! * [`WorkerCommand`]s in ([`Worker::try_send`], or [`Worker::send_timeout`] where blocking for a
//!   while is fine): start or stop a stream, switch its prompt (interpolated over a few chunks),
//!   set its conditioning image, set its priority, and grant it chunks;
//! * [`WorkerEvent`]s out ([`Worker::try_recv`], or [`Worker::events`] to wait or `select!` on
//!   the receiver): the model loaded, a stream started or stopped, a chunk of [`Frame`]s is
//!   ready, a prompt was applied, something failed ([`WorkerError`]).
//!
//! Memory stays bounded: the worker blocks on a full event channel, and a stream makes only the
//! chunks it was granted. Among the streams with a grant, the lowest priority value makes the next
//! chunk (ties round-robin); a stream with no priority is paused. With a [`QualityPolicy`] a
//! stream trades denoising steps for speed when its chunks take longer to make than to play.
//!
//! A [`Frame`] is self-describing: its size, its RGBA8 rows (or, on a shared wgpu device, a
//! reference to rows packed in a buffer of that device, [`GpuFrameRef`]) and a grid of mean
//! colours ([`FrameStats`]). Errors never panic the host: a panic inside the model is caught on
//! the worker thread and reported as an event.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use helios_model::pipeline::{GenerationParams, StreamRequest};
//! use helios_worker::{EngineConfig, Worker, WorkerCommand, WorkerEvent};
//!
//! // The embedded demo model on the CPU; 64 commands and 8 events in flight at most.
//! let worker = Worker::spawn(EngineConfig::default(), 64, 8)?;
//! let params = GenerationParams {
//!     width: Some(128),
//!     height: Some(128),
//!     ..GenerationParams::default()
//! };
//! let request = Box::new(StreamRequest::with_params("a lighthouse at dusk", params));
//! let wait = Duration::from_secs(1);
//! worker.send_timeout(WorkerCommand::Start { id: 1, request, quality: None }, wait)?;
//! worker.send_timeout(WorkerCommand::Grant { id: 1, chunks: 1 }, wait)?;
//! for event in worker.events().iter() {
//!     match event {
//!         WorkerEvent::Chunk { frames, .. } => {
//!             let (w, h) = (frames[0].width, frames[0].height);
//!             println!("{} frames of {w}x{h}", frames.len());
//!             break;
//!         }
//!         WorkerEvent::Error { error, .. } => return Err(error.into()),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod error;
mod frame;
mod options;
pub mod prompt;
mod worker;

pub use error::{WorkerError, WorkerResult};
pub use frame::{Frame, FrameStats, GpuFrameBuffer, GpuFrameRef, STATS_GRID, padded_bytes_per_row};
pub use options::{EngineBackend, EnginePrecision};
pub use worker::{
    ChunkEngine, EngineChunk, EngineConfig, QualityController, QualityLevel, QualityPolicy,
    StreamId, Worker, WorkerCommand, WorkerEvent,
};
