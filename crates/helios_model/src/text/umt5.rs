//! The UMT5 encoder.
//!
//! Port of transformers `UMT5EncoderModel` (`models/umt5/modeling_umt5.py`, transformers 5.23.0), the
//! encoder stack only, in inference mode (dropout is the identity). Differences from T5 that matter:
//! every layer owns its relative-position bias table (T5 shares the first layer's), and the attention
//! logits are not scaled by `1/sqrt(d_kv)`.
//!
//! Per block: `x += o(softmax(q kᵀ + bias + mask) v)` on `RMSNorm(x)`, then
//! `x += wo(gelu_tanh(wi_0 h) * wi_1 h)` with `h = RMSNorm(x)`; a final RMSNorm closes the stack.
//! Field names copy the checkpoint path segments (`encoder.block.{i}.layer.0.SelfAttention.q`); the
//! only renames, forced by Rust naming, are in [`key_map`].

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::config::TextEncoderConfig;
use crate::weights::KeyMap;

/// Checkpoint keys of the burn paths of [`UMT5EncoderModel`]. The embedding is read from
/// `shared.weight`, or from `encoder.embed_tokens.weight` when `embedding_in_encoder` (exports that
/// store the tied weight only there); an extra tied copy under the other name stays unused.
pub fn key_map(embedding_in_encoder: bool) -> KeyMap {
    const RULES: [(&str, &str); 4] = [
        ("layer_0.self_attention.", "layer.0.SelfAttention."),
        ("layer_0.layer_norm.", "layer.0.layer_norm."),
        ("layer_1.dense_relu_dense.", "layer.1.DenseReluDense."),
        ("layer_1.layer_norm.", "layer.1.layer_norm."),
    ];
    // The embedding tables are stored `[n, dim]` both in burn and in the checkpoint.
    const EMBEDDINGS: [&str; 2] = ["relative_attention_bias.", "shared."];
    if embedding_in_encoder {
        let mut rules = RULES.to_vec();
        rules.push(("shared.weight", "encoder.embed_tokens.weight"));
        KeyMap::new(&rules).keeping_layout(&EMBEDDINGS)
    } else {
        KeyMap::new(&RULES)
            .ignoring_unused(&["encoder.embed_tokens."])
            .keeping_layout(&EMBEDDINGS)
    }
}

/// Port of transformers `UMT5LayerNorm`: RMSNorm without mean subtraction or bias, the statistics in
/// float32.
#[derive(Module, Debug)]
pub struct UMT5LayerNorm<B: Backend> {
    /// `[d_model]` scale.
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl<B: Backend> UMT5LayerNorm<B> {
    fn new(d_model: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: burn::module::Initializer::Ones.init([d_model], device),
            eps,
        }
    }

    /// `[b, s, d] -> [b, s, d]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let dtype = x.dtype();
        let variance = x.clone().cast(DType::F32).square().mean_dim(2);
        let inv_rms = (variance + self.eps).sqrt().recip();
        let normed = (x.cast(DType::F32) * inv_rms).cast(dtype);
        normed * self.weight.val().unsqueeze::<3>()
    }
}

/// Port of transformers `UMT5Attention` (encoder self-attention, with its own relative-position bias).
#[derive(Module, Debug)]
pub struct UMT5Attention<B: Backend> {
    /// Query projection `d_model -> heads * d_kv`, no bias.
    pub q: Linear<B>,
    /// Key projection.
    pub k: Linear<B>,
    /// Value projection.
    pub v: Linear<B>,
    /// Output projection `heads * d_kv -> d_model`.
    pub o: Linear<B>,
    /// `[num_buckets, heads]` bias per relative-position bucket.
    pub relative_attention_bias: Embedding<B>,
    /// Heads.
    pub n_heads: usize,
    /// Channels per head.
    pub d_kv: usize,
}

