//! CPU kernels for the VAE's hot operations, used when the backend keeps tensors in host memory
//! (NdArray, f32): a direct convolution and a fused RMS norm (+ SiLU).
//!
//! The Wan VAE's convolutions have few channels over large frames. A generic convolution either
//! loops naively or inflates the input 27-fold (im2col), and both spend their time moving memory;
//! these kernels instead keep a block of output channels x pixels in SIMD registers and stream the
//! input rows through them (runtime-dispatched AVX2/FMA or AVX-512 through `pulp`, rows in parallel
//! through `rayon`). They compute the same sums as the tensor-op path in
//! [`super::causal_conv`], which every other backend runs.

use std::any::{Any, TypeId};

use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Whether `x` lives in host memory as a plain f32 NdArray tensor, so the CPU kernels apply.
///
/// Decided by the tensor primitive, not the device: a backend that wraps NdArray (burn's
/// `Autodiff<NdArray>` for training) shares its device type but must keep its own graph, so it
/// takes the tensor-op path.
pub(crate) fn applies<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<NdArrayTensor>()
        && x.dtype() == DType::F32
}

/// The values of an f32 tensor in row-major order.
///
/// NdArray's own `into_data` copies element by element when the array is shared or strided; this
/// copies whole rows instead.
pub(crate) fn values<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    let prim = x.into_primitive().tensor();
    if let Some(NdArrayTensor::F32(storage)) = (&prim as &dyn Any).downcast_ref::<NdArrayTensor>() {
        let view = storage.view();
        if let Some(slice) = view.as_slice() {
            return slice.to_vec();
        }
        let mut out = Vec::with_capacity(view.len());
        for row in view.rows() {
            match row.as_slice() {
                Some(r) => out.extend_from_slice(r),
                None => out.extend(row.iter().copied()),
            }
        }
        return out;
    }
    // Another backend or dtype: element by element, converted to f32.
    Tensor::<B, D>::from_primitive(TensorPrimitive::Float(prim))
        .into_data()
        .iter::<f32>()
        .collect()
}

/// An f32 tensor from values.
pub(crate) fn tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Output channels computed together (one register block).
const CO_BLOCK: usize = 4;

/// A convolution over a padded input `[b, c, tp, hp, wp]` (row-major values).
pub(crate) struct Conv<'a> {
    pub x: &'a [f32],
    pub x_dims: [usize; 5],
    /// `[c_out, c, kt, kh, kw]`.
    pub weight: &'a [f32],
    pub c_out: usize,
    pub bias: &'a [f32],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
}

impl Conv<'_> {
    /// `[to, ho, wo]`.
    pub fn out_dims(&self) -> [usize; 3] {
        let [_, _, t, h, w] = self.x_dims;
        let out = |n: usize, k: usize, s: usize| (n - k) / s + 1;
        [
            out(t, self.kernel[0], self.stride[0]),
            out(h, self.kernel[1], self.stride[1]),
            out(w, self.kernel[2], self.stride[2]),
        ]
    }

    /// Runs the convolution; returns `[b, c_out, to, ho, wo]` values.
    pub fn run(&self) -> Vec<f32> {
        let [b, c, ..] = self.x_dims;
        let [to, ho, wo] = self.out_dims();
        let taps = self.kernel.iter().product::<usize>();
        let blocks = self.c_out.div_ceil(CO_BLOCK);
        // Weights regrouped as [block][ci][tap][CO_BLOCK] (zero for missing channels).
        let mut packed = vec![0f32; blocks * c * taps * CO_BLOCK];
        for co in 0..self.c_out {
            for ci in 0..c {
                for tap in 0..taps {
                    packed[(((co / CO_BLOCK) * c + ci) * taps + tap) * CO_BLOCK + co % CO_BLOCK] =
                        self.weight[(co * c + ci) * taps + tap];
                }
            }
        }
        // Rows (b, to, ho) in parallel, each computing [c_out, wo].
        let row_len = self.c_out * wo;
        let mut rows = vec![0f32; b * to * ho * row_len];
        rows.par_chunks_mut(row_len)
            .enumerate()
            .for_each(|(r, out)| {
                let (bi, rest) = (r / (to * ho), r % (to * ho));
                pulp::Arch::new().dispatch(RowKernel {
                    conv: self,
                    packed: &packed,
                    out,
                    bi,
                    ot: rest / ho,
                    oh: rest % ho,
                    wo,
                });
            });
        // [b, to, ho, c_out, wo] -> [b, c_out, to, ho, wo]
        let mut out = vec![0f32; rows.len()];
        let plane = to * ho * wo;
        out.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
            let (bi, co) = (i / self.c_out, i % self.c_out);
            for (r, dst_row) in dst.chunks_mut(wo).enumerate() {
                let src = ((bi * to * ho + r) * self.c_out + co) * wo;
                dst_row.copy_from_slice(&rows[src..src + wo]);
            }
        });
        out
    }
}

