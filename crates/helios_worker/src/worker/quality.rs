//! Adaptive quality: holds real time when the GPU cannot, by trading denoising steps, then
//! resolution, for speed.
//!
//! A chunk plays for `frames / fps` seconds. When the worker takes longer than that to make one,
//! the ring buffer drains and the texture freezes. The [`QualityController`] watches each chunk's
//! time against that budget and moves along a ladder of [`QualityLevel`]s: level 0 is the stream's
//! own steps per stage at its own size, each next level takes one step off the costliest stage
//! that still has more than one (the pyramid's last, full-resolution stage first), down to one step
//! per stage; past that the model generates smaller (3/4, then 1/2 of each side, in the model's
//! size multiple), the engine resampling the stream's history and scaling the frames back up. A
//! slow chunk jumps straight to the level its time predicts will fit; chunks with headroom raise
//! the level back one at a time (the size first), after a few in a row, so the quality does not
//! oscillate.

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

/// One rung of the quality ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityLevel {
    /// Denoising steps per pyramid stage.
    pub steps: Vec<usize>,
    /// Width the model generates at.
    pub width: usize,
    /// Height the model generates at.
    pub height: usize,
}

/// Shares of the stream's own size tried once the steps are at one per stage.
const SIZE_FACTORS: [(usize, usize); 2] = [(3, 4), (1, 2)];

