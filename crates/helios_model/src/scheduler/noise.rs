//! Spatially correlated block noise for the pyramid stage transitions.
//!
//! Port of `HeliosPyramidPipeline.sample_block_noise` (pipeline_helios_pyramid.py, diffusers 0.42.1)
//! with the covariance and its Cholesky factor in float64: diffusers builds them in float32, where the
//! `1e-8` jitter vanishes and the matrix is singular for `gamma = 1/3` (torch raises on CPU); the
//! golden fixtures were made with the float64 version. The factor is rounded to f32 and the product
//! `z @ L^T` is f32, as in the fixtures.
//!
//! The draws `z` (`[N, ph * pw]`, N(0, 1)) come from the caller's noise source, one row per patch
//! block in `(b, c, t, y_block, x_block)` row-major order.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::error::{Error, Result};

/// `L` with `L L^T = a` for a symmetric positive-definite `n x n` matrix (row-major), in f64.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    if a.len() != n * n {
        return Err(Error::InvalidRequest(format!(
            "cholesky: {} values for a {n}x{n} matrix",
            a.len()
        )));
    }
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 || d.is_nan() {
                    return Err(Error::InvalidRequest(
                        "block-noise covariance is not positive-definite (gamma out of range?)"
                            .into(),
                    ));
                }
                l[i * n + j] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// The block covariance `(1 + gamma) I - gamma 1 1^T + 1e-8 I` of `size x size` (row-major).
pub fn block_covariance(gamma: f64, size: usize) -> Vec<f64> {
    let mut cov = vec![0.0; size * size];
    for i in 0..size {
        for j in 0..size {
            let eye = if i == j { 1.0 } else { 0.0 };
            cov[i * size + j] = eye * (1.0 + gamma) - gamma + eye * 1e-8;
        }
    }
    cov
}

/// The block-noise sampler of one scheduler `gamma` and DiT patch size.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockNoise {
    patch: [usize; 2],
    factor: Vec<f64>,
}

impl BlockNoise {
    /// `gamma` from the scheduler config, `patch_hw` = the DiT's spatial `patch_size` `(ph, pw)`.
    pub fn new(gamma: f64, patch_hw: [usize; 2]) -> Result<Self> {
        let size = patch_hw[0] * patch_hw[1];
        if size == 0 {
            return Err(Error::InvalidRequest(format!(
                "block noise: patch size {patch_hw:?} has a zero"
            )));
        }
        let factor = cholesky(&block_covariance(gamma, size), size)?;
        Ok(Self {
            patch: patch_hw,
            factor,
        })
    }

    /// The float64 Cholesky factor `L` (row-major, `ph*pw` square).
    pub fn factor(&self) -> &[f64] {
        &self.factor
    }

    /// Values per block (`ph * pw`).
    pub fn block_size(&self) -> usize {
        self.patch[0] * self.patch[1]
    }

    /// The shape `[N, ph * pw]` of the draws `z` for noise of shape `[b, c, t, h, w]`.
    pub fn z_shape(&self, shape: [usize; 5]) -> Result<[usize; 2]> {
        let [b, c, t, h, w] = shape;
        let [ph, pw] = self.patch;
        if h % ph != 0 || w % pw != 0 {
            return Err(Error::Shape {
                what: "block noise".into(),
                expected: format!("height and width divisible by the patch size {ph}x{pw}"),
                got: format!("{h}x{w}"),
            });
        }
        Ok([b * c * t * (h / ph) * (w / pw), self.block_size()])
    }

    /// The block noise `[b, c, t, h, w]` from the draws `z` `[N, ph * pw]`: `z @ L^T` (f32), viewed
    /// `[b, c, t, h/ph, w/pw, ph, pw]`, permuted to `[b, c, t, h/ph, ph, w/pw, pw]`.
    pub fn sample<B: Backend>(&self, z: Tensor<B, 2>, shape: [usize; 5]) -> Result<Tensor<B, 5>> {
        let expected = self.z_shape(shape)?;
        if z.dims() != expected {
            return Err(Error::Shape {
                what: "block-noise draws z".into(),
                expected: format!("{expected:?}"),
                got: format!("{:?}", z.dims()),
            });
        }
        let n = self.block_size();
        // L^T as f32: lt[k][j] = L[j][k].
        let lt: Vec<f32> = (0..n * n)
            .map(|i| self.factor[(i % n) * n + i / n] as f32)
            .collect();
        let lt = Tensor::<B, 2>::from_data(TensorData::new(lt, [n, n]), &z.device());
        let [b, c, t, h, w] = shape;
        let [ph, pw] = self.patch;
        // [b, c, t, h/ph, w/pw, ph, pw] -> permute(0, 1, 2, 3, 5, 4, 6), with b, c, t folded into one
        // axis (NdArray handles at most 6 dimensions).
        let noise = z
            .matmul(lt)
            .reshape([b * c * t, h / ph, w / pw, ph, pw])
            .permute([0, 1, 3, 2, 4]);
        Ok(noise.reshape([b, c, t, h, w]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn cholesky_of_the_helios_block_covariance() {
        let bn = BlockNoise::new(1.0 / 3.0, [2, 2]).unwrap();
        let l = bn.factor();
        assert!((l[0] - 1.000000005).abs() < 1e-15);
        assert!((l[4] + 0.3333333316666667).abs() < 1e-15);
        assert!((l[15] - 0.0001999999974493626).abs() < 1e-12);
        assert!(BlockNoise::new(-2.0, [2, 2]).is_err());
    }

    #[test]
    fn blocks_land_on_their_pixels() {
        let bn = BlockNoise::new(1.0 / 3.0, [2, 2]).unwrap();
        let shape = [1, 1, 1, 2, 4];
        assert_eq!(bn.z_shape(shape).unwrap(), [2, 4]);
        assert!(bn.z_shape([1, 1, 1, 3, 4]).is_err());
        // noise = z @ L^T: z = e_0 gives column 0 of L, z = e_3 gives column 3 (only L33).
        let z = Tensor::<TestBackend, 2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], [2, 4]),
            &Default::default(),
        );
        let out = bn
            .sample(z, shape)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let l = bn.factor();
        // Block 0 covers columns 0..2, block 1 columns 2..4; within a block value j sits at (j / 2, j % 2).
        let expect = [l[0], l[4], 0.0, 0.0, l[8], l[12], 0.0, l[15]];
        for (o, e) in out.iter().zip(expect) {
            assert!((*o as f64 - e).abs() < 1e-6, "{out:?}");
        }
    }
}
