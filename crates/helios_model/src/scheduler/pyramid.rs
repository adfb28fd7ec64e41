//! Pyramid resampling of latents `[b, c, t, h, w]`, frame by frame.
//!
//! Port of the resampling in `HeliosPyramidPipeline.__call__` (pipeline_helios_pyramid.py, diffusers
//! 0.42.1): before stage 0 the chunk noise is down-sampled `stages - 1` times with
//! `F.interpolate(mode="bilinear", size=(h // 2, w // 2))` (align_corners=False, no antialias) and
//! multiplied by 2 each time; at every later stage the latents are up-sampled with `mode="nearest"` x2
//! and re-noised: `x = alpha * x + beta * block_noise` (see [`super::sigmas::StageTables::renoise`] and
//! [`super::noise::BlockNoise`]).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::sigmas::Renoise;
use crate::error::{Error, Result};

/// Source indices and weights of torch's `upsample_bilinear2d` along one axis (align_corners=False):
/// `src = max(scale * (dst + 0.5) - 0.5, 0)` with `scale = in / out`, all in f32 as torch computes them.
fn linear_taps(input: usize, output: usize) -> (Vec<i64>, Vec<i64>, Vec<f32>, Vec<f32>) {
    let scale = input as f32 / output as f32;
    let mut i0 = Vec::with_capacity(output);
    let mut i1 = Vec::with_capacity(output);
    let mut w0 = Vec::with_capacity(output);
    let mut w1 = Vec::with_capacity(output);
    for dst in 0..output {
        let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
        let lo = (src.floor() as usize).min(input - 1);
        let hi = if lo < input - 1 { lo + 1 } else { lo };
        let lambda = (src - lo as f32).clamp(0.0, 1.0);
        i0.push(lo as i64);
        i1.push(hi as i64);
        w0.push(1.0 - lambda);
        w1.push(lambda);
    }
    (i0, i1, w0, w1)
}

/// Linear interpolation of axis `dim` (3 = h, 4 = w) of `x` to `output` samples.
fn interpolate_axis<B: Backend>(x: Tensor<B, 5>, dim: usize, output: usize) -> Tensor<B, 5> {
    let device = x.device();
    let input = x.dims()[dim];
    let (i0, i1, w0, w1) = linear_taps(input, output);
    let index = |v: Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::new(v, [output]), &device);
    let mut wshape = [1usize; 5];
    wshape[dim] = output;
    let weight = |v: Vec<f32>| Tensor::<B, 5>::from_data(TensorData::new(v, wshape), &device);
    let a = x.clone().select(dim, index(i0)) * weight(w0);
    let b = x.select(dim, index(i1)) * weight(w1);
    a + b
}

/// Bilinear resampling of the height and width of `x` `[b, c, t, h, w]` to `height x width`, frame
/// by frame, with torch's taps (align_corners=False, no antialias): how a stream's history, prefix
/// and frames change size when adaptive quality changes its resolution.
pub fn resize_bilinear<B: Backend>(x: Tensor<B, 5>, height: usize, width: usize) -> Tensor<B, 5> {
    let [_, _, _, h, w] = x.dims();
    let x = if w == width {
        x
    } else {
        interpolate_axis(x, 4, width)
    };
    if h == height {
        x
    } else {
        interpolate_axis(x, 3, height)
    }
}

/// One pyramid down-sampling step: bilinear to `(h // 2, w // 2)` per frame, then `* 2`.
///
/// Same taps and weights as torch; torch's CPU kernel sums the four taps in an order that depends on
/// the tensor shape, so results can differ from it by 1 f32 ulp (2.4e-7 on `scheduler_steps`).
pub fn downsample_half<B: Backend>(x: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
    let [_, _, _, h, w] = x.dims();
    if h < 2 || w < 2 {
        return Err(Error::Shape {
            what: "pyramid down-sample".into(),
            expected: "height and width >= 2".into(),
            got: format!("{h}x{w}"),
        });
    }
    // torch's separable order: along w for each source row, then along h.
    let x = interpolate_axis(x, 4, w / 2);
    Ok(interpolate_axis(x, 3, h / 2).mul_scalar(2.0f32))
}