impl<B: Backend> UMT5Attention<B> {
    fn new(c: &TextEncoderConfig, device: &B::Device) -> Self {
        let inner = c.num_heads * c.d_kv;
        let linear = |i, o| LinearConfig::new(i, o).with_bias(false).init::<B>(device);
        Self {
            q: linear(c.d_model, inner),
            k: linear(c.d_model, inner),
            v: linear(c.d_model, inner),
            o: linear(inner, c.d_model),
            relative_attention_bias: EmbeddingConfig::new(
                c.relative_attention_num_buckets,
                c.num_heads,
            )
            .init::<B>(device),
            n_heads: c.num_heads,
            d_kv: c.d_kv,
        }
    }

    /// `compute_bias`: `[s*s]` bucket ids (row-major `[query, key]`) -> `[1, heads, s, s]`.
    fn bias(&self, buckets: Tensor<B, 2, Int>, s: usize) -> Tensor<B, 4> {
        let values = self.relative_attention_bias.forward(buckets); // [1, s*s, h]
        values
            .reshape([s, s, self.n_heads])
            .permute([2, 0, 1])
            .unsqueeze::<4>()
    }

    /// `x: [b, s, d]`, `buckets: [1, s*s]`, `mask: [b, 1, 1, s]` additive (0 or the f32 minimum).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        buckets: Tensor<B, 2, Int>,
        mask: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let heads = |t: Tensor<B, 3>| t.reshape([b, s, self.n_heads, self.d_kv]).swap_dims(1, 2);
        let q = heads(self.q.forward(x.clone()));
        let k = heads(self.k.forward(x.clone()));
        let v = heads(self.v.forward(x));
        // UMT5 does not scale the logits.
        let scores = q.matmul(k.swap_dims(2, 3)) + self.bias(buckets, s) + mask;
        let out = softmax(scores, 3).matmul(v); // [b, h, s, d_kv]
        self.o.forward(
            out.swap_dims(1, 2)
                .reshape([b, s, self.n_heads * self.d_kv]),
        )
    }
}

/// Port of transformers `UMT5LayerSelfAttention`: pre-norm self-attention with a residual.
#[derive(Module, Debug)]
pub struct UMT5LayerSelfAttention<B: Backend> {
    /// `SelfAttention`.
    pub self_attention: UMT5Attention<B>,
    /// Pre-norm.
    pub layer_norm: UMT5LayerNorm<B>,
}

/// Port of transformers `UMT5DenseGatedActDense`: `wo(gelu_tanh(wi_0 x) * wi_1 x)`.
#[derive(Module, Debug)]
pub struct UMT5DenseGatedActDense<B: Backend> {
    /// Gate projection `d_model -> d_ff`.
    pub wi_0: Linear<B>,
    /// Linear projection `d_model -> d_ff`.
    pub wi_1: Linear<B>,
    /// Output projection `d_ff -> d_model`.
    pub wo: Linear<B>,
}

impl<B: Backend> UMT5DenseGatedActDense<B> {
    /// `[b, s, d] -> [b, s, d]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = gelu_tanh(self.wi_0.forward(x.clone()));
        self.wo.forward(gate * self.wi_1.forward(x))
    }
}

// transformers `NewGELUActivation` (`gelu_new`) is the tanh GELU.
use crate::ops::gelu_tanh;

/// Port of transformers `UMT5LayerFF`: pre-norm gated FFN with a residual.
#[derive(Module, Debug)]
pub struct UMT5LayerFF<B: Backend> {
    /// `DenseReluDense` (gated-GELU despite the name).
    pub dense_relu_dense: UMT5DenseGatedActDense<B>,
    /// Pre-norm.
    pub layer_norm: UMT5LayerNorm<B>,
}

/// Port of transformers `UMT5Block` (encoder: self-attention then FFN; `layer.0` / `layer.1`).
#[derive(Module, Debug)]
pub struct UMT5Block<B: Backend> {
    /// `layer.0`.
    pub layer_0: UMT5LayerSelfAttention<B>,
    /// `layer.1`.
    pub layer_1: UMT5LayerFF<B>,
}

