//! The Wan VAE encoder: pixels `[b, 3, t, h, w]` → posterior parameters `[b, 2 * z_dim, t', h/8, w/8]`.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::attention::{WanAttentionBlock, WanMidBlock};
use super::cache::CausalConvCache;
use super::causal_conv::WanCausalConv3d;
use super::resample::{ResampleMode, WanResample};
use super::resblock::{WanResidualBlock, WanRmsNorm};

/// One entry of the encoder's flat `down_blocks` list. The variant names are not checkpoint path
/// segments; the key table removes them.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum EncoderLayer<B: Backend> {
    /// A residual block.
    Residual(WanResidualBlock<B>),
    /// An attention block (only at the scales listed in `attn_scales`).
    Attention(WanAttentionBlock<B>),
    /// A down-sampler at the end of a level.
    Resample(WanResample<B>),
}

/// Port of diffusers `WanEncoder3d` (autoencoder_kl_wan.py, diffusers 0.42.1), the Wan 2.1 layout
/// (`is_residual = false`).
#[derive(Module, Debug)]
pub struct WanEncoder3d<B: Backend> {
    /// Pixels to `dim` channels.
    pub conv_in: WanCausalConv3d<B>,
    /// Residual blocks, attention and down-samplers, level by level.
    pub down_blocks: Vec<EncoderLayer<B>>,
    /// Middle block (with attention).
    pub mid_block: WanMidBlock<B>,
    /// Output norm.
    pub norm_out: WanRmsNorm<B, 4>,
    /// To `z_channels` (mean and log-variance).
    pub conv_out: WanCausalConv3d<B>,
}

impl<B: Backend> WanEncoder3d<B> {
    /// Builds the encoder (parameters lazily zero until loaded).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        dim: usize,
        z_channels: usize,
        dim_mult: &[usize],
        num_res_blocks: usize,
        attn_scales: &[f64],
        temperal_downsample: &[bool],
        device: &B::Device,
    ) -> Self {
        let dims: Vec<usize> = std::iter::once(1)
            .chain(dim_mult.iter().copied())
            .map(|m| dim * m)
            .collect();
        let mut scale = 1.0f64;
        let mut down_blocks = Vec::new();
        let mut out_dim = dims[0];
        for (i, pair) in dims.windows(2).enumerate() {
            let mut in_dim = pair[0];
            out_dim = pair[1];
            for _ in 0..num_res_blocks {
                down_blocks.push(EncoderLayer::Residual(WanResidualBlock::new(
                    in_dim, out_dim, device,
                )));
                if attn_scales.contains(&scale) {
                    down_blocks.push(EncoderLayer::Attention(WanAttentionBlock::new(
                        out_dim, device,
                    )));
                }
                in_dim = out_dim;
            }
            if i + 1 != dim_mult.len() {
                let temporal = temperal_downsample.get(i).copied().unwrap_or(false);
                let mode = if temporal {
                    ResampleMode::Downsample3d
                } else {
                    ResampleMode::Downsample2d
                };
                down_blocks.push(EncoderLayer::Resample(WanResample::new(
                    out_dim,
                    mode,
                    out_dim / 2,
                    device,
                )));
                scale /= 2.0;
            }
        }
        Self {
            conv_in: WanCausalConv3d::cubic(in_channels, dims[0], 3, 1, device),
            down_blocks,
            mid_block: WanMidBlock::new(out_dim, 1, device),
            norm_out: WanRmsNorm::new(out_dim, device),
            conv_out: WanCausalConv3d::cubic(out_dim, z_channels, 3, 1, device),
        }
    }

    /// Encodes one temporal chunk (1 frame first, then 4 at a time) with the caches of the call.
    pub fn forward(&self, x: Tensor<B, 5>, cache: &mut CausalConvCache<B>) -> Tensor<B, 5> {
        cache.begin_chunk();
        let mut x = self.conv_in.forward_cached(x, cache.next_slot());
        for layer in &self.down_blocks {
            x = match layer {
                EncoderLayer::Residual(block) => block.forward(x, cache),
                EncoderLayer::Attention(block) => block.forward(x),
                EncoderLayer::Resample(block) => block.forward(x, cache),
            };
        }
        let x = self.mid_block.forward(x, cache);
        let x = self.norm_out.forward_silu(x);
        self.conv_out.forward_cached(x, cache.next_slot())
    }
}
