//! Classifier-free guidance: plain CFG (Base), CFG-Zero* with zero-init (Mid), none (Distilled).
//!
//! Port of the guidance in `HeliosPipeline` / `HeliosPyramidPipeline.__call__` and of `optimized_scale`
//! (pipeline_helios_pyramid.py, diffusers 0.42.1). Velocities are `[b, c, t, h, w]` f32.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::error::Result;

/// How the conditional and unconditional velocities are combined.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum GuidanceMode {
    /// No unconditional branch (Distilled; the pipelines also skip CFG when `scale <= 1`).
    #[default]
    None,
    /// `v = v_u + scale * (v_c - v_u)`.
    Cfg {
        /// Guidance scale.
        scale: f64,
    },
    /// CFG-Zero*: `v = v_u * a + scale * (v_c - v_u * a)` with `a = <v_c, v_u> / (|v_u|^2 + 1e-8)` per
    /// sample; with zero-init, `v = 0` for stage-0 steps `i <= zero_steps`.
    CfgZeroStar {
        /// Guidance scale.
        scale: f64,
        /// `Some(zero_steps)` when `use_zero_init` (the pipeline default is `Some(1)`: the first TWO
        /// stage-0 steps).
        zero_init_steps: Option<usize>,
    },
}

impl GuidanceMode {
    /// Whether the pipeline runs the unconditional branch (`guidance_scale > 1`).
    pub fn needs_uncond(&self) -> bool {
        match *self {
            Self::None => false,
            Self::Cfg { scale } | Self::CfgZeroStar { scale, .. } => scale > 1.0,
        }
    }

    /// The guided velocity of step `step` of stage `stage`. `uncond` is ignored when
    /// [`Self::needs_uncond`] is false (then `cond` is returned as is).
    pub fn combine<B: Backend>(
        &self,
        cond: Tensor<B, 5>,
        uncond: Option<Tensor<B, 5>>,
        stage: usize,
        step: usize,
    ) -> Result<Tensor<B, 5>> {
        let uncond = match uncond {
            Some(u) if self.needs_uncond() => u,
            _ => return Ok(cond),
        };
        super::check_same_shape("unconditional velocity", &uncond, &cond)?;
        Ok(match *self {
            Self::None => cond,
            Self::Cfg { scale } => cfg(cond, uncond, scale),
            Self::CfgZeroStar {
                scale,
                zero_init_steps,
            } => {
                if zero_init_steps.is_some_and(|z| zero_init_applies(stage, step, z)) {
                    cond.mul_scalar(0.0f32)
                } else {
                    cfg_zero_star(cond, uncond, scale)
                }
            }
        })
    }
}

/// Plain CFG: `uncond + scale * (cond - uncond)`.
pub fn cfg<B: Backend>(cond: Tensor<B, 5>, uncond: Tensor<B, 5>, scale: f64) -> Tensor<B, 5> {
    uncond.clone() + (cond - uncond).mul_scalar(scale as f32)
}

/// `optimized_scale`: `<cond, uncond> / (|uncond|^2 + 1e-8)` per sample, f32, shape `[b, 1, 1, 1, 1]`.
pub fn cfg_zero_star_scale<B: Backend>(cond: &Tensor<B, 5>, uncond: &Tensor<B, 5>) -> Tensor<B, 5> {
    let [b, ..] = cond.dims();
    let c = cond.clone().reshape([b as i32, -1]);
    let u = uncond.clone().reshape([b as i32, -1]);
    let dot = (c * u.clone()).sum_dim(1);
    let norm = (u.clone() * u).sum_dim(1).add_scalar(1e-8f32);
    (dot / norm).reshape([b, 1, 1, 1, 1])
}

/// CFG-Zero*: `uncond * a + scale * (cond - uncond * a)` with `a` = [`cfg_zero_star_scale`].
pub fn cfg_zero_star<B: Backend>(
    cond: Tensor<B, 5>,
    uncond: Tensor<B, 5>,
    scale: f64,
) -> Tensor<B, 5> {
    let alpha = cfg_zero_star_scale(&cond, &uncond);
    let scaled = uncond * alpha;
    scaled.clone() + (cond - scaled).mul_scalar(scale as f32)
}

/// Zero-init is active for stage 0 steps `i <= zero_steps` (the first `zero_steps + 1` steps).
pub fn zero_init_applies(stage: usize, step: usize, zero_steps: usize) -> bool {
    stage == 0 && step <= zero_steps
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::TestBackend;

    fn t(v: Vec<f32>) -> Tensor<TestBackend, 5> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [1, 1, 1, 1, n]), &Default::default())
    }

    #[test]
    fn cfg_and_cfg_zero_star() {
        let out = cfg(t(vec![2.0, 0.0]), t(vec![1.0, 1.0]), 5.0)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(out, vec![6.0, -4.0]);
        // a = <c,u>/|u|^2 = 2/2 = 1 -> same as plain CFG.
        let out = cfg_zero_star(t(vec![2.0, 0.0]), t(vec![1.0, 1.0]), 5.0)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!((out[0] - 6.0).abs() < 1e-5 && (out[1] + 4.0).abs() < 1e-5);
    }

    #[test]
    fn zero_init_covers_the_first_two_stage0_steps() {
        assert!(zero_init_applies(0, 0, 1) && zero_init_applies(0, 1, 1));
        assert!(!zero_init_applies(0, 2, 1) && !zero_init_applies(1, 0, 1));
        let mode = GuidanceMode::CfgZeroStar {
            scale: 5.0,
            zero_init_steps: Some(1),
        };
        let out = mode
            .combine(t(vec![2.0]), Some(t(vec![1.0])), 0, 1)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(out, vec![0.0]);
        let none = GuidanceMode::Cfg { scale: 1.0 };
        assert!(!none.needs_uncond());
    }
}
