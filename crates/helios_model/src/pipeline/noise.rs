//! Where the pipeline's randomness comes from.
//!
//! Every random draw of a generation goes through a [`NoiseSource`], in the order the reference
//! pipeline makes them: a [`SeededNoise`] for users, a [`ReplayNoise`] of recorded draws for
//! conformance (the golden cases store each draw as `noise_###`).

use std::collections::VecDeque;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal, Uniform};

use crate::error::{Error, Result};

/// The kind of a random draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawKind {
    /// N(0, 1).
    Normal,
    /// U[0, 1).
    Uniform,
}

/// A source of random tensors (host values, row-major).
pub trait NoiseSource: Send {
    /// Draws `shape.iter().product()` values of `kind`.
    fn draw(&mut self, kind: DrawKind, shape: &[usize]) -> Result<Vec<f32>>;
}

/// Seeded pseudo-random draws (the default for users).
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: StdRng,
}

impl SeededNoise {
    /// A source seeded with `seed`: the same seed gives the same video.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl NoiseSource for SeededNoise {
    fn draw(&mut self, kind: DrawKind, shape: &[usize]) -> Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        Ok(match kind {
            DrawKind::Normal => (0..n)
                .map(|_| StandardNormal.sample(&mut self.rng))
                .collect(),
            DrawKind::Uniform => {
                let u =
                    Uniform::new(0.0f32, 1.0).map_err(|e| Error::InvalidRequest(e.to_string()))?;
                (0..n).map(|_| u.sample(&mut self.rng)).collect()
            }
        })
    }
}

/// One recorded draw.
#[derive(Debug, Clone)]
pub struct RecordedDraw {
    /// Its name (e.g. `noise_006`), for error messages.
    pub name: String,
    /// Its kind.
    pub kind: DrawKind,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values.
    pub values: Vec<f32>,
}

/// Replays recorded draws in order; a draw of another kind or shape than the next recorded one is
/// an error (the port would otherwise silently diverge from the reference).
#[derive(Debug, Clone, Default)]
pub struct ReplayNoise {
    draws: VecDeque<RecordedDraw>,
}

impl ReplayNoise {
    /// Replays `draws` in order.
    pub fn new(draws: Vec<RecordedDraw>) -> Self {
        Self {
            draws: draws.into(),
        }
    }

    /// Draws not consumed yet.
    pub fn remaining(&self) -> usize {
        self.draws.len()
    }
}

impl NoiseSource for ReplayNoise {
    fn draw(&mut self, kind: DrawKind, shape: &[usize]) -> Result<Vec<f32>> {
        let next = self.draws.pop_front().ok_or_else(|| {
            Error::InvalidRequest(format!(
                "replay: no recorded draw left for a {kind:?} draw of shape {shape:?}"
            ))
        })?;
        let n: usize = shape.iter().product();
        if next.kind != kind || next.values.len() != n {
            return Err(Error::InvalidRequest(format!(
                "replay: the pipeline draws {kind:?} {shape:?} but the next recorded draw `{}` is {:?} {:?}",
                next.name, next.kind, next.shape
            )));
        }
        Ok(next.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_reproducible_and_plausible() {
        let a = SeededNoise::new(7)
            .draw(DrawKind::Normal, &[4, 1000])
            .unwrap_or_default();
        let b = SeededNoise::new(7)
            .draw(DrawKind::Normal, &[4, 1000])
            .unwrap_or_default();
        assert_eq!(a, b);
        let mean: f32 = a.iter().sum::<f32>() / a.len() as f32;
        let var: f32 = a.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / a.len() as f32;
        assert!(
            mean.abs() < 0.1 && (var - 1.0).abs() < 0.1,
            "mean {mean} var {var}"
        );
        let u = SeededNoise::new(1)
            .draw(DrawKind::Uniform, &[100])
            .unwrap_or_default();
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn replay_checks_kind_and_shape() {
        let draw = |name: &str, kind, n| RecordedDraw {
            name: name.into(),
            kind,
            shape: vec![n],
            values: vec![0.5; n],
        };
        let mut r = ReplayNoise::new(vec![
            draw("a", DrawKind::Uniform, 1),
            draw("b", DrawKind::Normal, 3),
        ]);
        assert!(r.draw(DrawKind::Uniform, &[1]).is_ok());
        assert!(r.draw(DrawKind::Normal, &[4]).is_err());
        assert!(r.draw(DrawKind::Normal, &[3]).is_err(), "exhausted");
    }
}