/// The levels, best first: the full steps at the stream's size, then one step fewer on the
/// costliest stage that has more than one, until every stage has one; then, with one step per
/// stage, smaller sizes (3/4 and 1/2 of each side, rounded down to `multiple`, the model's size
/// multiple, and at least `multiple`).
pub(crate) fn ladder(full: &[usize], size: (usize, usize), multiple: usize) -> Vec<QualityLevel> {
    let (width, height) = size;
    let level = |steps: &[usize], width, height| QualityLevel {
        steps: steps.to_vec(),
        width,
        height,
    };
    let mut levels = vec![level(full, width, height)];
    let mut steps = full.to_vec();
    while let Some(stage) = (0..steps.len()).rev().find(|&i| steps[i] > 1) {
        steps[stage] -= 1;
        levels.push(level(&steps, width, height));
    }
    let m = multiple.max(1);
    let side = |v: usize, (num, den): (usize, usize)| (v * num / den / m * m).max(m);
    for factor in SIZE_FACTORS {
        let (w, h) = (side(width, factor), side(height, factor));
        let last = levels.last().map_or(0, |l| l.width * l.height);
        if w * h < last {
            levels.push(level(&steps, w, h));
        }
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

/// The relative cost of a level against the full size: the steps' cost times the share of the
/// pixels (the DiT's tokens) it makes.
fn level_cost(level: &QualityLevel, full_area: usize) -> f32 {
    relative_cost(&level.steps) * (level.width * level.height) as f32 / full_area.max(1) as f32
}

/// One stream's position on the ladder.
#[derive(Debug, Clone)]
pub struct QualityController {
    policy: QualityPolicy,
    levels: Vec<QualityLevel>,
    full_area: usize,
    level: usize,
    calm: u32,
}

impl QualityController {
    /// A controller starting at the full `steps` and `size` (width, height); smaller sizes are
    /// multiples of `multiple`.
    pub fn new(
        policy: QualityPolicy,
        steps: &[usize],
        size: (usize, usize),
        multiple: usize,
    ) -> Self {
        Self {
            policy,
            levels: ladder(steps, size, multiple),
            full_area: size.0 * size.1,
            level: 0,
            calm: 0,
        }
    }

    /// The level in use.
    pub fn current(&self) -> &QualityLevel {
        &self.levels[self.level]
    }

    /// The rung (0 = full quality).
    #[cfg(test)]
    pub fn rung(&self) -> usize {
        self.level
    }

    /// Takes the time of the chunk of `frames` frames just made; returns the new level when it
    /// changes.
    pub fn observe(&mut self, seconds: f32, frames: usize) -> Option<QualityLevel> {
        let budget = (frames as f32 / self.policy.fps.max(f32::EPSILON)).max(f32::EPSILON);
        let area = self.full_area;
        let cost = level_cost(self.current(), area).max(f32::EPSILON);
        let per_cost = seconds / cost;
        let fits =
            |level: &QualityLevel, share: f32| per_cost * level_cost(level, area) <= share * budget;
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

    fn move_to(&mut self, level: usize) -> Option<QualityLevel> {
        if level == self.level {
            return None;
        }
        self.level = level;
        Some(self.current().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_takes_steps_off_the_last_stage_first() {
        let steps = |levels: Vec<QualityLevel>| -> Vec<Vec<usize>> {
            levels.into_iter().map(|l| l.steps).collect()
        };
        // One size (64 is already the model's smallest): the steps only.
        assert_eq!(
            steps(ladder(&[2, 2, 2], (64, 64), 64)),
            vec![vec![2, 2, 2], vec![2, 2, 1], vec![2, 1, 1], vec![1, 1, 1]]
        );
        assert_eq!(steps(ladder(&[1], (64, 64), 64)), vec![vec![1]]);
        assert_eq!(
            steps(ladder(&[3], (64, 64), 64)),
            vec![vec![3], vec![2], vec![1]]
        );
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
            let mut q = QualityController::new(QualityPolicy::at_fps(24.0), &full, (64, 64), 64);
            let mut buffered = 2.0 * chunk_seconds; // seconds of video in the ring
            let mut min_buffered = buffered;
            for _ in 0..12 {
                let took = seconds_for(&q.current().steps, speed);
                buffered = buffered - took + chunk_seconds;
                min_buffered = min_buffered.min(buffered);
                if adaptive {
                    q.observe(took, 33);
                }
            }
            (q, min_buffered)
        };
        let (q, min_buffered) = run(true, 1.0);
        assert!(q.rung() > 0, "the steps dropped");
        assert!(relative_cost(&q.current().steps) / relative_cost(&full) <= 0.9 / 1.5);
        assert!(min_buffered > 0.0, "no underrun: {min_buffered}");
        let (_, fixed) = run(false, 1.0);
        assert!(fixed < 0.0, "without adapting the ring runs dry: {fixed}");

        // A GPU three times as fast: after a slow start the quality climbs back to full.
        let mut q = QualityController::new(QualityPolicy::at_fps(24.0), &full, (64, 64), 64);
        q.observe(seconds_for(&full, 1.0), 33);
        assert!(q.rung() > 0);
        for _ in 0..20 {
            q.observe(seconds_for(&q.current().steps.clone(), 3.0), 33);
        }
        assert_eq!(
            q.current().steps,
            full,
            "back to full quality with headroom"
        );
    }

    #[test]
    fn steady_chunks_near_the_budget_do_not_oscillate() {
        let mut q = QualityController::new(QualityPolicy::at_fps(33.0), &[2, 2, 2], (64, 64), 64);
        assert_eq!(q.observe(1.2, 33).map(|l| l.steps), Some(vec![2, 2, 1]));
        // 0.8 s at [2, 2, 1] fits, and [2, 2, 2] would need ~1.2 s: stay.
        for _ in 0..10 {
            assert_eq!(q.observe(0.8, 33), None);
        }
        assert_eq!(q.rung(), 1);
    }

    /// Past one step per stage the size goes down (3/4, then 1/2 of each side, in multiples of
    /// the model's), and with headroom it comes back before the steps do.
    #[test]
    fn resolution_drops_after_the_steps_and_comes_back_first() {
        let levels = ladder(&[2, 2, 2], (640, 384), 64);
        let sizes: Vec<(usize, usize)> = levels.iter().map(|l| (l.width, l.height)).collect();
        assert_eq!(
            sizes,
            vec![
                (640, 384),
                (640, 384),
                (640, 384),
                (640, 384),
                (448, 256),
                (320, 192)
            ]
        );
        assert!(levels[4..].iter().all(|l| l.steps == vec![1, 1, 1]));
        // A GPU 4x too slow for the full quality ends at the smallest size.
        let full_seconds = 4.0 * 33.0 / 24.0;
        let mut q = QualityController::new(QualityPolicy::at_fps(24.0), &[2, 2, 2], (640, 384), 64);
        let area = 640.0 * 384.0;
        let seconds = |l: &QualityLevel| {
            full_seconds * relative_cost(&l.steps) / relative_cost(&[2, 2, 2])
                * (l.width * l.height) as f32
                / area
        };
        for _ in 0..3 {
            let took = seconds(q.current());
            q.observe(took, 33);
        }
        assert_eq!((q.current().width, q.current().height), (320, 192));
        // Then 8x faster: the size comes back first, then the steps.
        let mut seen = Vec::new();
        for _ in 0..40 {
            let took = seconds(q.current()) / 8.0;
            if let Some(level) = q.observe(took, 33) {
                seen.push(level);
            }
        }
        assert_eq!(seen.first().map(|l| (l.width, l.height)), Some((448, 256)));
        assert_eq!(q.current(), &levels[0], "back to full quality");
    }
}
