//! `transformer/config.json`: [`TransformerConfig`] and its options.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Query/key normalisation of the DiT attention (`qk_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum QkNorm {
    /// RMSNorm over all heads' channels together (the only one Helios has).
    #[default]
    #[serde(rename = "rms_norm_across_heads")]
    RmsNormAcrossHeads,
}

/// Shape of the learned history key scale (`history_scale_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryScaleMode {
    /// One scale per head.
    #[default]
    PerHead,
    /// One scale for all heads.
    Scalar,
}

impl HistoryScaleMode {
    /// Number of learned scales for `heads` attention heads.
    pub fn scales(self, heads: usize) -> usize {
        match self {
            Self::PerHead => heads,
            Self::Scalar => 1,
        }
    }
}

/// `transformer/config.json` of `HeliosTransformer3DModel`; a missing key takes the diffusers 0.42.1
/// default ([`TransformerConfig::default`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TransformerConfig {
    /// Patch size `(t, h, w)` of the current-chunk and short-history patch embeddings.
    pub patch_size: [usize; 3],
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Latent channels in.
    pub in_channels: usize,
    /// Latent channels out.
    pub out_channels: usize,
    /// Width of the text embeddings (UMT5 `d_model`).
    pub text_dim: usize,
    /// Width of the sinusoidal timestep embedding.
    pub freq_dim: usize,
    /// Hidden width of the feed-forward network.
    pub ffn_dim: usize,
    /// Number of transformer blocks.
    pub num_layers: usize,
    /// LayerNorm (with affine) before cross-attention.
    pub cross_attn_norm: bool,
    /// Query/key normalisation.
    pub qk_norm: QkNorm,
    /// Epsilon of every norm.
    pub eps: f64,
    /// Extra key/value projections for image conditioning (unused by Helios: `null`).
    pub added_kv_proj_dim: Option<usize>,
    /// RoPE channels per axis `(t, y, x)`; they sum to `attention_head_dim`.
    pub rope_dim: [usize; 3],
    /// RoPE base.
    pub rope_theta: f64,
    /// Cross-attention only for the current chunk's tokens (history tokens skip it).
    pub guidance_cross_attn: bool,
    /// History tokens are modulated with the t = 0 embedding.
    pub zero_history_timestep: bool,
    /// The short / mid / long history patch embeddings exist.
    pub has_multi_term_memory_patch: bool,
    /// Learned amplification of the history keys in self-attention.
    pub is_amplify_history: bool,
    /// Per-head or scalar history key scale.
    pub history_scale_mode: HistoryScaleMode,
}

impl Default for TransformerConfig {
    /// The defaults of diffusers' `HeliosTransformer3DModel.__init__`.
    fn default() -> Self {
        Self {
            patch_size: [1, 2, 2],
            num_attention_heads: 40,
            attention_head_dim: 128,
            in_channels: 16,
            out_channels: 16,
            text_dim: 4096,
            freq_dim: 256,
            ffn_dim: 13824,
            num_layers: 40,
            cross_attn_norm: true,
            qk_norm: QkNorm::RmsNormAcrossHeads,
            eps: 1e-6,
            added_kv_proj_dim: None,
            rope_dim: [44, 42, 42],
            rope_theta: 10000.0,
            guidance_cross_attn: true,
            zero_history_timestep: true,
            has_multi_term_memory_patch: true,
            is_amplify_history: false,
            history_scale_mode: HistoryScaleMode::PerHead,
        }
    }
}

impl TransformerConfig {
    /// Model width `heads * head_dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Checks the values a forward pass relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(Error::config(path, m));
        if self.num_attention_heads == 0 || self.attention_head_dim == 0 || self.num_layers == 0 {
            return bad(
                "num_attention_heads, attention_head_dim and num_layers must be > 0".into(),
            );
        }
        if self.patch_size.contains(&0) {
            return bad(format!("patch_size {:?} has a zero", self.patch_size));
        }
        if self.rope_dim.iter().sum::<usize>() != self.attention_head_dim
            || self.rope_dim.iter().any(|d| d % 2 != 0)
        {
            return bad(format!(
                "rope_dim {:?} must be even and sum to attention_head_dim {}",
                self.rope_dim, self.attention_head_dim
            ));
        }
        if self.added_kv_proj_dim.is_some() {
            return bad("added_kv_proj_dim is not supported by Helios".into());
        }
        if !self.has_multi_term_memory_patch {
            return bad("has_multi_term_memory_patch = false is not supported".into());
        }
        Ok(())
    }
}