impl<B: Backend> UMT5Block<B> {
    fn new(c: &TextEncoderConfig, device: &B::Device) -> Self {
        let linear = |i, o| LinearConfig::new(i, o).with_bias(false).init::<B>(device);
        let norm = || UMT5LayerNorm::new(c.d_model, c.layer_norm_epsilon, device);
        Self {
            layer_0: UMT5LayerSelfAttention {
                self_attention: UMT5Attention::new(c, device),
                layer_norm: norm(),
            },
            layer_1: UMT5LayerFF {
                dense_relu_dense: UMT5DenseGatedActDense {
                    wi_0: linear(c.d_model, c.d_ff),
                    wi_1: linear(c.d_model, c.d_ff),
                    wo: linear(c.d_ff, c.d_model),
                },
                layer_norm: norm(),
            },
        }
    }

    /// `[b, s, d] -> [b, s, d]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        buckets: Tensor<B, 2, Int>,
        mask: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let attn = &self.layer_0;
        let x = x.clone()
            + attn
                .self_attention
                .forward(attn.layer_norm.forward(x), buckets, mask);
        let ff = &self.layer_1;
        x.clone() + ff.dense_relu_dense.forward(ff.layer_norm.forward(x))
    }
}

/// Port of transformers `UMT5Stack` (encoder; the token embedding lives in [`UMT5EncoderModel`]).
#[derive(Module, Debug)]
pub struct UMT5Stack<B: Backend> {
    /// The blocks.
    pub block: Vec<UMT5Block<B>>,
    /// Final RMSNorm.
    pub final_layer_norm: UMT5LayerNorm<B>,
    /// Relative-position buckets (both directions together).
    pub num_buckets: usize,
    /// Distance past which positions share a bucket.
    pub max_distance: usize,
}

/// Port of transformers `UMT5EncoderModel` (modeling_umt5.py, transformers 5.23.0).
#[derive(Module, Debug)]
pub struct UMT5EncoderModel<B: Backend> {
    /// `[vocab, d_model]` token embedding (`shared.weight`, tied to `encoder.embed_tokens`).
    pub shared: Embedding<B>,
    /// The encoder stack.
    pub encoder: UMT5Stack<B>,
}

impl<B: Backend> UMT5EncoderModel<B> {
    /// The model for `config`, parameters lazily initialised (nothing is allocated until they are
    /// loaded or first used). The config must have passed [`TextEncoderConfig::validate`].
    pub fn new(config: &TextEncoderConfig, device: &B::Device) -> Self {
        Self {
            shared: EmbeddingConfig::new(config.vocab_size, config.d_model).init::<B>(device),
            encoder: UMT5Stack {
                block: (0..config.num_layers)
                    .map(|_| UMT5Block::new(config, device))
                    .collect(),
                final_layer_norm: UMT5LayerNorm::new(
                    config.d_model,
                    config.layer_norm_epsilon,
                    device,
                ),
                num_buckets: config.relative_attention_num_buckets,
                max_distance: config.relative_attention_max_distance,
            },
        }
    }

    /// `last_hidden_state` `[b, s, d_model]` of `input_ids` `[b, s]` with `attention_mask` `[b, s]`
    /// (1 = real token, 0 = padding; padded keys are masked out, padded query rows are still
    /// computed, as in the reference). Ids must be `< vocab_size` (the caller checks).
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        let device = input_ids.device();
        let [b, s] = input_ids.dims();
        let buckets = bucket_grid(s, self.encoder.num_buckets, self.encoder.max_distance);
        let buckets = Tensor::<B, 2, Int>::from_data(TensorData::new(buckets, [1, s * s]), &device);
        // `create_bidirectional_mask` (eager): 0 where attended, the dtype minimum where masked.
        let masked = attention_mask.equal_elem(0).float();
        let mask = (masked * f32::MIN).reshape([b, 1, 1, s]);
        let mut x = self.shared.forward(input_ids);
        for block in &self.encoder.block {
            x = block.forward(x, buckets.clone(), mask.clone());
        }
        self.encoder.final_layer_norm.forward(x)
    }
}

