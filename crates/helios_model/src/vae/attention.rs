//! The Wan VAE's per-frame self-attention and the middle block that holds it.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;

use super::cache::CausalConvCache;
use super::causal_conv::FrameConv2d;
use super::resblock::{WanResidualBlock, WanRmsNorm};

/// Port of diffusers `WanAttentionBlock` (autoencoder_kl_wan.py, diffusers 0.42.1).
///
/// Single-head self-attention over the `h * w` pixels of each frame separately (no temporal mixing,
/// so it needs no cache), with a residual connection.
#[derive(Module, Debug)]
pub struct WanAttentionBlock<B: Backend> {
    /// Per-frame RMS norm (`gamma` stored `[c, 1, 1]`).
    pub norm: WanRmsNorm<B, 3>,
    /// 1x1 projection to query, key and value.
    pub to_qkv: FrameConv2d<B>,
    /// 1x1 output projection.
    pub proj: FrameConv2d<B>,
}

impl<B: Backend> WanAttentionBlock<B> {
    /// A block over `dim` channels.
    pub fn new(dim: usize, device: &B::Device) -> Self {
        Self {
            norm: WanRmsNorm::new(dim, device),
            to_qkv: FrameConv2d::new(dim, dim * 3, 1, 1, [0; 4], device),
            proj: FrameConv2d::new(dim, dim, 1, 1, [0; 4], device),
        }
    }

    /// Attends within each frame of `x` `[b, c, t, h, w]`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, c, t, h, w] = x.dims();
        let qkv = self.to_qkv.forward(self.norm.forward(x.clone()));
        // [b, 3c, t, h, w] -> [b * t, h * w, 3c]
        let qkv = qkv.permute([0, 2, 3, 4, 1]).reshape([b * t, h * w, 3 * c]);
        let q = qkv.clone().narrow(2, 0, c);
        let k = qkv.clone().narrow(2, c, c);
        let v = qkv.narrow(2, 2 * c, c);
        let scores = q.matmul(k.transpose()).mul_scalar(1.0 / (c as f64).sqrt());
        let attended = softmax(scores, 2).matmul(v);
        // [b * t, h * w, c] -> [b, c, t, h, w]
        let attended = attended.reshape([b, t, h, w, c]).permute([0, 4, 1, 2, 3]);
        self.proj.forward(attended) + x
    }
}

/// Port of diffusers `WanMidBlock` (autoencoder_kl_wan.py, diffusers 0.42.1): residual block, then
/// `attention → residual block` pairs (one pair in the VAE).
#[derive(Module, Debug)]
pub struct WanMidBlock<B: Backend> {
    /// The attention blocks.
    pub attentions: Vec<WanAttentionBlock<B>>,
    /// `attentions.len() + 1` residual blocks.
    pub resnets: Vec<WanResidualBlock<B>>,
}

impl<B: Backend> WanMidBlock<B> {
    /// A middle block over `dim` channels with `num_layers` attention layers.
    pub fn new(dim: usize, num_layers: usize, device: &B::Device) -> Self {
        Self {
            attentions: (0..num_layers)
                .map(|_| WanAttentionBlock::new(dim, device))
                .collect(),
            resnets: (0..=num_layers)
                .map(|_| WanResidualBlock::new(dim, dim, device))
                .collect(),
        }
    }

    /// Runs one temporal chunk.
    pub fn forward(&self, x: Tensor<B, 5>, cache: &mut CausalConvCache<B>) -> Tensor<B, 5> {
        let mut resnets = self.resnets.iter();
        let mut x = match resnets.next() {
            Some(first) => first.forward(x, cache),
            None => x,
        };
        for (attn, resnet) in self.attentions.iter().zip(resnets) {
            x = resnet.forward(attn.forward(x), cache);
        }
        x
    }
}