/// `times` down-sampling steps (the chunk noise goes down `stages - 1` times before stage 0).
pub fn downsample<B: Backend>(mut x: Tensor<B, 5>, times: usize) -> Result<Tensor<B, 5>> {
    for _ in 0..times {
        x = downsample_half(x)?;
    }
    Ok(x)
}

/// Nearest-neighbour x2 up-sampling of `h` and `w` per frame.
pub fn upsample_nearest2x<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 5> {
    let [b, c, t, h, w] = x.dims();
    // Frames folded into one axis: NdArray handles at most 6 dimensions.
    x.reshape([b * c * t, h, 1, w, 1])
        .repeat_dim(2, 2)
        .repeat_dim(4, 2)
        .reshape([b, c, t, h * 2, w * 2])
}

/// The stage re-noise `alpha * up + beta * noise` (coefficients rounded to f32, as torch applies
/// Python floats to f32 tensors).
pub fn renoise<B: Backend>(
    up: Tensor<B, 5>,
    noise: Tensor<B, 5>,
    coefficients: Renoise,
) -> Result<Tensor<B, 5>> {
    super::check_same_shape("stage re-noise", &noise, &up)?;
    Ok(up.mul_scalar(coefficients.alpha as f32) + noise.mul_scalar(coefficients.beta as f32))
}

/// The latent sizes `[h, w]` of each pyramid stage: the full size halved (floor) `stages - 1 - s`
/// times, as the pipeline's bilinear down-sampling produces them. Errors if a size reaches 0.
pub fn pyramid_stage_sizes(height: usize, width: usize, stages: usize) -> Result<Vec<[usize; 2]>> {
    let mut sizes = vec![[height, width]];
    for _ in 1..stages {
        let [h, w] = sizes[sizes.len() - 1];
        if h < 2 || w < 2 {
            return Err(Error::InvalidRequest(format!(
                "latent size {height}x{width} is too small for {stages} pyramid stages"
            )));
        }
        sizes.push([h / 2, w / 2]);
    }
    sizes.reverse();
    Ok(sizes)
}

/// The stage whose latent size HeliosPyramidPipeline uses for `mu` of stage `stage`: it calls
/// `set_timesteps` before that stage's x2 upsample, so `mu` lags one stage (stages 0 and 1 both use the
/// stage-0 size). The official Helios pipeline has the same order.
pub fn pyramid_mu_source_stage(stage: usize) -> usize {
    stage.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    fn tensor(v: Vec<f32>, shape: [usize; 5]) -> Tensor<TestBackend, 5> {
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    #[test]
    fn even_halving_is_a_2x2_mean_times_two() {
        let x = tensor((0..16).map(|v| v as f32).collect(), [1, 1, 1, 4, 4]);
        let out = downsample_half(x)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // mean of [0,1,4,5] = 2.5 -> 5; [2,3,6,7] -> 4.5 -> 9; ...
        assert_eq!(out, vec![5.0, 9.0, 21.0, 25.0]);
    }

    #[test]
    fn odd_sizes_follow_torch_taps() {
        // in 5 -> out 2: scale 2.5, src = 2.5*(d+0.5)-0.5 = 0.75, 3.25.
        let (i0, i1, w0, w1) = linear_taps(5, 2);
        assert_eq!((i0, i1), (vec![0, 3], vec![1, 4]));
        assert_eq!((w0, w1), (vec![0.25, 0.75], vec![0.75, 0.25]));
        assert!(downsample_half(tensor(vec![1.0; 3], [1, 1, 1, 1, 3])).is_err());
    }

    #[test]
    fn nearest_repeats_pixels() {
        let x = tensor(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 1, 2, 2]);
        let out = upsample_nearest2x(x).into_data().to_vec::<f32>().unwrap();
        assert_eq!(
            out,
            vec![
                1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0
            ]
        );
    }

    #[test]
    fn stage_sizes_halve_and_mu_lags_one_stage() {
        assert_eq!(
            pyramid_stage_sizes(16, 16, 3).unwrap(),
            vec![[4, 4], [8, 8], [16, 16]]
        );
        assert_eq!(pyramid_stage_sizes(5, 9, 2).unwrap(), vec![[2, 4], [5, 9]]);
        assert!(pyramid_stage_sizes(3, 16, 3).is_err());
        assert_eq!(pyramid_mu_source_stage(0), 0);
        assert_eq!(pyramid_mu_source_stage(2), 1);
    }
}
