//! The Wan VAE decoder: latents `[b, z_dim, t, h, w]` → pixels `[b, 3, 1 + 4 (t - 1), 8 h, 8 w]`.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::attention::WanMidBlock;
use super::cache::CausalConvCache;
use super::causal_conv::WanCausalConv3d;
use super::resample::{ResampleMode, WanResample};
use super::resblock::{WanResidualBlock, WanRmsNorm};

/// Port of diffusers `WanUpBlock` (autoencoder_kl_wan.py, diffusers 0.42.1): `num_res_blocks + 1`
/// residual blocks, then an optional up-sampler.
#[derive(Module, Debug)]
pub struct WanUpBlock<B: Backend> {
    /// The residual blocks.
    pub resnets: Vec<WanResidualBlock<B>>,
    /// Zero or one up-sampler (upstream keeps it in a list).
    pub upsamplers: Vec<WanResample<B>>,
}

impl<B: Backend> WanUpBlock<B> {
    /// An up block from `in_dim` to `out_dim` channels.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        num_res_blocks: usize,
        upsample: Option<ResampleMode>,
        device: &B::Device,
    ) -> Self {
        let resnets = (0..=num_res_blocks)
            .map(|i| WanResidualBlock::new(if i == 0 { in_dim } else { out_dim }, out_dim, device))
            .collect();
        let upsamplers = upsample
            .map(|mode| WanResample::new(out_dim, mode, out_dim / 2, device))
            .into_iter()
            .collect();
        Self {
            resnets,
            upsamplers,
        }
    }

    /// Runs one temporal chunk.
    pub fn forward(&self, x: Tensor<B, 5>, cache: &mut CausalConvCache<B>) -> Tensor<B, 5> {
        let mut x = x;
        for resnet in &self.resnets {
            x = resnet.forward(x, cache);
        }
        for upsampler in &self.upsamplers {
            x = upsampler.forward(x, cache);
        }
        x
    }
}

/// Port of diffusers `WanDecoder3d` (autoencoder_kl_wan.py, diffusers 0.42.1), the Wan 2.1 layout
/// (`is_residual = false`).
#[derive(Module, Debug)]
pub struct WanDecoder3d<B: Backend> {
    /// Latents to `dim * dim_mult[-1]` channels.
    pub conv_in: WanCausalConv3d<B>,
    /// Middle block (with attention).
    pub mid_block: WanMidBlock<B>,
    /// The up blocks, coarsest first.
    pub up_blocks: Vec<WanUpBlock<B>>,
    /// Output norm.
    pub norm_out: WanRmsNorm<B, 4>,
    /// To pixel channels.
    pub conv_out: WanCausalConv3d<B>,
}

impl<B: Backend> WanDecoder3d<B> {
    /// Builds the decoder (parameters lazily zero until loaded). `temperal_upsample` is the encoder's
    /// `temperal_downsample` reversed.
    pub fn new(
        dim: usize,
        z_dim: usize,
        dim_mult: &[usize],
        num_res_blocks: usize,
        temperal_upsample: &[bool],
        out_channels: usize,
        device: &B::Device,
    ) -> Self {
        let last = dim_mult.last().copied().unwrap_or(1);
        let dims: Vec<usize> = std::iter::once(last)
            .chain(dim_mult.iter().rev().copied())
            .map(|m| dim * m)
            .collect();
        let mut up_blocks = Vec::new();
        let mut out_dim = dims[0];
        for (i, pair) in dims.windows(2).enumerate() {
            // Wan 2.1: every block after the first takes the halved output of the previous up-sampler.
            let in_dim = if i > 0 { pair[0] / 2 } else { pair[0] };
            out_dim = pair[1];
            let upsample = (i + 1 != dim_mult.len()).then(|| {
                if temperal_upsample.get(i).copied().unwrap_or(false) {
                    ResampleMode::Upsample3d
                } else {
                    ResampleMode::Upsample2d
                }
            });
            up_blocks.push(WanUpBlock::new(
                in_dim,
                out_dim,
                num_res_blocks,
                upsample,
                device,
            ));
        }
        Self {
            conv_in: WanCausalConv3d::cubic(z_dim, dims[0], 3, 1, device),
            mid_block: WanMidBlock::new(dims[0], 1, device),
            up_blocks,
            norm_out: WanRmsNorm::new(out_dim, device),
            conv_out: WanCausalConv3d::cubic(out_dim, out_channels, 3, 1, device),
        }
    }

    /// Decodes one latent frame `[b, z_dim, 1, h, w]` with the caches of the call: 1 frame for the
    /// first, `2^(temporal up-samplers)` frames for every later one.
    pub fn forward(&self, x: Tensor<B, 5>, cache: &mut CausalConvCache<B>) -> Tensor<B, 5> {
        cache.begin_chunk();
        let x = self.conv_in.forward_cached(x, cache.next_slot());
        let mut x = self.mid_block.forward(x, cache);
        for block in &self.up_blocks {
            x = block.forward(x, cache);
        }
        let x = self.norm_out.forward_silu(x);
        self.conv_out.forward_cached(x, cache.next_slot())
    }
}
