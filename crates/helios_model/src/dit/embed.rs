//! Patch, timestep and text embeddings of the Helios DiT.
//!
//! Port of diffusers `HeliosTimeTextEmbedding` (with `Timesteps`, `TimestepEmbedding`,
//! `PixArtAlphaTextProjection`) and of the `nn.Conv3d` patch embeddings of
//! `HeliosTransformer3DModel` (transformer_helios.py, diffusers 0.42.1).

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::precision::Precision;
use crate::error::{Error, Result};
use crate::ops::gelu_tanh;
use crate::weights::lazy_zeros;

/// A `Conv3d` whose kernel equals its stride: a patchifier. Computed as a reshape and one matmul,
/// which is exact and far faster than a generic convolution.
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// `[out, in, pt, ph, pw]`, as PyTorch stores it.
    pub weight: Param<Tensor<B, 5>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> PatchEmbed<B> {
    /// A zero-initialised patchifier (the loader fills it).
    pub fn new(in_channels: usize, out: usize, kernel: [usize; 3], device: &B::Device) -> Self {
        let [pt, ph, pw] = kernel;
        Self {
            weight: lazy_zeros([out, in_channels, pt, ph, pw], device),
            bias: lazy_zeros([out], device),
        }
    }

    /// The kernel (= stride) `[pt, ph, pw]`.
    pub fn kernel(&self) -> [usize; 3] {
        let s = self.weight.shape();
        [s[2], s[3], s[4]]
    }

    /// `[b, c, t, h, w]` (each a multiple of the kernel) → tokens `[b, t' h' w', out]` in
    /// `(t, h, w)` row-major order, and the post-patch grid `(t', h', w')`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Result<(Tensor<B, 3>, [usize; 3])> {
        let [b, c, t, h, w] = x.dims();
        let [pt, ph, pw] = self.kernel();
        let [out, cin, ..] = self.weight.dims();
        if c != cin || t % pt != 0 || h % ph != 0 || w % pw != 0 {
            return Err(Error::Shape {
                what: "patch embedding input [b, c, t, h, w]".into(),
                expected: format!("c = {cin}, t/h/w multiples of {pt}/{ph}/{pw}"),
                got: format!("{:?}", [b, c, t, h, w]),
            });
        }
        let (tt, hh, ww) = (t / pt, h / ph, w / pw);
        // At most 6 axes at a time (the CPU backend's limit):
        // [b c, tt, pt, hh, ph, w] -> [b c, tt, hh, pt, ph, w] -> [b, c, tt hh, pt ph, ww, pw]
        // -> [b, tt hh, ww, c, pt ph, pw] -> tokens [b, tt hh ww, c pt ph pw] in (c, pt, ph, pw) order.
        let x: Tensor<B, 6> = x.reshape([b * c, tt, pt, hh, ph, w]);
        let x: Tensor<B, 6> =
            x.permute([0, 1, 3, 2, 4, 5])
                .reshape([b, c, tt * hh, pt * ph, ww, pw]);
        let patches = x
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, tt * hh * ww, c * pt * ph * pw]);
        let weight = self
            .weight
            .val()
            .reshape([out, c * pt * ph * pw])
            .transpose();
        let tokens = patches.matmul(weight.unsqueeze::<3>()) + self.bias.val().reshape([1, 1, out]);
        Ok((tokens, [tt, hh, ww]))
    }
}

/// Replicate-pads `[b, c, t, h, w]` at the back/bottom/right to multiples of `k`
/// (diffusers `pad_for_3d_conv`).
pub fn pad_replicate<B: Backend>(x: Tensor<B, 5>, k: [usize; 3]) -> Tensor<B, 5> {
    let mut x = x;
    for (axis, &kk) in k.iter().enumerate() {
        let dim = axis + 2;
        let n = x.dims()[dim];
        let pad = (kk - n % kk) % kk;
        if pad > 0 && n > 0 {
            let last = x.clone().narrow(dim, n - 1, 1);
            let reps: Vec<Tensor<B, 5>> = std::iter::once(x)
                .chain(std::iter::repeat_n(last, pad))
                .collect();
            x = Tensor::cat(reps, dim);
        }
    }
    x
}

/// The 256-d (`freq_dim`) sinusoid of diffusers `Timesteps(flip_sin_to_cos=True,
/// downscale_freq_shift=0)`, computed exactly as torch does in float32: the timestep is cast to
/// f32 first (int64 and float64 timesteps alike), frequencies are `exp(-ln(1e4) * i / half)`.
pub fn timestep_sinusoid(timesteps: &[f64], freq_dim: usize) -> Vec<f32> {
    let half = freq_dim / 2;
    let log = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| {
            let exponent = (log * i as f32) / half as f32;
            (exponent as f64).exp() as f32
        })
        .collect();
    let mut out = Vec::with_capacity(timesteps.len() * freq_dim);
    for &t in timesteps {
        let t = t as f32;
        let args: Vec<f32> = freqs.iter().map(|f| t * f).collect();
        out.extend(args.iter().map(|a| (*a as f64).cos() as f32));
        out.extend(args.iter().map(|a| (*a as f64).sin() as f32));
    }
    out
}

/// `TimestepEmbedding`: Linear → SiLU → Linear.
#[derive(Module, Debug)]
pub struct TimestepEmbedding<B: Backend> {
    /// `freq_dim → dim`.
    pub linear_1: Linear<B>,
    /// `dim → dim`.
    pub linear_2: Linear<B>,
}

/// `PixArtAlphaTextProjection(act_fn="gelu_tanh")`: Linear → GELU(tanh) → Linear.
#[derive(Module, Debug)]
pub struct TextProjection<B: Backend> {
    /// `text_dim → dim`.
    pub linear_1: Linear<B>,
    /// `dim → dim`.
    pub linear_2: Linear<B>,
}