/// `UMT5Attention._relative_position_bucket` for the encoder (bidirectional): half the buckets for
/// keys before the query, half for keys after; within each half, exact buckets for distances below
/// `num_buckets / 4`, then logarithmic ones up to `max_distance`. Computed in f32 like the reference,
/// whose truncation decides the bucket at exact powers of two.
pub fn relative_position_bucket(
    relative_position: i64,
    num_buckets: usize,
    max_distance: usize,
) -> i64 {
    let half = (num_buckets / 2) as i64;
    let mut bucket = if relative_position > 0 { half } else { 0 };
    let distance = relative_position.abs();
    let max_exact = half / 2;
    if distance < max_exact {
        return bucket + distance;
    }
    let log_ratio = ((distance as f32) / (max_exact as f32)).ln()
        / ((max_distance as f64 / max_exact as f64).ln() as f32);
    let large = max_exact.saturating_add((log_ratio * (half - max_exact) as f32) as i64);
    bucket += large.clamp(0, (half - 1).max(0));
    bucket
}

/// Row-major `[s, s]` buckets of `key - query`.
fn bucket_grid(s: usize, num_buckets: usize, max_distance: usize) -> Vec<i64> {
    let span = s.saturating_sub(1) as i64;
    let by_offset: Vec<i64> = (-span..=span)
        .map(|r| relative_position_bucket(r, num_buckets, max_distance))
        .collect();
    let mut grid = Vec::with_capacity(s * s);
    for q in 0..s {
        for k in 0..s {
            grid.push(by_offset[k + s - 1 - q]);
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first relative position of each bucket run, from transformers 5.23.0
    /// `UMT5Attention._relative_position_bucket` (encoder, 32 buckets, max distance 128) over
    /// positions -1100..=1100.
    #[test]
    fn buckets_match_the_reference() {
        let transitions: [(i64, i64); 31] = [
            (-1100, 15),
            (-90, 14),
            (-63, 13),
            (-45, 12),
            (-31, 11),
            (-22, 10),
            (-15, 9),
            (-11, 8),
            (-7, 7),
            (-6, 6),
            (-5, 5),
            (-4, 4),
            (-3, 3),
            (-2, 2),
            (-1, 1),
            (0, 0),
            (1, 17),
            (2, 18),
            (3, 19),
            (4, 20),
            (5, 21),
            (6, 22),
            (7, 23),
            (8, 24),
            (12, 25),
            (16, 26),
            (23, 27),
            (32, 28),
            (46, 29),
            (64, 30),
            (91, 31),
        ];
        let mut got = Vec::new();
        let mut prev = None;
        for r in -1100..=1100 {
            let b = relative_position_bucket(r, 32, 128);
            if Some(b) != prev {
                got.push((r, b));
                prev = Some(b);
            }
        }
        assert_eq!(got, transitions);
    }

    #[test]
    fn bucket_grid_is_key_minus_query() {
        let g = bucket_grid(3, 32, 128);
        // row 0: offsets 0, 1, 2; row 2: offsets -2, -1, 0.
        assert_eq!(g, vec![0, 17, 18, 1, 0, 17, 2, 1, 0]);
        assert!(bucket_grid(0, 32, 128).is_empty());
    }

    #[test]
    fn gelu_tanh_matches_closed_form() {
        let device = Default::default();
        let x = Tensor::<crate::TestBackend, 1>::from_floats([-3.0, -0.5, 0.0, 1.0, 2.5], &device);
        let got = gelu_tanh(x).into_data().to_vec::<f32>().unwrap();
        // torch.nn.functional.gelu(x, approximate="tanh")
        let want = [-0.003_637_4, -0.154_285_9, 0.0, 0.841_192, 2.484_915_7];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }
}
