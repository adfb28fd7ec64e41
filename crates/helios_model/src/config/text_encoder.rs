//! `text_encoder/config.json`: [`TextEncoderConfig`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::n;
use crate::error::{Error, Result};

/// The feed-forward block of the text encoder (`feed_forward_proj`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum FeedForwardProj {
    /// `wi_0` through tanh-GELU times `wi_1`, then `wo` (UMT5).
    #[default]
    #[serde(rename = "gated-gelu")]
    GatedGelu,
}

/// `text_encoder/config.json` of `UMT5EncoderModel` (transformers). The sizes are required; any other
/// missing key takes the `UMT5Config` default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TextEncoderConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub d_model: usize,
    /// Channels per head.
    pub d_kv: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets.
    #[serde(default = "n::<32>")]
    pub relative_attention_num_buckets: usize,
    /// Largest distance the buckets distinguish.
    #[serde(default = "n::<128>")]
    pub relative_attention_max_distance: usize,
    /// RMSNorm epsilon.
    #[serde(default = "TextEncoderConfig::default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    /// The feed-forward block.
    #[serde(default)]
    pub feed_forward_proj: FeedForwardProj,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: u32,
    /// End-of-sequence token id.
    #[serde(default = "TextEncoderConfig::default_eos_token_id")]
    pub eos_token_id: u32,
}

impl TextEncoderConfig {
    fn default_layer_norm_epsilon() -> f64 {
        1e-6
    }

    fn default_eos_token_id() -> u32 {
        1
    }

    /// Checks the values the encoder relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.vocab_size == 0 || self.d_model == 0 || self.d_ff == 0 {
            return Err(Error::config(
                path,
                "vocab_size, d_model and d_ff must be > 0",
            ));
        }
        if self.num_heads == 0
            || self.d_kv == 0
            || self.num_layers == 0
            || self.relative_attention_num_buckets < 2
        {
            return Err(Error::config(
                path,
                "num_heads, d_kv, num_layers must be > 0 and buckets >= 2",
            ));
        }
        Ok(())
    }
}
