//! Adaptive quality: holds real time when the GPU cannot, by trading denoising steps for speed.
//!
//! A chunk plays for `frames / fps` seconds. When the worker takes longer than that to make one,
//! the ring buffer drains and the texture freezes. The [`QualityController`] watches each chunk's
//! time against that budget and moves along a ladder of step counts: level 0 is the stream's own
//! steps per stage, each next level takes one step off the costliest stage that still has more
//! than one (the pyramid's last, full-resolution stage first), down to one step per stage. A slow
//! chunk jumps straight to the level its time predicts will fit; chunks with headroom raise the
//! level back one at a time, after a few in a row, so the quality does not oscillate.

/// How a stream adapts its steps to its playback rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityPolicy {
    /// The playback rate: a chunk of `n` frames plays for `n / fps` seconds, its time budget.
    pub fps: f32,
    /// Lower the quality when a chunk takes more than this share of the budget (e.g. 0.9).
    pub lower_above: f32,
    /// Raise it when a chunk would still take less than this share of the budget at the next
    /// level up (e.g. 0.75).
    pub raise_below: f32,
    /// Chunks in a row with that headroom before raising.
    pub raise_after: u32,
}

impl QualityPolicy {
    /// The default thresholds for video played at `fps`.
    pub fn at_fps(fps: f32) -> Self {
        Self {
            fps,
            lower_above: 0.9,
            raise_below: 0.75,
            raise_after: 3,
        }
    }
}

/// The step counts of each level, best first: the full steps, then one step fewer on the
/// costliest stage that has more than one, until every stage has one.
pub(crate) fn ladder(full: &[usize]) -> Vec<Vec<usize>> {
    let mut levels = vec![full.to_vec()];
    let mut steps = full.to_vec();
    while let Some(stage) = (0..steps.len()).rev().find(|&i| steps[i] > 1) {
        steps[stage] -= 1;
        levels.push(steps.clone());
    }
    levels
}

/// The relative DiT cost of a chunk with these steps per stage: each pyramid stage halves the
/// latent's height and width below the next, so a stage costs a quarter of the one after it.
pub(crate) fn relative_cost(steps: &[usize]) -> f32 {
    let last = steps.len().saturating_sub(1);
    steps
        .iter()
        .enumerate()
        .map(|(i, &s)| s as f32 * 0.25f32.powi((last - i) as i32))
        .sum()
}

/// One stream's position on the ladder.
#[derive(Debug, Clone)]
pub struct QualityController {
    policy: QualityPolicy,
    levels: Vec<Vec<usize>>,
    level: usize,
    calm: u32,
}

impl QualityController {
    /// A controller starting at the full `steps`.
    pub fn new(policy: QualityPolicy, steps: &[usize]) -> Self {
        Self {
            policy,
            levels: ladder(steps),
            level: 0,
            calm: 0,
        }
    }

    /// The steps per stage in use.
    pub fn steps(&self) -> &[usize] {
        &self.levels[self.level]
    }

    /// The level (0 = full quality).
    #[cfg(test)]
    pub fn level(&self) -> usize {
        self.level
    }

    /// Takes the time of the chunk of `frames` frames just made; returns the new steps when the
    /// level changes.
    pub fn observe(&mut self, seconds: f32, frames: usize) -> Option<Vec<usize>> {
        let budget = (frames as f32 / self.policy.fps.max(f32::EPSILON)).max(f32::EPSILON);
        let cost = relative_cost(self.steps()).max(f32::EPSILON);
        let per_cost = seconds / cost;
        let fits =
            |level: &Vec<usize>, share: f32| per_cost * relative_cost(level) <= share * budget;
        if seconds > self.policy.lower_above * budget {
            self.calm = 0;
            let target = (self.level + 1..self.levels.len())
                .find(|&l| fits(&self.levels[l], self.policy.lower_above))
                .unwrap_or(self.levels.len() - 1);
            return self.move_to(target);
        }
        match self.level.checked_sub(1) {
            Some(up) if fits(&self.levels[up], self.policy.raise_below) => {
                self.calm += 1;
                if self.calm >= self.policy.raise_after {
                    self.calm = 0;
                    return self.move_to(up);
                }
                None
            }
            _ => {
                self.calm = 0;
                None
            }
        }
    }

    fn move_to(&mut self, level: usize) -> Option<Vec<usize>> {
        if level == self.level {
            return None;
        }
        self.level = level;
        Some(self.steps().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_takes_steps_off_the_last_stage_first() {
        assert_eq!(
            ladder(&[2, 2, 2]),
            vec![vec![2, 2, 2], vec![2, 2, 1], vec![2, 1, 1], vec![1, 1, 1]]
        );
        assert_eq!(ladder(&[1]), vec![vec![1]]);
        assert_eq!(ladder(&[3]), vec![vec![3], vec![2], vec![1]]);
        assert!(relative_cost(&[2, 2, 1]) < relative_cost(&[2, 2, 2]));
        assert!((relative_cost(&[1, 1, 1]) - (1.0 + 0.25 + 0.0625)).abs() < 1e-6);
    }

    /// A GPU that makes a full-quality chunk in 1.5x its playback time: played at the rate the
    /// worker makes chunks, a ring that starts with two chunks never runs dry, because the steps
    /// drop after the first slow chunk; with a fixed quality it runs dry.
    #[test]
    fn steps_drop_before_the_ring_runs_dry_and_come_back_with_headroom() {
        let chunk_seconds = 33.0 / 24.0;
        let full = [2usize, 2, 2];
        let seconds_for = |steps: &[usize], speed: f32| {
            1.5 * chunk_seconds * relative_cost(steps) / relative_cost(&full) / speed
        };
        let run = |adaptive: bool, speed: f32| {
            let mut q = QualityController::new(QualityPolicy::at_fps(24.0), &full);
            let mut buffered = 2.0 * chunk_seconds; // seconds of video in the ring
            let mut min_buffered = buffered;
            for _ in 0..12 {
                let took = seconds_for(q.steps(), speed);
                buffered = buffered - took + chunk_seconds;
                min_buffered = min_buffered.min(buffered);
                if adaptive {
                    q.observe(took, 33);
                }
            }
            (q, min_buffered)
        };
        let (q, min_buffered) = run(true, 1.0);
        assert!(q.level() > 0, "the steps dropped");
        assert!(relative_cost(q.steps()) / relative_cost(&full) <= 0.9 / 1.5);
        assert!(min_buffered > 0.0, "no underrun: {min_buffered}");
        let (_, fixed) = run(false, 1.0);
        assert!(fixed < 0.0, "without adapting the ring runs dry: {fixed}");

        // A GPU three times as fast: after a slow start the quality climbs back to full.
        let mut q = QualityController::new(QualityPolicy::at_fps(24.0), &full);
        q.observe(seconds_for(&full, 1.0), 33);
        assert!(q.level() > 0);
        for _ in 0..20 {
            q.observe(seconds_for(q.steps(), 3.0), 33);
        }
        assert_eq!(q.steps(), &full, "back to full quality with headroom");
    }

    #[test]
    fn steady_chunks_near_the_budget_do_not_oscillate() {
        let mut q = QualityController::new(QualityPolicy::at_fps(33.0), &[2, 2, 2]);
        assert_eq!(q.observe(1.2, 33), Some(vec![2, 2, 1]));
        // 0.8 s at [2, 2, 1] fits, and [2, 2, 2] would need ~1.2 s: stay.
        for _ in 0..10 {
            assert_eq!(q.observe(0.8, 33), None);
        }
        assert_eq!(q.level(), 1);
    }
}
