//! Self- and cross-attention of the Helios DiT.
//!
//! Port of diffusers `HeliosAttention` + `HeliosAttnProcessor` (transformer_helios.py, diffusers
//! 0.42.1): q/k/v projections, RMSNorm across all heads on q and k, interleaved-pair RoPE on the
//! self-attention, optional learned amplification of the history keys (applied to the keys before
//! the attention), softmax attention with scale `1/sqrt(head_dim)` through burn's fused op.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::precision::Precision;
use crate::weights::lazy_zeros;

/// Rotary embedding ready to apply: `[1, tokens, 1, head_dim]` cos and sin.
#[derive(Debug, Clone)]
pub struct Rotary<B: Backend> {
    /// Cosines.
    pub cos: Tensor<B, 4>,
    /// Sines.
    pub sin: Tensor<B, 4>,
}

impl<B: Backend> Rotary<B> {
    /// Splits a `[1, tokens, 2 * head_dim]` table into cos and sin.
    pub fn from_table(table: Tensor<B, 3>) -> Self {
        let [b, n, c] = table.dims();
        let cos = table.clone().narrow(2, 0, c / 2).reshape([b, n, 1, c / 2]);
        let sin = table.narrow(2, c / 2, c / 2).reshape([b, n, 1, c / 2]);
        Self { cos, sin }
    }

    /// `out[2i] = x[2i] cos - x[2i+1] sin`, `out[2i+1] = x[2i] sin + x[2i+1] cos`;
    /// `x` is `[b, tokens, heads, head_dim]`.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, n, h, d] = x.dims();
        let pairs: Tensor<B, 5> = x.clone().reshape([b, n, h, d / 2, 2]);
        let x1 = pairs.clone().narrow(4, 0, 1);
        let x2 = pairs.narrow(4, 1, 1);
        let rotated: Tensor<B, 4> = Tensor::cat(vec![x2.neg(), x1], 4).reshape([b, n, h, d]);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

/// Port of diffusers `HeliosAttention` (fused projections are not used).
#[derive(Module, Debug)]
pub struct HeliosAttention<B: Backend> {
    /// Query projection.
    pub to_q: Linear<B>,
    /// Key projection.
    pub to_k: Linear<B>,
    /// Value projection.
    pub to_v: Linear<B>,
    /// Output projection (`to_out.0` in the checkpoint).
    pub to_out: Linear<B>,
    /// RMSNorm of the queries across heads.
    pub norm_q: RmsNorm<B>,
    /// RMSNorm of the keys across heads.
    pub norm_k: RmsNorm<B>,
    /// Learned history key scale (`is_amplify_history`), `[heads]` or `[1]`.
    pub history_key_scale: Option<Param<Tensor<B, 1>>>,
    #[module(skip)]
    heads: usize,
}

/// Largest history key amplification (`max_scale` upstream).
const MAX_HISTORY_SCALE: f64 = 10.0;

impl<B: Backend> HeliosAttention<B> {
    /// Builds the (uninitialised) attention; `history_scale` is `Some(n)` (1 or heads) for an
    /// amplified self-attention.
    pub fn new(
        dim: usize,
        heads: usize,
        eps: f64,
        history_scale: Option<usize>,
        device: &B::Device,
    ) -> Self {
        let lin = || LinearConfig::new(dim, dim).init(device);
        let norm = || RmsNormConfig::new(dim).with_epsilon(eps).init(device);
        Self {
            to_q: lin(),
            to_k: lin(),
            to_v: lin(),
            to_out: lin(),
            norm_q: norm(),
            norm_k: norm(),
            history_key_scale: history_scale.map(|n| lazy_zeros([n], device)),
            heads,
        }
    }

    fn split_heads(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let [b, n, d] = x.dims();
        x.reshape([b, n, self.heads, d / self.heads])
    }

