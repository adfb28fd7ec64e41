//! Spatial (and temporal) up- and down-sampling of the Wan VAE.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::cache::{CacheSlot, CausalConvCache};
use super::causal_conv::{FrameConv2d, WanCausalConv3d, last_frames};
use super::host;

/// Which resampling a [`WanResample`] does (upstream `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleMode {
    /// Nearest 2x up-sampling of each frame, then a 3x3 convolution halving the channels.
    Upsample2d,
    /// [`ResampleMode::Upsample2d`] after a causal time convolution that doubles the frames (except on
    /// the first chunk).
    Upsample3d,
    /// Right/bottom zero pad, then a stride-2 3x3 convolution of each frame.
    Downsample2d,
    /// [`ResampleMode::Downsample2d`], then a stride-2 time convolution over the cached last frame and
    /// the new ones (except on the first chunk).
    Downsample3d,
}

/// Port of diffusers `WanResample` (autoencoder_kl_wan.py, diffusers 0.42.1).
///
/// Upstream's `resample` is an `nn.Sequential` whose convolution is entry `1`; the key table maps
/// `resample.*` onto `resample.1.*`.
#[derive(Module, Debug)]
pub struct WanResample<B: Backend> {
    /// The per-frame convolution.
    pub resample: FrameConv2d<B>,
    /// The temporal convolution of the 3-D modes.
    pub time_conv: Option<WanCausalConv3d<B>>,
    mode: ResampleMode,
}

impl<B: Backend> WanResample<B> {
    /// A resampler over `dim` channels; up-samplers output `upsample_out_dim` channels.
    pub fn new(
        dim: usize,
        mode: ResampleMode,
        upsample_out_dim: usize,
        device: &B::Device,
    ) -> Self {
        let (resample, time_conv) = match mode {
            ResampleMode::Upsample2d => (
                FrameConv2d::new(dim, upsample_out_dim, 3, 1, [1; 4], device),
                None,
            ),
            ResampleMode::Upsample3d => (
                FrameConv2d::new(dim, upsample_out_dim, 3, 1, [1; 4], device),
                Some(WanCausalConv3d::new(
                    dim,
                    dim * 2,
                    [3, 1, 1],
                    [1, 1, 1],
                    [1, 0, 0],
                    device,
                )),
            ),
            ResampleMode::Downsample2d => {
                (FrameConv2d::new(dim, dim, 3, 2, [0, 1, 0, 1], device), None)
            }
            ResampleMode::Downsample3d => (
                FrameConv2d::new(dim, dim, 3, 2, [0, 1, 0, 1], device),
                Some(WanCausalConv3d::new(
                    dim,
                    dim,
                    [3, 1, 1],
                    [2, 1, 1],
                    [0, 0, 0],
                    device,
                )),
            ),
        };
        Self {
            resample,
            time_conv,
            mode,
        }
    }

    /// The mode.
    pub fn mode(&self) -> ResampleMode {
        self.mode
    }

    /// Runs one temporal chunk `[b, c, t, h, w]`.
    pub fn forward(&self, x: Tensor<B, 5>, cache: &mut CausalConvCache<B>) -> Tensor<B, 5> {
        let mut x = x;
        if let (ResampleMode::Upsample3d, Some(time_conv)) = (self.mode, &self.time_conv) {
            let slot = cache.next_slot();
            if matches!(slot, CacheSlot::Fresh) {
                // First chunk: one frame stays one frame.
                *slot = CacheSlot::Skipped;
            } else {
                let [b, c, t, h, w] = x.dims();
                let y = time_conv.forward_cached(x, slot);
                // [b, 2c, t, ..] = (half 0, half 1) per frame -> interleaved [b, c, 2t, ..]
                x = if host::applies(&y) {
                    host::interleave_halves(y)
                } else {
                    y.reshape([b, 2, c, t, h, w])
                        .permute([0, 2, 3, 1, 4, 5])
                        .reshape([b, c, 2 * t, h, w])
                };
            }
        }
        x = match self.mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => {
                self.resample.forward_upsampled(x)
            }
            ResampleMode::Downsample2d | ResampleMode::Downsample3d => self.resample.forward(x),
        };
        if let (ResampleMode::Downsample3d, Some(time_conv)) = (self.mode, &self.time_conv) {
            let slot = cache.next_slot();
            match slot {
                CacheSlot::Frames(prev) => {
                    let next = last_frames(None, x.clone(), 1);
                    x = time_conv.forward(Tensor::cat(vec![prev.clone(), x], 2));
                    *slot = CacheSlot::Frames(next);
                }
                CacheSlot::Fresh | CacheSlot::Skipped => {
                    *slot = CacheSlot::Frames(last_frames(None, x.clone(), 1))
                }
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use crate::vae::causal_conv::upsample_nearest2x;
    use burn::tensor::TensorData;

    #[test]
    fn nearest_upsampling_repeats_pixels() {
        let device = Default::default();
        let x = Tensor::<TestBackend, 5>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 1, 2, 2]),
            &device,
        );
        let y = upsample_nearest2x(x)
            .into_data()
            .to_vec::<f32>()
            .unwrap_or_default();
        let expected = [
            1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.,
        ];
        assert_eq!(y, expected);
    }
}
