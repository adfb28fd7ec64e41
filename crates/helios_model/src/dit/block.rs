//! One Helios transformer block with per-token (history vs current) modulation.
//!
//! Port of diffusers `HeliosTransformerBlock` (transformer_helios.py, diffusers 0.42.1). Upstream
//! expands the six modulation vectors to every token (`[b, tokens, 6, dim]`); all history tokens
//! share the t = 0 values and all current tokens share the values of t, so this port applies them
//! per segment with broadcasting — the same arithmetic per element without the large tensor.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::attention::{HeliosAttention, Rotary};
use super::precision::Precision;
use crate::ops::gelu_tanh;
use crate::weights::lazy_zeros;

/// LayerNorm without affine parameters over the last axis (`FP32LayerNorm(elementwise_affine=False)`).
pub fn layer_norm<B: Backend, const D: usize>(x: Tensor<B, D>, eps: f64) -> Tensor<B, D> {
    let (var, mean) = x.clone().var_mean_bias(D - 1);
    (x - mean).div(var.add_scalar(eps).sqrt())
}

/// diffusers `FeedForward(activation_fn="gelu-approximate")`.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// `net.0.proj` in the checkpoint.
    pub proj_in: Linear<B>,
    /// `net.2` in the checkpoint.
    pub proj_out: Linear<B>,
}

impl<B: Backend> FeedForward<B> {
    fn forward(&self, x: Tensor<B, 3>, p: Precision) -> Tensor<B, 3> {
        p.c(self
            .proj_out
            .forward(p.c(gelu_tanh(p.c(self.proj_in.forward(x))))))
    }
}

/// The six modulation vectors of one token segment, each `[b, 1, dim]`.
#[derive(Debug, Clone)]
pub struct Modulation<B: Backend> {
    shift: Tensor<B, 3>,
    scale: Tensor<B, 3>,
    gate: Tensor<B, 3>,
    c_shift: Tensor<B, 3>,
    c_scale: Tensor<B, 3>,
    c_gate: Tensor<B, 3>,
}

/// A run of consecutive tokens sharing one timestep's modulation.
#[derive(Debug, Clone)]
pub struct Segment<B: Backend> {
    /// Number of tokens.
    pub tokens: usize,
    /// `timestep_proj` of the segment's timestep, `[b, 6 * dim]`.
    pub proj: Tensor<B, 2>,
}

/// Port of diffusers `HeliosTransformerBlock`.
#[derive(Module, Debug)]
pub struct HeliosTransformerBlock<B: Backend> {
    /// Self-attention over history + current tokens.
    pub attn1: HeliosAttention<B>,
    /// Cross-attention to the prompt.
    pub attn2: HeliosAttention<B>,
    /// Affine LayerNorm before cross-attention (`cross_attn_norm`).
    pub norm2: Option<LayerNorm<B>>,
    /// Feed-forward network.
    pub ffn: FeedForward<B>,
    /// `[1, 6, dim]` learned modulation offsets.
    pub scale_shift_table: Param<Tensor<B, 3>>,
    #[module(skip)]
    eps: f64,
    #[module(skip)]
    guidance_cross_attn: bool,
}

/// Hyper-parameters of a block.
#[derive(Debug, Clone, Copy)]
pub struct BlockSettings {
    /// Model width.
    pub dim: usize,
    /// FFN width.
    pub ffn_dim: usize,
    /// Heads.
    pub heads: usize,
    /// Norm epsilon.
    pub eps: f64,
    /// LayerNorm with affine before cross-attention.
    pub cross_attn_norm: bool,
    /// Cross-attention for current tokens only.
    pub guidance_cross_attn: bool,
    /// History key scale width (`Some(1)` scalar, `Some(heads)` per head) when amplified.
    pub history_scale: Option<usize>,
}