struct RowKernel<'a, 'b> {
    conv: &'a Conv<'b>,
    packed: &'a [f32],
    out: &'a mut [f32],
    bi: usize,
    ot: usize,
    oh: usize,
    wo: usize,
}

impl WithSimd for RowKernel<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            conv,
            packed,
            out,
            bi,
            ot,
            oh,
            wo,
        } = self;
        let [_, c, tp, hp, wp] = conv.x_dims;
        let [kt, kh, kw] = conv.kernel;
        let [st, sh, sw] = conv.stride;
        let taps = kt * kh * kw;
        let lanes = S::F32_LANES;
        let vector_end = if sw == 1 { wo - wo % (2 * lanes) } else { 0 };
        let load = |row: &[f32], i: usize| -> S::f32s {
            bytemuck::pod_read_unaligned(bytemuck::cast_slice(&row[i..i + lanes]))
        };
        for block in 0..conv.c_out.div_ceil(CO_BLOCK) {
            let n = CO_BLOCK.min(conv.c_out - block * CO_BLOCK);
            let wblock = &packed[block * c * taps * CO_BLOCK..(block + 1) * c * taps * CO_BLOCK];
            let mut init = [0f32; CO_BLOCK];
            init[..n].copy_from_slice(&conv.bias[block * CO_BLOCK..block * CO_BLOCK + n]);
            for ow in (0..vector_end).step_by(2 * lanes) {
                let mut acc = [[simd.splat_f32s(0.0); 2]; CO_BLOCK];
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = [simd.splat_f32s(init[k]); 2];
                }
                for ci in 0..c {
                    for dt in 0..kt {
                        for dh in 0..kh {
                            let start =
                                (((bi * c + ci) * tp + ot * st + dt) * hp + oh * sh + dh) * wp;
                            let row = &conv.x[start..start + wp];
                            let wrow = &wblock[((ci * kt + dt) * kh + dh) * kw * CO_BLOCK..];
                            for dw in 0..kw {
                                let x0 = load(row, ow + dw);
                                let x1 = load(row, ow + dw + lanes);
                                let wv = &wrow[dw * CO_BLOCK..dw * CO_BLOCK + CO_BLOCK];
                                for k in 0..CO_BLOCK {
                                    let w = simd.splat_f32s(wv[k]);
                                    acc[k][0] = simd.mul_add_e_f32s(w, x0, acc[k][0]);
                                    acc[k][1] = simd.mul_add_e_f32s(w, x1, acc[k][1]);
                                }
                            }
                        }
                    }
                }
                for (k, a) in acc.iter().enumerate().take(n) {
                    let o = (block * CO_BLOCK + k) * wo + ow;
                    let dst = &mut out[o..o + 2 * lanes];
                    dst[..lanes].copy_from_slice(bytemuck::cast_slice(std::slice::from_ref(&a[0])));
                    dst[lanes..].copy_from_slice(bytemuck::cast_slice(std::slice::from_ref(&a[1])));
                }
            }
            // Remaining pixels (and strided convolutions): scalar.
            for ow in vector_end..wo {
                let mut acc = init;
                for ci in 0..c {
                    for dt in 0..kt {
                        for dh in 0..kh {
                            let start =
                                (((bi * c + ci) * tp + ot * st + dt) * hp + oh * sh + dh) * wp;
                            let row = &conv.x[start..start + wp];
                            let wrow = &wblock[((ci * kt + dt) * kh + dh) * kw * CO_BLOCK..];
                            for dw in 0..kw {
                                let xv = row[ow * sw + dw];
                                for k in 0..CO_BLOCK {
                                    acc[k] = wrow[dw * CO_BLOCK + k].mul_add(xv, acc[k]);
                                }
                            }
                        }
                    }
                }
                for (k, a) in acc.iter().enumerate().take(n) {
                    out[(block * CO_BLOCK + k) * wo + ow] = *a;
                }
            }
        }
    }
}

