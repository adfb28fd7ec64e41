//! The Wan VAE's RMS norm and residual block.

use burn::module::{Initializer, Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;

use super::cache::CausalConvCache;
use super::causal_conv::WanCausalConv3d;
use super::host;

/// Port of diffusers `WanRMS_norm` (autoencoder_kl_wan.py, diffusers 0.42.1).
///
/// `x / max(||x||_2, 1e-12) * sqrt(c) * gamma` over the channel axis of `[b, c, t, h, w]` (upstream
/// `F.normalize(x, dim=1)`; no bias in the VAE). `D` is the rank of the stored `gamma`: 4
/// (`[c, 1, 1, 1]`, video) or 3 (`[c, 1, 1]`, the attention's per-frame norm). The weight loader maps
/// a norm's `gamma` to `weight`; the VAE key table maps it back to the checkpoint's `gamma`.
#[derive(Module, Debug)]
pub struct WanRmsNorm<B: Backend, const D: usize> {
    /// Per-channel scale, `[c, 1, ...]`.
    pub gamma: Param<Tensor<B, D>>,
}

impl<B: Backend, const D: usize> WanRmsNorm<B, D> {
    /// A norm over `dim` channels (gamma lazily zero until loaded).
    pub fn new(dim: usize, device: &B::Device) -> Self {
        let mut shape = [1; D];
        shape[0] = dim;
        Self {
            gamma: Initializer::Zeros.init(shape, device),
        }
    }

    /// Normalises `x` `[b, c, t, h, w]` over `c`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.forward_act(x, false)
    }

    /// `silu(self.forward(x))`, fused on the host path.
    pub fn forward_silu(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.forward_act(x, true)
    }

    fn forward_act(&self, x: Tensor<B, 5>, act: bool) -> Tensor<B, 5> {
        let c = self.gamma.dims()[0];
        if host::applies(&x) && x.dims()[1] == c {
            let dims = x.dims();
            let device = x.device();
            let rest = dims[2] * dims[3] * dims[4];
            let out = host::rms_norm(
                &host::values(x),
                dims[0],
                c,
                rest,
                &host::values(self.gamma.val()),
                act,
            );
            return host::tensor(out, dims, &device);
        }
        let y = self.forward_tensor_ops(x);
        if act { silu(y) } else { y }
    }

    fn forward_tensor_ops(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let c = self.gamma.dims()[0];
        let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        let scale = (c as f64).sqrt();
        (x / norm).mul_scalar(scale) * self.gamma.val().reshape([1, c, 1, 1, 1])
    }
}

/// Port of diffusers `WanResidualBlock` (autoencoder_kl_wan.py, diffusers 0.42.1).
///
/// `conv_shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))` with both causal convolutions
/// cached (dropout is inference-time identity).
#[derive(Module, Debug)]
pub struct WanResidualBlock<B: Backend> {
    /// Norm before `conv1`.
    pub norm1: WanRmsNorm<B, 4>,
    /// First 3x3x3 causal convolution.
    pub conv1: WanCausalConv3d<B>,
    /// Norm before `conv2`.
    pub norm2: WanRmsNorm<B, 4>,
    /// Second 3x3x3 causal convolution.
    pub conv2: WanCausalConv3d<B>,
    /// 1x1x1 projection of the shortcut when the channel count changes.
    pub conv_shortcut: Option<WanCausalConv3d<B>>,
}

impl<B: Backend> WanResidualBlock<B> {
    /// A block from `in_dim` to `out_dim` channels.
    pub fn new(in_dim: usize, out_dim: usize, device: &B::Device) -> Self {
        Self {
            norm1: WanRmsNorm::new(in_dim, device),
            conv1: WanCausalConv3d::cubic(in_dim, out_dim, 3, 1, device),
            norm2: WanRmsNorm::new(out_dim, device),
            conv2: WanCausalConv3d::cubic(out_dim, out_dim, 3, 1, device),
            conv_shortcut: (in_dim != out_dim)
                .then(|| WanCausalConv3d::cubic(in_dim, out_dim, 1, 0, device)),
        }
    }

    /// Runs one temporal chunk `[b, c_in, t, h, w]` → `[b, c_out, t, h, w]`.
    pub fn forward(&self, x: Tensor<B, 5>, cache: &mut CausalConvCache<B>) -> Tensor<B, 5> {
        let h = match &self.conv_shortcut {
            Some(conv) => conv.forward(x.clone()),
            None => x.clone(),
        };
        let x = self.norm1.forward_silu(x);
        let x = self.conv1.forward_cached(x, cache.next_slot());
        let x = self.norm2.forward_silu(x);
        let x = self.conv2.forward_cached(x, cache.next_slot());
        x + h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn rms_norm_normalises_over_channels() {
        let device = Default::default();
        let mut norm = WanRmsNorm::<TestBackend, 4>::new(2, &device);
        norm.gamma = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0], [2, 1, 1, 1]),
            &device,
        ));
        let x = Tensor::<TestBackend, 5>::from_data(
            TensorData::new(vec![3.0f32, 0.0, 4.0, 0.0], [1, 2, 1, 1, 2]),
            &device,
        );
        // Pixel 0: (3, 4) / 5 * sqrt(2) * (1, 2); pixel 1: zeros stay zeros (eps).
        let s = 2f32.sqrt();
        let expected = TensorData::new(vec![0.6 * s, 0.0, 1.6 * s, 0.0], [1, 2, 1, 1, 2]);
        norm.forward(x)
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
    }
}