/// Port of diffusers `HeliosTimeTextEmbedding`.
#[derive(Module, Debug)]
pub struct HeliosTimeTextEmbedding<B: Backend> {
    /// Sinusoid → temb.
    pub time_embedder: TimestepEmbedding<B>,
    /// `SiLU(temb)` → the six modulation vectors `[b, 6 * dim]`.
    pub time_proj: Linear<B>,
    /// Prompt embeddings → model width.
    pub text_embedder: TextProjection<B>,
    #[module(skip)]
    freq_dim: usize,
}

/// The time conditioning of one timestep.
#[derive(Debug, Clone)]
pub struct TimeEmbedding<B: Backend> {
    /// `[b, dim]`.
    pub temb: Tensor<B, 2>,
    /// `[b, 6 * dim]` (shift, scale, gate, c_shift, c_scale, c_gate).
    pub proj: Tensor<B, 2>,
}

impl<B: Backend> HeliosTimeTextEmbedding<B> {
    /// Builds the (uninitialised) embedder.
    pub fn new(dim: usize, freq_dim: usize, text_dim: usize, device: &B::Device) -> Self {
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        Self {
            time_embedder: TimestepEmbedding {
                linear_1: lin(freq_dim, dim),
                linear_2: lin(dim, dim),
            },
            time_proj: lin(dim, 6 * dim),
            text_embedder: TextProjection {
                linear_1: lin(text_dim, dim),
                linear_2: lin(dim, dim),
            },
            freq_dim,
        }
    }

    /// The sinusoid of `timesteps` on the device, `[b, freq_dim]`.
    pub fn sinusoid(&self, timesteps: &[f64], device: &B::Device) -> Tensor<B, 2> {
        let values = timestep_sinusoid(timesteps, self.freq_dim);
        Tensor::from_data(
            TensorData::new(values, [timesteps.len(), self.freq_dim]),
            device,
        )
    }

    /// temb and timestep_proj of `timesteps` (one per batch row), in float32.
    pub fn time(&self, timesteps: &[f64], device: &B::Device) -> TimeEmbedding<B> {
        self.time_at(timesteps, device, Precision::F32)
    }

    /// temb and timestep_proj at precision `p`: the time embedder runs in float32, temb is then
    /// cast to the compute dtype (`.type_as(encoder_hidden_states)`) before `time_proj`.
    pub fn time_at(&self, timesteps: &[f64], device: &B::Device, p: Precision) -> TimeEmbedding<B> {
        let s = self.sinusoid(timesteps, device);
        let temb = p.c(self
            .time_embedder
            .linear_2
            .forward(silu(self.time_embedder.linear_1.forward(s))));
        let proj = p.c(self.time_proj.forward(p.c(silu(temb.clone()))));
        TimeEmbedding { temb, proj }
    }

    /// Projects prompt embeddings `[b, l, text_dim]` to `[b, l, dim]`.
    pub fn text(&self, encoder_hidden_states: Tensor<B, 3>, p: Precision) -> Tensor<B, 3> {
        let h = p.c(gelu_tanh(
            p.c(self.text_embedder.linear_1.forward(encoder_hidden_states)),
        ));
        p.c(self.text_embedder.linear_2.forward(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn replicate_padding_repeats_the_last_slice_of_each_axis() {
        let values: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let x = Tensor::<TestBackend, 5>::from_data(
            TensorData::new(values, [1, 1, 1, 2, 3]),
            &Default::default(),
        );
        let padded = pad_replicate(x, [2, 4, 4]);
        assert_eq!(padded.dims(), [1, 1, 2, 4, 4]);
        let v: Vec<f32> = padded.into_data().to_vec().unwrap_or_default();
        // Frame 1 repeats frame 0; rows 2, 3 repeat row 1; column 3 repeats column 2.
        let frame0 = [
            0., 1., 2., 2., 3., 4., 5., 5., 3., 4., 5., 5., 3., 4., 5., 5.,
        ];
        assert_eq!(&v[..16], &frame0);
        assert_eq!(&v[16..], &frame0);
    }

    #[test]
    fn patch_embedding_equals_a_strided_convolution() {
        use burn::nn::conv::Conv3dConfig;
        let device = Default::default();
        let conv = Conv3dConfig::new([3, 5], [1, 2, 2])
            .with_stride([1, 2, 2])
            .init::<TestBackend>(&device);
        // Materialise the lazily initialised parameters once, then share the values.
        let weight = Param::from_tensor(conv.weight.val());
        let bias = Param::from_tensor(conv.bias.as_ref().expect("bias").val());
        let conv = burn::nn::conv::Conv3d {
            weight: weight.clone(),
            bias: Some(bias.clone()),
            ..conv
        };
        let patch = PatchEmbed { weight, bias };
        let x = Tensor::<TestBackend, 5>::random(
            [2, 3, 2, 4, 6],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let reference = conv.forward(x.clone()); // [b, 5, 2, 2, 3]
        let (tokens, grid) = patch.forward(x).expect("forward");
        assert_eq!(grid, [2, 2, 3]);
        let as_tokens = reference.flatten::<3>(2, 4).swap_dims(1, 2);
        let diff: f32 = (tokens - as_tokens).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn patch_embedding_rejects_sizes_off_the_patch_grid() {
        let patch = PatchEmbed::<TestBackend>::new(3, 4, [1, 2, 2], &Default::default());
        let x = Tensor::<TestBackend, 5>::zeros([1, 3, 1, 5, 4], &Default::default());
        assert!(matches!(patch.forward(x), Err(Error::Shape { .. })));
    }
}