impl<B: Backend> HeliosTransformerBlock<B> {
    /// Builds the (uninitialised) block.
    pub fn new(s: BlockSettings, device: &B::Device) -> Self {
        Self {
            attn1: HeliosAttention::new(s.dim, s.heads, s.eps, s.history_scale, device),
            attn2: HeliosAttention::new(s.dim, s.heads, s.eps, None, device),
            norm2: s
                .cross_attn_norm
                .then(|| LayerNormConfig::new(s.dim).with_epsilon(s.eps).init(device)),
            ffn: FeedForward {
                proj_in: LinearConfig::new(s.dim, s.ffn_dim).init(device),
                proj_out: LinearConfig::new(s.ffn_dim, s.dim).init(device),
            },
            scale_shift_table: lazy_zeros([1, 6, s.dim], device),
            eps: s.eps,
            guidance_cross_attn: s.guidance_cross_attn,
        }
    }

    fn modulation(&self, proj: &Tensor<B, 2>, p: Precision) -> Modulation<B> {
        let [b, six_d] = proj.dims();
        let d = six_d / 6;
        let m = self.scale_shift_table.val() + p.f(proj.clone()).reshape([b, 6, d]);
        let part = |i: usize| m.clone().narrow(1, i, 1);
        Modulation {
            shift: part(0),
            scale: part(1),
            gate: part(2),
            c_shift: part(3),
            c_scale: part(4),
            c_gate: part(5),
        }
    }

    /// Applies `f(x_segment, modulation)` to each token segment and concatenates.
    fn per_segment(
        x: Tensor<B, 3>,
        segments: &[(usize, Modulation<B>)],
        f: impl Fn(Tensor<B, 3>, &Modulation<B>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let mut parts = Vec::with_capacity(segments.len());
        let mut start = 0;
        for (n, m) in segments {
            if *n > 0 {
                parts.push(f(x.clone().narrow(1, start, *n), m));
            }
            start += n;
        }
        Tensor::cat(parts, 1)
    }

    /// `x`: `[b, tokens, dim]` = history tokens then `current` tokens; `segments` cover all tokens
    /// in order; `text`: projected prompt `[b, l, dim]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        text: Tensor<B, 3>,
        segments: &[Segment<B>],
        rotary: &Rotary<B>,
        current: usize,
        p: Precision,
    ) -> Tensor<B, 3> {
        let eps = self.eps;
        let mods: Vec<(usize, Modulation<B>)> = segments
            .iter()
            .map(|s| (s.tokens, self.modulation(&s.proj, p)))
            .collect();
        let total = x.dims()[1];
        let history = total - current;

        // 1. Self-attention.
        let normed = layer_norm(p.f(x.clone()), eps);
        let modulated = Self::per_segment(normed, &mods, |n, m| {
            n * m.scale.clone().add_scalar(1.0) + m.shift.clone()
        });
        let attn = self
            .attn1
            .forward(p.c(modulated), None, Some(rotary), history, p);
        let gated = Self::per_segment(p.f(attn), &mods, |a, m| a * m.gate.clone());
        let x = p.c(p.f(x) + gated);

        // 2. Cross-attention (current tokens only with guidance_cross_attn).
        let cross = |h: Tensor<B, 3>| {
            let n = match &self.norm2 {
                Some(norm) => p.c(norm.forward(p.f(h.clone()))),
                None => h.clone(),
            };
            p.c(h + self.attn2.forward(n, Some(text.clone()), None, 0, p))
        };
        let x = if self.guidance_cross_attn && history > 0 {
            let hist = x.clone().narrow(1, 0, history);
            let cur = cross(x.narrow(1, history, current));
            Tensor::cat(vec![hist, cur], 1)
        } else {
            cross(x)
        };

        // 3. Feed-forward.
        let normed = layer_norm(p.f(x.clone()), eps);
        let modulated = Self::per_segment(normed, &mods, |n, m| {
            n * m.c_scale.clone().add_scalar(1.0) + m.c_shift.clone()
        });
        let ff = self.ffn.forward(p.c(modulated), p);
        p.c(p.f(x) + Self::per_segment(p.f(ff), &mods, |f, m| f * m.c_gate.clone()))
    }
}
