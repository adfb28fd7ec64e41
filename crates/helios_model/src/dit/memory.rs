//! Helios' multi-term memory: the short / mid / long history latents and their compaction into
//! tokens.
//!
//! The last history frames become three token sets at three time scales — long (patch 4x the base
//! patch, e.g. 4x8x8), mid (2x, e.g. 2x4x4) and short (1x, e.g. 1x2x2) — so that the attention
//! context stays the same size however long the video runs. Port of the history part of diffusers
//! `HeliosTransformer3DModel.forward` (transformer_helios.py, diffusers 0.42.1).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::embed::{PatchEmbed, pad_replicate};
use super::rope::{HeliosRope, RopeTable};
use crate::error::Result;

/// One history term: latents `[b, c, t, h, w]` and the RoPE frame index of each of its frames.
#[derive(Debug, Clone)]
pub struct HistoryTerm<B: Backend> {
    /// Latents.
    pub latents: Tensor<B, 5>,
    /// Frame indices (length `t`).
    pub indices: Vec<i64>,
}

/// The three history terms a DiT call conditions on.
#[derive(Debug, Clone)]
pub struct History<B: Backend> {
    /// Short term: `[prefix, last frame]` at the base patch.
    pub short: HistoryTerm<B>,
    /// Mid term: 2 frames at twice the patch.
    pub mid: Option<HistoryTerm<B>>,
    /// Long term: 16 frames at four times the patch.
    pub long: Option<HistoryTerm<B>>,
}

/// Tokens and RoPE rows of the compacted history, in model order `[long | mid | short]`.
pub struct HistoryTokens<B: Backend> {
    /// `[b, n, dim]`.
    pub tokens: Tensor<B, 3>,
    /// RoPE rows of those tokens.
    pub rope: RopeTable,
    /// Token counts `[long, mid, short]`.
    pub counts: [usize; 3],
}

/// Patchifies the history terms with `short` / `mid` / `long` and builds their RoPE rows. The mid
/// and long latents are replicate-padded to multiples of their kernels first, their RoPE tables
/// are taken on the short-term grid and pooled (`pooled_table`).
pub fn compact_history<B: Backend>(
    history: &History<B>,
    short: &PatchEmbed<B>,
    mid: &PatchEmbed<B>,
    long: &PatchEmbed<B>,
    rope: &HeliosRope,
) -> Result<HistoryTokens<B>> {
    let (short_tokens, [_, h1, w1]) = short.forward(history.short.latents.clone())?;
    let short_rope = rope.table(&history.short.indices, h1, w1);

    let mut tokens = Vec::with_capacity(3);
    let mut counts = [0usize; 3];
    let mut table = RopeTable::empty(rope.width());
    if let Some(term) = &history.long {
        let (t, _) = long.forward(pad_replicate(term.latents.clone(), long.kernel()))?;
        counts[0] = t.dims()[1];
        tokens.push(t);
        table.append(&rope.pooled_table(&term.indices, h1, w1, 4));
    }
    if let Some(term) = &history.mid {
        let (t, _) = mid.forward(pad_replicate(term.latents.clone(), mid.kernel()))?;
        counts[1] = t.dims()[1];
        tokens.push(t);
        table.append(&rope.pooled_table(&term.indices, h1, w1, 2));
    }
    counts[2] = short_tokens.dims()[1];
    tokens.push(short_tokens);
    table.append(&short_rope);
    Ok(HistoryTokens {
        tokens: Tensor::cat(tokens, 1),
        rope: table,
        counts,
    })
}
