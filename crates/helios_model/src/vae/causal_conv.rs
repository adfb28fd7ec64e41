//! Causal 3-D convolution and per-frame 2-D convolution of the Wan VAE, computed as im2col + one
//! matrix multiplication.
//!
//! The VAE's convolutions have few channels and large frames, where a direct convolution is slow on
//! CPU. Every convolution here gathers its kernel taps into a `[b, c * k, t * h * w]` column matrix
//! (strided slices of the padded input, concatenated) and multiplies it by the weight flattened to
//! `[c_out, c * k]`, so the work lands in the backend's matmul (a BLAS-like kernel on NdArray, a tiled
//! kernel on wgpu). Large inputs are split into bands of output rows so the column matrix stays
//! bounded ([`COLUMN_BUDGET`] elements). Only backend tensor ops are used, so this runs on every
//! backend.

use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Slice, Tensor};

use super::cache::CacheSlot;
use super::host;

/// Frames a causal convolution keeps between chunks (upstream `CACHE_T`).
pub const CACHE_T: usize = 2;

/// Largest column matrix (elements) built at once; larger convolutions run in bands of output rows.
pub const COLUMN_BUDGET: usize = 1 << 22;

/// Convolution of an already padded `[b, c, t, h, w]` input with a weight flattened to
/// `[c_out, c * kt * kh * kw]` (no padding, the given stride), plus bias. Returns `[b, c_out, t', h', w']`.
pub fn conv3d_padded<B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    kernel: [usize; 3],
    stride: [usize; 3],
) -> Tensor<B, 5> {
    let [b, c, t, h, w] = x.dims();
    let out = |n: usize, k: usize, s: usize| (n - k) / s + 1;
    let (to, ho, wo) = (
        out(t, kernel[0], stride[0]),
        out(h, kernel[1], stride[1]),
        out(w, kernel[2], stride[2]),
    );
    let taps = kernel[0] * kernel[1] * kernel[2];
    let row_cost = b * c * taps * to * wo;
    if row_cost * ho > COLUMN_BUDGET && ho > 1 {
        let rows = (COLUMN_BUDGET / row_cost.max(1)).clamp(1, ho);
        let bands: Vec<Tensor<B, 5>> = (0..ho)
            .step_by(rows)
            .map(|r0| {
                let r1 = (r0 + rows).min(ho);
                let band =
                    x.clone()
                        .narrow(3, r0 * stride[1], (r1 - 1 - r0) * stride[1] + kernel[1]);
                conv3d_band(
                    band,
                    weight.clone(),
                    bias.clone(),
                    kernel,
                    stride,
                    [to, r1 - r0, wo],
                )
            })
            .collect();
        return Tensor::cat(bands, 3);
    }
    conv3d_band(x, weight, bias, kernel, stride, [to, ho, wo])
}

fn conv3d_band<B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    kernel: [usize; 3],
    stride: [usize; 3],
    [to, ho, wo]: [usize; 3],
) -> Tensor<B, 5> {
    let [b, c, ..] = x.dims();
    let c_out = weight.dims()[0];
    let taps = kernel[0] * kernel[1] * kernel[2];
    let cols = if taps == 1 && stride == [1, 1, 1] {
        x.reshape([b, c, to * ho * wo])
    } else {
        let span = |start: usize, n: usize, s: usize| {
            Slice::with_step(
                start as isize,
                Some((start + (n - 1) * s + 1) as isize),
                s as isize,
            )
        };
        let mut parts = Vec::with_capacity(taps);
        for dt in 0..kernel[0] {
            for dh in 0..kernel[1] {
                for dw in 0..kernel[2] {
                    let tap = x.clone().slice([
                        Slice::from(0..b),
                        Slice::from(0..c),
                        span(dt, to, stride[0]),
                        span(dh, ho, stride[1]),
                        span(dw, wo, stride[2]),
                    ]);
                    parts.push(tap.unsqueeze_dim::<6>(2));
                }
            }
        }
        Tensor::cat(parts, 2).reshape([b, c * taps, to * ho * wo])
    };
    let y = weight.unsqueeze::<3>().matmul(cols) + bias.reshape([1, c_out, 1]);
    y.reshape([b, c_out, to, ho, wo])
}

/// Zero-pads `[b, c, t, h, w]`: `front` frames before (after `context`, which goes right before `x`),
/// and `hw = (top, bottom, left, right)` pixels.
fn pad_input<B: Backend>(
    x: Tensor<B, 5>,
    context: Option<Tensor<B, 5>>,
    front: usize,
    hw: [usize; 4],
) -> Tensor<B, 5> {
    let [b, c, t, h, w] = x.dims();
    let n = context.as_ref().map_or(0, |ctx| ctx.dims()[2]);
    if front == 0 && hw == [0; 4] && n == 0 {
        return x;
    }
    let (tp, hp, wp) = (front + n + t, h + hw[0] + hw[1], w + hw[2] + hw[3]);
    let (hs, ws) = (hw[0]..hw[0] + h, hw[2]..hw[2] + w);
    let mut padded = Tensor::<B, 5>::zeros([b, c, tp, hp, wp], &x.device());
    if let Some(ctx) = context {
        padded = padded.slice_assign([0..b, 0..c, front..front + n, hs.clone(), ws.clone()], ctx);
    }
    padded.slice_assign([0..b, 0..c, front + n..tp, hs, ws], x)
}