/// Zero-pads `[b, c, t, h, w]` values: `front` zero frames, then `context` `[b, c, n, h, w]`, then `x`;
/// `hw = (top, bottom, left, right)`. Returns the values and dims of the padded input.
/// With `upsample`, `x` (not the context) is first up-sampled 2x (nearest) in `h` and `w`.
pub(crate) fn pad(
    x: &[f32],
    dims: [usize; 5],
    context: Option<(&[f32], usize)>,
    front: usize,
    hw: [usize; 4],
    upsample: bool,
) -> (Vec<f32>, [usize; 5]) {
    let [b, c, t, h0, w0] = dims;
    let f = if upsample { 2 } else { 1 };
    let (h, w) = (h0 * f, w0 * f);
    let n = context.map_or(0, |(_, n)| n);
    let (tp, hp, wp) = (front + n + t, h + hw[0] + hw[1], w + hw[2] + hw[3]);
    let mut out = vec![0f32; b * c * tp * hp * wp];
    out.par_chunks_mut(tp * hp * wp)
        .enumerate()
        .for_each(|(bc, dst)| {
            let copy_frames = |dst: &mut [f32], src: &[f32], frames: usize, first: usize| {
                for f in 0..frames {
                    for y in 0..h {
                        let s = ((bc * frames + f) * h + y) * w;
                        let d = ((first + f) * hp + hw[0] + y) * wp + hw[2];
                        dst[d..d + w].copy_from_slice(&src[s..s + w]);
                    }
                }
            };
            if let Some((ctx, n)) = context {
                copy_frames(dst, ctx, n, front);
            }
            if upsample {
                for fr in 0..t {
                    for y in 0..h {
                        let s = ((bc * t + fr) * h0 + y / 2) * w0;
                        let d = ((front + n + fr) * hp + hw[0] + y) * wp + hw[2];
                        for (pair, v) in dst[d..d + w].chunks_exact_mut(2).zip(&x[s..s + w0]) {
                            pair[0] = *v;
                            pair[1] = *v;
                        }
                    }
                }
            } else {
                copy_frames(dst, x, t, front + n);
            }
        });
    (out, [b, c, tp, hp, wp])
}

/// `x / max(||x||_2 over c, 1e-12) * sqrt(c) * gamma[c]`, then SiLU when `silu`, for `[b, c, rest]`.
pub(crate) fn rms_norm(
    x: &[f32],
    b: usize,
    c: usize,
    rest: usize,
    gamma: &[f32],
    silu: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let scale = (c as f32).sqrt();
    const CHUNK: usize = 1024;
    let chunks_per_b = rest.div_ceil(CHUNK);
    // Work on pixel chunks in parallel; each writes its chunk of every channel plane.
    let results: Vec<(usize, usize, Vec<f32>)> = (0..b * chunks_per_b)
        .into_par_iter()
        .map(|i| {
            let (bi, p0) = (i / chunks_per_b, (i % chunks_per_b) * CHUNK);
            let len = CHUNK.min(rest - p0);
            let mut sums = vec![0f32; len];
            for ci in 0..c {
                let src = &x[(bi * c + ci) * rest + p0..][..len];
                for (s, v) in sums.iter_mut().zip(src) {
                    *s += v * v;
                }
            }
            for s in sums.iter_mut() {
                *s = s.sqrt().max(1e-12);
            }
            let mut block = vec![0f32; c * len];
            for ci in 0..c {
                let src = &x[(bi * c + ci) * rest + p0..][..len];
                let g = gamma[ci];
                for ((d, v), s) in block[ci * len..(ci + 1) * len]
                    .iter_mut()
                    .zip(src)
                    .zip(&sums)
                {
                    let y = v / s * scale * g;
                    *d = if silu { y / (1.0 + (-y).exp()) } else { y };
                }
            }
            (bi, p0, block)
        })
        .collect();
    for (bi, p0, block) in results {
        let len = block.len() / c.max(1);
        for ci in 0..c {
            out[(bi * c + ci) * rest + p0..][..len]
                .copy_from_slice(&block[ci * len..(ci + 1) * len]);
        }
    }
    out
}

/// The host path of a convolution: pads `x` (after `context`; up-sampled 2x first when `upsample`)
/// and convolves it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv<B: Backend>(
    x: Tensor<B, 5>,
    context: Option<Tensor<B, 5>>,
    front: usize,
    hw: [usize; 4],
    upsample: bool,
    weight: Tensor<B, 5>,
    bias: Tensor<B, 1>,
    stride: [usize; 3],
) -> Tensor<B, 5> {
    let device = x.device();
    let dims = x.dims();
    let [c_out, _, kt, kh, kw] = weight.dims();
    let context = context.map(|ctx| {
        let n = ctx.dims()[2];
        (values(ctx), n)
    });
    let x = values(x);
    let (padded, x_dims) = pad(
        &x,
        dims,
        context.as_ref().map(|(v, n)| (v.as_slice(), *n)),
        front,
        hw,
        upsample,
    );
    let (weight, bias) = (values(weight), values(bias));
    let conv = Conv {
        x: &padded,
        x_dims,
        weight: &weight,
        c_out,
        bias: &bias,
        kernel: [kt, kh, kw],
        stride,
    };
    let [to, ho, wo] = conv.out_dims();
    tensor(conv.run(), [dims[0], c_out, to, ho, wo], &device)
}

