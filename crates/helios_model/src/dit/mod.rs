//! The Helios DiT (`HeliosTransformer3DModel`): one file per piece.
//!
//! - [`embed`]: patch, timestep and text embeddings
//! - [`rope`]: 3-axis RoPE tables, pooled for the compacted history
//! - [`memory`]: short / mid / long history compaction (Helios' multi-term memory)
//! - [`attention`], [`block`]: the transformer block
//! - [`model`]: the whole model and its forward pass
//! - [`load`]: loading it from a checkpoint (precision, quantisation, layer offload)

pub mod attention;
pub mod block;
pub mod embed;
pub mod load;
pub mod memory;
pub mod model;
pub mod offload;
pub mod precision;
pub mod quantize;
pub mod rope;

pub use memory::{History, HistoryTerm};
pub use model::{DitInput, HeliosTransformer3DModel, Tap};
pub use precision::Precision;
pub use quantize::WeightQuantization;
