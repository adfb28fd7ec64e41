//! An emotion classifier calibrated on the renderer alone.
//!
//! Each emotion is modelled by the mean and spread of a few measurements ([`crate::measure()`])
//! over rendered samples of random characters, lightings, head positions, speech and blinks,
//! blurred and noised like a model's frames; an image gets the emotion of highest Gaussian
//! likelihood. Calibration is deterministic in its seed.

use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::character::Character;
use crate::clip::DEFAULT_SIZE;
use crate::measure::{FaceMeasurement, degrade, measure};
use crate::pose::FacePose;
use crate::render::render;
use crate::scene::{Emotion, Lighting};

/// The number of features the classifier reads.
const FEATURES: usize = 8;

fn features(m: &FaceMeasurement) -> [f32; FEATURES] {
    [
        m.mouth_curve,
        m.mouth_height,
        m.mouth_width,
        m.mouth_wave,
        m.brow_slope,
        m.brow_height - m.eye_center,
        m.brow_height,
        m.eye_open,
    ]
}

/// A rendered, augmented sample of `emotion`: a random character, lighting, head offset and tilt,
/// slightly varied expression, sometimes mid-syllable or mid-blink, then a random blur (up to 1.3
/// pixels at 128) and noise (up to 0.03). The same `rng` state gives the same image.
pub fn augmented_sample(rng: &mut StdRng, emotion: Emotion, size: u32) -> RgbImage {
    let character = Character::from_seed(rng.random());
    let lightings = Lighting::all();
    let lighting = lightings[rng.random_range(0..lightings.len())];
    let mut pose = FacePose::target(emotion, lighting);
    let other = Emotion::ALL[rng.random_range(0..Emotion::ALL.len())];
    pose = pose.lerp(
        &FacePose::target(other, lighting),
        rng.random_range(0.0..0.12),
    );
    pose.mouth_curve += rng.random_range(-0.08..0.08);
    pose.brow_angle += rng.random_range(-0.08..0.08);
    pose.brow_raise += rng.random_range(-0.08..0.08);
    pose.eye_open *= rng.random_range(0.92..1.05);
    if rng.random_bool(0.35) {
        let open = rng.random_range(0.0..0.8);
        pose.mouth_open += open * (1.05 - pose.mouth_open).max(0.0);
    }
    if rng.random_bool(0.06) {
        pose.eye_open *= rng.random_range(0.05..0.6);
    }
    pose.head_x = rng.random_range(-0.021..0.021);
    pose.head_y = rng.random_range(-0.008..0.008);
    pose.tilt = rng.random_range(-0.03..0.03);
    let img = render(&character, &pose, size);
    let scale = size as f32 / DEFAULT_SIZE as f32;
    let sigma = rng.random_range(0.0..1.3) * scale;
    let noise = rng.random_range(0.0..0.03);
    degrade(&img, sigma, noise, rng)
}

/// Per-emotion Gaussian models of the features (nearest centroid in standardised units, with a
/// per-emotion spread).
#[derive(Clone, Debug, PartialEq)]
pub struct EmotionClassifier {
    mean: [[f32; FEATURES]; 6],
    std: [[f32; FEATURES]; 6],
}

impl EmotionClassifier {
    /// Calibrates on 120 augmented 128x128 samples per emotion drawn from `seed`.
    pub fn calibrate(seed: u64) -> Self {
        Self::calibrate_with(seed, 120, DEFAULT_SIZE)
    }

    /// Calibrates on `per_emotion` augmented samples per emotion of `size` x `size`.
    pub fn calibrate_with(seed: u64, per_emotion: usize, size: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let per_emotion = per_emotion.max(2);
        let mut samples: Vec<Vec<[f32; FEATURES]>> = vec![Vec::new(); 6];
        for _ in 0..per_emotion {
            for emotion in Emotion::ALL {
                let img = augmented_sample(&mut rng, emotion, size);
                samples[emotion.index()].push(features(&measure(&img)));
            }
        }
        let mut mean = [[0.0; FEATURES]; 6];
        let mut std = [[0.0; FEATURES]; 6];
        let mut pooled = [0.0f32; FEATURES];
        for (c, rows) in samples.iter().enumerate() {
            let n = rows.len() as f32;
            for f in 0..FEATURES {
                let mu = rows.iter().map(|r| r[f]).sum::<f32>() / n;
                let var = rows.iter().map(|r| (r[f] - mu).powi(2)).sum::<f32>() / (n - 1.0);
                mean[c][f] = mu;
                std[c][f] = var.sqrt();
                pooled[f] += var / 6.0;
            }
        }
        // Floor each spread at a share of the pooled spread, so no feature is trusted blindly.
        for row in &mut std {
            for (s, p) in row.iter_mut().zip(pooled) {
                *s = s.max(0.35 * p.sqrt()).max(1e-5);
            }
        }
        EmotionClassifier { mean, std }
    }

    /// Log-likelihood of each emotion, in [`Emotion::ALL`] order (higher is more likely).
    pub fn scores(&self, img: &RgbImage) -> [(Emotion, f32); 6] {
        let x = features(&measure(img));
        Emotion::ALL.map(|e| {
            let c = e.index();
            let mut ll = 0.0;
            for (f, xf) in x.iter().enumerate() {
                let z = (xf - self.mean[c][f]) / self.std[c][f];
                ll -= 0.5 * z * z + self.std[c][f].ln();
            }
            (e, ll)
        })
    }

    /// The most likely emotion of a run of frames of one face: the scores summed over the frames
    /// (a blink or a syllable in one frame does not decide), [`Emotion::Neutral`] for no frames.
    pub fn classify_frames<'a>(&self, frames: impl IntoIterator<Item = &'a RgbImage>) -> Emotion {
        let mut total = [0.0f32; 6];
        for frame in frames {
            for (t, (_, s)) in total.iter_mut().zip(self.scores(frame)) {
                *t += s;
            }
        }
        let best = (0..6).fold(0, |b, i| if total[i] > total[b] { i } else { b });
        Emotion::ALL[best]
    }

    /// The most likely emotion of a face image.
    pub fn classify(&self, img: &RgbImage) -> Emotion {
        self.scores(img)
            .into_iter()
            .fold((Emotion::Neutral, f32::NEG_INFINITY), |best, (e, s)| {
                if s > best.1 { (e, s) } else { best }
            })
            .0
    }
}