/// `[b, 2c, t, h, w]` (two halves per frame) → `[b, c, 2t, h, w]` with the halves interleaved in time.
pub(crate) fn interleave_halves<B: Backend>(y: Tensor<B, 5>) -> Tensor<B, 5> {
    let device = y.device();
    let [b, c2, t, h, w] = y.dims();
    let c = c2 / 2;
    let v = values(y);
    let plane = h * w;
    let mut out = vec![0f32; v.len()];
    out.par_chunks_mut(2 * t * plane)
        .enumerate()
        .for_each(|(bc, dst)| {
            let (bi, ci) = (bc / c, bc % c);
            for ti in 0..t {
                for half in 0..2 {
                    let s = ((bi * c2 + half * c + ci) * t + ti) * plane;
                    let d = (2 * ti + half) * plane;
                    dst[d..d + plane].copy_from_slice(&v[s..s + plane]);
                }
            }
        });
    tensor(out, [b, c, 2 * t, h, w], &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use crate::vae::causal_conv::upsample_nearest2x;
    use burn::tensor::module::conv3d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Distribution, Tolerance};

    type B = TestBackend;

    fn reference(
        x: Tensor<B, 5>,
        w: Tensor<B, 5>,
        bias: Tensor<B, 1>,
        stride: [usize; 3],
    ) -> Tensor<B, 5> {
        conv3d(
            x,
            w,
            Some(bias),
            ConvOptions::new(stride, [0, 0, 0], [1, 1, 1], 1),
        )
    }

    #[test]
    fn host_conv_matches_burn_conv3d() {
        let device = Default::default();
        // Widths above and below the vector block, 1..6 output channels, strides.
        for (c_out, w_in, stride) in [
            (6, 41, [1, 1, 1]),
            (3, 5, [1, 1, 1]),
            (5, 37, [2, 2, 2]),
            (1, 70, [1, 2, 1]),
        ] {
            let x =
                Tensor::<B, 5>::random([2, 3, 5, 6, w_in], Distribution::Normal(0.0, 1.0), &device);
            let ctx =
                Tensor::<B, 5>::random([2, 3, 1, 6, w_in], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<B, 5>::random(
                [c_out, 3, 3, 3, 3],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let bias = Tensor::<B, 1>::random([c_out], Distribution::Normal(0.0, 1.0), &device);
            let got = conv(
                x.clone(),
                Some(ctx.clone()),
                1,
                [1, 1, 2, 2],
                false,
                w.clone(),
                bias.clone(),
                stride,
            );
            let padded = Tensor::cat(vec![Tensor::zeros([2, 3, 1, 6, w_in], &device), ctx, x], 2)
                .pad([(1, 1), (2, 2)], 0.0);
            let expected = reference(padded, w, bias, stride);
            got.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
        }
    }

    #[test]
    fn host_upsampled_conv_and_interleave_match_tensor_ops() {
        let device = Default::default();
        let x = Tensor::<B, 5>::random([1, 2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<B, 5>::random([4, 2, 1, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<B, 1>::zeros([4], &device);
        let got = conv(
            x.clone(),
            None,
            0,
            [1; 4],
            true,
            w.clone(),
            bias.clone(),
            [1, 1, 1],
        );
        let expected = reference(
            upsample_nearest2x(x).pad([(1, 1), (1, 1)], 0.0),
            w,
            bias,
            [1, 1, 1],
        );
        got.clone()
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));

        let [b, c2, t, h, w] = got.dims();
        let expected = got
            .clone()
            .reshape([b, 2, c2 / 2, t, h, w])
            .permute([0, 2, 3, 1, 4, 5])
            .reshape([b, c2 / 2, 2 * t, h, w]);
        assert_eq!(interleave_halves(got).into_data(), expected.into_data());
    }

    #[test]
    fn values_of_shared_and_strided_tensors() {
        let device = Default::default();
        let x = Tensor::<B, 3>::random([2, 3, 4], Distribution::Default, &device);
        let shared = x.clone();
        assert_eq!(
            values(shared),
            x.clone().into_data().to_vec::<f32>().unwrap()
        );
        let strided = x.clone().permute([2, 0, 1]);
        assert_eq!(
            values(strided.clone()),
            strided.into_data().to_vec::<f32>().unwrap()
        );
    }
}