/// Port of diffusers `WanCausalConv3d` (autoencoder_kl_wan.py, diffusers 0.42.1).
///
/// A `Conv3d` whose temporal padding `2 * padding_t` is all in front (the output at frame `i` sees
/// input frames `<= i`); the frames cached from the previous chunk replace that many zero frames.
#[derive(Module, Debug)]
pub struct WanCausalConv3d<B: Backend> {
    /// `[c_out, c_in, kt, kh, kw]`.
    pub weight: Param<Tensor<B, 5>>,
    /// `[c_out]`.
    pub bias: Param<Tensor<B, 1>>,
    kernel: [usize; 3],
    stride: [usize; 3],
    padding: [usize; 3],
}

impl<B: Backend> WanCausalConv3d<B> {
    /// A convolution with uninitialised (lazy, zero) parameters, to be loaded from a checkpoint.
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
        device: &B::Device,
    ) -> Self {
        Self {
            weight: Initializer::Zeros.init([c_out, c_in, kernel[0], kernel[1], kernel[2]], device),
            bias: Initializer::Zeros.init([c_out], device),
            kernel,
            stride,
            padding,
        }
    }

    /// Cubic kernel `k` with padding `p` (upstream `WanCausalConv3d(c_in, c_out, k, padding=p)`).
    pub fn cubic(c_in: usize, c_out: usize, k: usize, p: usize, device: &B::Device) -> Self {
        Self::new(c_in, c_out, [k; 3], [1; 3], [p; 3], device)
    }

    /// Frames of zero padding in front of the input when nothing is cached.
    pub fn time_padding(&self) -> usize {
        2 * self.padding[0]
    }

    /// Convolves `x` `[b, c_in, t, h, w]`; `context` (the cached previous frames) replaces as many of
    /// the front zero frames (upstream `forward(x, cache_x)`).
    pub fn forward_with_context(
        &self,
        x: Tensor<B, 5>,
        context: Option<Tensor<B, 5>>,
    ) -> Tensor<B, 5> {
        let pt = self.time_padding();
        let context = context.filter(|_| pt > 0).map(|ctx| {
            let n = ctx.dims()[2];
            if n > pt {
                ctx.narrow(2, n - pt, pt)
            } else {
                ctx
            }
        });
        let n = context.as_ref().map_or(0, |ctx| ctx.dims()[2]);
        let (ph, pw) = (self.padding[1], self.padding[2]);
        if host::applies(&x) {
            return host::conv(
                x,
                context,
                pt - n,
                [ph, ph, pw, pw],
                false,
                self.weight.val(),
                self.bias.val(),
                self.stride,
            );
        }
        let [c_out, c_in, kt, kh, kw] = self.weight.dims();
        if n == 0 && x.dims()[2] == 1 && pt + 1 == kt && self.stride[0] == 1 && kt > 1 {
            // One frame after zero frames (an image, or a video's first frame): only the last
            // temporal tap sees data, so the others are skipped (a third of the work for a 3-tap
            // kernel, forward and backward).
            let weight = self.weight.val().narrow(2, kt - 1, 1);
            let padded = pad_input(x, None, 0, [ph, ph, pw, pw]);
            return conv3d_padded(
                padded,
                weight.reshape([c_out, c_in * kh * kw]),
                self.bias.val(),
                [1, self.kernel[1], self.kernel[2]],
                self.stride,
            );
        }
        let padded = pad_input(x, context, pt - n, [ph, ph, pw, pw]);
        let weight = self.weight.val().reshape([c_out, c_in * kt * kh * kw]);
        conv3d_padded(padded, weight, self.bias.val(), self.kernel, self.stride)
    }

    /// Convolves `x` without cached context (zero frames in front).
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.forward_with_context(x, None)
    }

    /// Convolves `x` with the frames cached in `slot` and stores the last [`CACHE_T`] input frames
    /// (the cached ones included when `x` is shorter) for the next chunk.
    pub fn forward_cached(&self, x: Tensor<B, 5>, slot: &mut CacheSlot<B>) -> Tensor<B, 5> {
        let context = match slot {
            CacheSlot::Frames(c) => Some(c.clone()),
            CacheSlot::Fresh | CacheSlot::Skipped => None,
        };
        *slot = CacheSlot::Frames(last_frames(context.clone(), x.clone(), CACHE_T));
        self.forward_with_context(x, context)
    }
}

/// The last `n` frames of `context ++ x` (upstream's `cache_x` bookkeeping).
pub(crate) fn last_frames<B: Backend>(
    context: Option<Tensor<B, 5>>,
    x: Tensor<B, 5>,
    n: usize,
) -> Tensor<B, 5> {
    let t = x.dims()[2];
    if t >= n {
        return x.narrow(2, t - n, n);
    }
    match context {
        Some(ctx) => {
            let joined = Tensor::cat(vec![ctx, x], 2);
            let total = joined.dims()[2];
            joined.narrow(2, total - n.min(total), n.min(total))
        }
        None => x,
    }
}

