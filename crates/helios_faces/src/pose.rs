//! The continuous parameters of a rendered face.

use crate::scene::{Emotion, Lighting, Tint};

/// Continuous face and light parameters; [`FacePose::target`] gives each emotion's pose and
/// poses interpolate linearly ([`FacePose::lerp`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FacePose {
    /// Mouth curve: 1 a big smile, 0 flat, -1 a frown.
    pub mouth_curve: f32,
    /// Mouth opening: 0 closed, 1 wide open (the jaw drops the lower lip).
    pub mouth_open: f32,
    /// Mouth width relative to a neutral mouth.
    pub mouth_width: f32,
    /// Amplitude of a wavy (tight, uneasy) mouth line.
    pub mouth_wave: f32,
    /// Brow angle: 1 inner ends down (angry V), -1 inner ends up (sad, worried).
    pub brow_angle: f32,
    /// Brow height: 1 raised, 0 rest, negative lowered.
    pub brow_raise: f32,
    /// Eye opening: 0 closed, 1 open, above 1 wide open.
    pub eye_open: f32,
    /// Head offset right, as a fraction of the image size.
    pub head_x: f32,
    /// Head offset down, as a fraction of the image size.
    pub head_y: f32,
    /// Head tilt in radians (clockwise on screen).
    pub tilt: f32,
    /// Multiplier on each colour channel of the light.
    pub light_tint: [f32; 3],
    /// Overall light intensity (1 normal, 0.6 dim).
    pub light_intensity: f32,
    /// Horizontal light direction: -1 from the left, 0 front, 1 from the right.
    pub light_direction: f32,
}

impl Default for FacePose {
    fn default() -> Self {
        FacePose::target(Emotion::Neutral, Lighting::default())
    }
}

fn mix(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

impl FacePose {
    /// The resting pose of an emotion under a lighting (head centred, eyes open, mouth at rest).
    pub fn target(emotion: Emotion, lighting: Lighting) -> Self {
        // (curve, open, width, wave, brow angle, brow raise, eye open)
        let (mouth_curve, mouth_open, mouth_width, mouth_wave, brow_angle, brow_raise, eye_open) =
            match emotion {
                Emotion::Neutral => (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
                Emotion::Happy => (1.0, 0.25, 1.15, 0.0, 0.0, 0.35, 0.85),
                Emotion::Sad => (-1.0, 0.0, 0.9, 0.0, -0.9, 0.0, 0.7),
                Emotion::Angry => (-0.35, 0.0, 0.9, 0.0, 1.0, -0.4, 0.72),
                Emotion::Surprised => (0.0, 1.0, 0.55, 0.0, -0.1, 1.0, 1.3),
                Emotion::Worried => (-0.35, 0.05, 0.75, 1.0, -0.7, 0.6, 1.05),
            };
        let light_tint = match lighting.tint {
            Tint::Warm => [1.18, 0.92, 0.66],
            Tint::Cold => [0.72, 0.88, 1.22],
            Tint::Neutral => [1.0, 1.0, 1.0],
        };
        FacePose {
            mouth_curve,
            mouth_open,
            mouth_width,
            mouth_wave,
            brow_angle,
            brow_raise,
            eye_open,
            head_x: 0.0,
            head_y: 0.0,
            tilt: 0.0,
            light_tint,
            light_intensity: if lighting.dim { 0.6 } else { 1.0 },
            light_direction: lighting.direction.signum(),
        }
    }

    /// Linear interpolation: `t = 0` gives `self`, `t = 1` gives `other`.
    pub fn lerp(&self, other: &FacePose, t: f32) -> FacePose {
        FacePose {
            mouth_curve: mix(self.mouth_curve, other.mouth_curve, t),
            mouth_open: mix(self.mouth_open, other.mouth_open, t),
            mouth_width: mix(self.mouth_width, other.mouth_width, t),
            mouth_wave: mix(self.mouth_wave, other.mouth_wave, t),
            brow_angle: mix(self.brow_angle, other.brow_angle, t),
            brow_raise: mix(self.brow_raise, other.brow_raise, t),
            eye_open: mix(self.eye_open, other.eye_open, t),
            head_x: mix(self.head_x, other.head_x, t),
            head_y: mix(self.head_y, other.head_y, t),
            tilt: mix(self.tilt, other.tilt, t),
            light_tint: [
                mix(self.light_tint[0], other.light_tint[0], t),
                mix(self.light_tint[1], other.light_tint[1], t),
                mix(self.light_tint[2], other.light_tint[2], t),
            ],
            light_intensity: mix(self.light_intensity, other.light_intensity, t),
            light_direction: mix(self.light_direction, other.light_direction, t),
        }
    }
}
