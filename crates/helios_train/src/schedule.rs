//! The learning-rate schedule: a linear warm-up, then a cosine decay to a tenth of the peak.

/// The learning rate of each optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearningRate {
    peak: f64,
    steps: usize,
    warmup: usize,
}

impl LearningRate {
    /// A schedule of `steps` steps peaking at `peak` (warm-up: 5 % of the steps, at most 100).
    pub fn new(peak: f64, steps: usize) -> Self {
        Self {
            peak,
            steps,
            warmup: (steps / 20).clamp(1, 100),
        }
    }

    /// The rate at `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let floor = 0.1 * self.peak;
        floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_a_tenth() {
        let lr = LearningRate::new(1.0, 1000);
        assert!(lr.at(0) < 0.05);
        assert!((lr.at(49) - 1.0).abs() < 1e-9);
        assert!(lr.at(500) < 1.0 && lr.at(500) > 0.1);
        assert!((lr.at(999) - 0.1).abs() < 1e-3);
        assert!(lr.at(5000) >= 0.1 - 1e-12);
    }
}