/// Port of torch `nn.Conv2d` as the Wan VAE uses it: applied to every frame of `[b, c, t, h, w]`.
#[derive(Module, Debug)]
pub struct FrameConv2d<B: Backend> {
    /// `[c_out, c_in, kh, kw]`.
    pub weight: Param<Tensor<B, 4>>,
    /// `[c_out]`.
    pub bias: Param<Tensor<B, 1>>,
    stride: usize,
    /// `(top, bottom, left, right)` zero padding.
    padding: [usize; 4],
}

impl<B: Backend> FrameConv2d<B> {
    /// A `k x k` convolution with uninitialised (lazy, zero) parameters.
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: [usize; 4],
        device: &B::Device,
    ) -> Self {
        Self {
            weight: Initializer::Zeros.init([c_out, c_in, k, k], device),
            bias: Initializer::Zeros.init([c_out], device),
            stride,
            padding,
        }
    }

    /// Convolves every frame of `x` `[b, c_in, t, h, w]`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.forward_impl(x, false)
    }

    /// Convolves every frame of `x` up-sampled 2x (nearest; upstream `nearest-exact`, the same at
    /// scale 2) in `h` and `w`.
    pub fn forward_upsampled(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.forward_impl(x, true)
    }

    fn forward_impl(&self, x: Tensor<B, 5>, upsample: bool) -> Tensor<B, 5> {
        let [c_out, c_in, kh, kw] = self.weight.dims();
        if host::applies(&x) {
            let weight = self.weight.val().reshape([c_out, c_in, 1, kh, kw]);
            return host::conv(
                x,
                None,
                0,
                self.padding,
                upsample,
                weight,
                self.bias.val(),
                [1, self.stride, self.stride],
            );
        }
        let x = if upsample { upsample_nearest2x(x) } else { x };
        let padded = pad_input(x, None, 0, self.padding);
        let weight = self.weight.val().reshape([c_out, c_in * kh * kw]);
        conv3d_padded(
            padded,
            weight,
            self.bias.val(),
            [1, kh, kw],
            [1, self.stride, self.stride],
        )
    }
}

/// Nearest-neighbour 2x up-sampling of `h` and `w`.
pub(crate) fn upsample_nearest2x<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 5> {
    let [b, c, t, h, w] = x.dims();
    x.reshape([b * c * t, h, 1, w, 1])
        .expand([b * c * t, h, 2, w, 2])
        .reshape([b, c, t, 2 * h, 2 * w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::module::conv3d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Distribution, Tolerance};

    type B = TestBackend;

    #[test]
    fn im2col_matches_burn_conv3d_with_stride_and_bands() {
        let device = Default::default();
        let x = Tensor::<B, 5>::random([2, 3, 5, 9, 7], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<B, 5>::random([4, 3, 3, 3, 2], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<B, 1>::random([4], Distribution::Normal(0.0, 1.0), &device);
        for stride in [[1, 1, 1], [2, 2, 1], [1, 2, 2]] {
            let expected = conv3d(
                x.clone(),
                w.clone(),
                Some(bias.clone()),
                ConvOptions::new(stride, [0, 0, 0], [1, 1, 1], 1),
            );
            let got = conv3d_padded(
                x.clone(),
                w.clone().reshape([4, 3 * 18]),
                bias.clone(),
                [3, 3, 2],
                stride,
            );
            got.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
        }
    }

    #[test]
    fn banded_convolution_equals_one_pass() {
        let device = Default::default();
        // 1 * 8 * 27 * 2 * 600 * 600 elements is far above the budget: many bands.
        let x = Tensor::<B, 5>::random([1, 8, 4, 602, 34], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<B, 5>::random([2, 8, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<B, 1>::zeros([2], &device);
        let expected = conv3d(
            x.clone(),
            w.clone(),
            Some(bias.clone()),
            ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1),
        );
        let got = conv3d_padded(x, w.reshape([2, 8 * 27]), bias, [3, 3, 3], [1, 1, 1]);
        got.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
    }

    #[test]
    fn chunked_causal_conv_equals_one_pass() {
        let device = Default::default();
        let mut conv = WanCausalConv3d::<B>::cubic(2, 3, 3, 1, &device);
        conv.weight = Param::from_tensor(Tensor::random(
            [3, 2, 3, 3, 3],
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
        conv.bias =
            Param::from_tensor(Tensor::random([3], Distribution::Normal(0.0, 1.0), &device));
        let x = Tensor::<B, 5>::random([1, 2, 7, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        let whole = conv.forward(x.clone());
        let mut slot = CacheSlot::Fresh;
        let mut parts = Vec::new();
        for (start, len) in [(0, 1), (1, 1), (2, 4), (6, 1)] {
            parts.push(conv.forward_cached(x.clone().narrow(2, start, len), &mut slot));
        }
        Tensor::cat(parts, 2)
            .into_data()
            .assert_approx_eq::<f32>(&whole.into_data(), Tolerance::absolute(1e-5));
    }
}
