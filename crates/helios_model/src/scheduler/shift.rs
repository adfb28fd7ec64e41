//! The shift math of the Helios schedulers and pipelines, in float64: numpy's `linspace`, the
//! pipelines' `calculate_shift` (mu from the token count) and the schedulers' `time_shift`
//! (scheduling_helios.py, scheduling_helios_dmd.py, pipeline_helios*.py, diffusers 0.42.1).

use crate::config::TimeShiftType;

/// `np.linspace(start, stop, num)` (endpoint included), reproducing numpy's arithmetic:
/// `i * step + start` with `step = (stop - start) / (num - 1)` and the last value set to `stop`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let div = (num - 1) as f64;
            let delta = stop - start;
            let step = delta / div;
            let mut y: Vec<f64> = if step == 0.0 {
                (0..num).map(|i| (i as f64 / div) * delta + start).collect()
            } else {
                (0..num).map(|i| i as f64 * step + start).collect()
            };
            y[num - 1] = stop;
            y
        }
    }
}

/// The constants of the pipelines' `calculate_shift` (diffusers reads them from the scheduler config
/// with these defaults; the Helios scheduler configs do not set them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftParams {
    /// `base_image_seq_len` (256).
    pub base_image_seq_len: usize,
    /// `max_image_seq_len` (4096).
    pub max_image_seq_len: usize,
    /// `base_shift` (0.5).
    pub base_shift: f64,
    /// `max_shift` (1.15).
    pub max_shift: f64,
}

impl Default for ShiftParams {
    fn default() -> Self {
        Self {
            base_image_seq_len: 256,
            max_image_seq_len: 4096,
            base_shift: 0.5,
            max_shift: 1.15,
        }
    }
}

/// `calculate_shift(image_seq_len, ...)`: mu grows linearly with the token count.
pub fn calculate_shift(image_seq_len: usize, params: &ShiftParams) -> f64 {
    let m = (params.max_shift - params.base_shift)
        / (params.max_image_seq_len as f64 - params.base_image_seq_len as f64);
    let b = params.base_shift - m * params.base_image_seq_len as f64;
    image_seq_len as f64 * m + b
}

/// The token count the pipelines feed to [`calculate_shift`]: `t * h * w // (pt * ph * pw)` of the
/// latents `[b, c, t, h, w]` the pipeline holds when it calls `set_timesteps`.
pub fn image_seq_len(frames: usize, height: usize, width: usize, patch_size: [usize; 3]) -> usize {
    let patch = patch_size.iter().product::<usize>().max(1);
    frames * height * width / patch
}

/// `time_shift(mu, 1.0, s)`: linear `mu / (mu + (1/s - 1))` or exponential `e^mu / (e^mu + (1/s - 1))`.
/// `s = 0` maps to 0 (as in torch: `1/0 = inf`).
pub fn time_shift(kind: TimeShiftType, mu: f64, s: f64) -> f64 {
    let odds = 1.0 / s - 1.0;
    match kind {
        TimeShiftType::Linear => mu / (mu + odds),
        TimeShiftType::Exponential => {
            let e = mu.exp();
            e / (e + odds)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(linspace(3.0, 3.0, 3), vec![3.0, 3.0, 3.0]);
        assert_eq!(linspace(2.0, 5.0, 1), vec![2.0]);
        // numpy: np.linspace(0.999, 0, 5)[1] == 0.74925
        assert_eq!(linspace(0.999, 0.0, 5)[1], 0.74925);
    }

    #[test]
    fn mu_of_the_tiny_stage_zero() {
        // 128x128 px -> latent 16x16 -> stage 0 is 4x4, 9 frames: 9*4*4/4 = 36 tokens.
        let seq = image_seq_len(9, 4, 4, [1, 2, 2]);
        assert_eq!(seq, 36);
        assert!((calculate_shift(seq, &ShiftParams::default()) - 0.4627604166666667).abs() < 1e-15);
    }
}