    /// Attention of `x` `[b, n, dim]` over `context` (self-attention when `None`). `rotary` applies
    /// to queries and keys; `history_tokens` leading tokens get their keys amplified when the
    /// module has a history key scale.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        context: Option<Tensor<B, 3>>,
        rotary: Option<&Rotary<B>>,
        history_tokens: usize,
        p: Precision,
    ) -> Tensor<B, 3> {
        let kv = context.unwrap_or_else(|| x.clone());
        let q = self.split_heads(p.c(self.norm_q.forward(p.c(self.to_q.forward(x)))));
        let mut k = self.split_heads(p.c(self.norm_k.forward(p.c(self.to_k.forward(kv.clone())))));
        let v = self.split_heads(p.c(self.to_v.forward(kv)));
        // RoPE tables are float32: the rotation runs in f32 and is stored back in the compute dtype.
        let q = match rotary {
            Some(r) => {
                k = p.c(r.apply(p.f(k)));
                p.c(r.apply(p.f(q)))
            }
            None => q,
        };
        if let Some(scale) = &self.history_key_scale
            && history_tokens > 0
        {
            let n = k.dims()[1];
            let s = sigmoid(scale.val())
                .mul_scalar(MAX_HISTORY_SCALE - 1.0)
                .add_scalar(1.0);
            let s = s.clone().reshape([1, 1, s.dims()[0], 1]);
            let hist = p.c(p.f(k.clone().narrow(1, 0, history_tokens)) * s);
            k = Tensor::cat(
                vec![hist, k.narrow(1, history_tokens, n - history_tokens)],
                1,
            );
        }
        let [b, n, h, d] = q.dims();
        // [b, h, n, d]
        let q = q.swap_dims(1, 2);
        let k = k.swap_dims(1, 2);
        let v = v.swap_dims(1, 2);
        let out = p.c(fused_attention(q, k, v, p.flash_attention()));
        p.c(self
            .to_out
            .forward(out.swap_dims(1, 2).reshape([b, n, h * d])))
    }
}

/// Queries are padded to a multiple of this many tokens for the flash kernels: cubecl-attention's
/// `blackbox_accelerated` needs `seq_q` to be a multiple of its stage, the instruction's `m` (16,
/// or 32 when `seq_q >= 4 seq_kv` as in the cross-attention) times 2, 4 or 8 planes.
pub const FLASH_QUERY_MULTIPLE: usize = 256;

/// `softmax(q kᵀ / sqrt(d)) v` for `[b, h, n, d]` tensors through burn's fused attention op.
///
/// With `flash`, the scale is left to the op (its default is `1/sqrt(d)`; an explicit scale, a
/// bias or a softcap send cubecl to its naive kernel) and the queries are zero-padded to a
/// multiple of [`FLASH_QUERY_MULTIPLE`] when needed (padding rows are dropped from the output), so
/// cubecl's autotune can pick a flash kernel: no `[n, n]` score tensor per head. Without `flash`,
/// the scale is given explicitly: every backend runs the exact composition
/// `softmax(q kᵀ · scale) v` (cubecl's naive kernel, NdArray's own), with no padding.
pub fn fused_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    flash: bool,
) -> Tensor<B, 4> {
    let [b, h, n, d] = q.dims();
    if !flash {
        let options = AttentionModuleOptions {
            scale: Some(1.0 / (d as f64).sqrt()),
            ..Default::default()
        };
        return attention(q, k, v, None, None, options);
    }
    let padded = n.div_ceil(FLASH_QUERY_MULTIPLE) * FLASH_QUERY_MULTIPLE;
    let q = if padded > n {
        let zeros = Tensor::zeros([b, h, padded - n, d], (&q.device(), q.dtype()));
        Tensor::cat(vec![q, zeros], 2)
    } else {
        q
    };
    let out = attention(q, k, v, None, None, AttentionModuleOptions::default());
    if padded > n { out.narrow(2, 0, n) } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::Distribution;
    use burn::tensor::activation::softmax;

    #[test]
    fn fused_attention_matches_softmax_attention_exact_and_padded() {
        let device = Default::default();
        let normal = |n: usize| {
            Tensor::<TestBackend, 4>::random([1, 2, n, 32], Distribution::Normal(0.0, 1.0), &device)
        };
        let (q, k, v) = (normal(37), normal(21), normal(21));
        let scores = q
            .clone()
            .matmul(k.clone().transpose())
            .mul_scalar(1.0 / 32f64.sqrt());
        let reference: Vec<f32> = softmax(scores, 3)
            .matmul(v.clone())
            .into_data()
            .to_vec()
            .unwrap();
        for flash in [false, true] {
            let out = fused_attention(q.clone(), k.clone(), v.clone(), flash);
            assert_eq!(out.dims(), [1, 2, 37, 32]);
            let out: Vec<f32> = out.into_data().to_vec().unwrap();
            let worst = out
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "flash {flash}: max abs diff {worst}");
        }
    }
}
