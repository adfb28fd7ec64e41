//! Reproducible animated clips: expression changes, blinks, speech and head motion.

use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::character::Character;
use crate::pose::FacePose;
use crate::render::render;
use crate::scene::{Emotion, LINES, Lighting, SceneText};

/// Frames per second of every clip.
pub const FPS: f32 = 24.0;
/// The default frame size (128 x 128).
pub const DEFAULT_SIZE: u32 = 128;

/// One step of a script: from this frame on, this emotion, lighting and spoken line (if any).
pub type ScriptStep<'a> = (usize, Emotion, Lighting, Option<&'a str>);

/// What is in force at one frame of a clip.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameInfo {
    /// The scene in words (the caption of any chunk that starts here).
    pub scene: SceneText,
    /// The emotion in force (the face eases towards it for a few frames after a change).
    pub emotion: Emotion,
    /// Whether the character speaks.
    pub speaking: bool,
    /// The lighting in force.
    pub lighting: Lighting,
    /// The exact pose that was drawn.
    pub pose: FacePose,
}

/// An animated clip and the scene of each of its frames.
#[derive(Clone, Debug)]
pub struct Clip {
    /// The seed it was made from.
    pub seed: u64,
    /// The character shown.
    pub character: Character,
    /// The frames, in order.
    pub frames: Vec<RgbImage>,
    /// Per frame, what is in force.
    pub info: Vec<FrameInfo>,
}

struct Segment {
    start: usize,
    emotion: Emotion,
    lighting: Lighting,
    line: Option<String>,
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[rng.random_range(0..items.len())])
    }
}

fn random_lighting(rng: &mut StdRng) -> Lighting {
    pick(rng, &Lighting::all()).unwrap_or_default()
}

fn random_line(rng: &mut StdRng) -> Option<String> {
    if rng.random_bool(0.5) {
        pick(rng, &LINES).map(str::to_string)
    } else {
        None
    }
}

/// Smoothstep easing on 0..1.
fn ease(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

impl Clip {
    /// A clip of `frames` frames of `size` x `size`, reproducible from `seed`: a character, a
    /// starting scene, and at random moments a new emotion (eased over 8 to 12 frames), sometimes a
    /// new line or lighting; blinks every 2 to 4 seconds, syllables while speaking, and small head
    /// motion.
    pub fn generate(seed: u64, frames: usize, size: u32) -> Clip {
        let mut rng = StdRng::seed_from_u64(seed);
        let character = Character::from_seed(rng.random());
        let mut segments = Vec::new();
        let mut emotion = pick(&mut rng, &Emotion::ALL).unwrap_or(Emotion::Neutral);
        let mut lighting = random_lighting(&mut rng);
        let mut start = 0;
        while start < frames.max(1) {
            segments.push(Segment {
                start,
                emotion,
                lighting,
                line: random_line(&mut rng),
            });
            start += rng.random_range(30..80);
            let others: Vec<Emotion> = Emotion::ALL.into_iter().filter(|e| *e != emotion).collect();
            emotion = pick(&mut rng, &others).unwrap_or(emotion);
            if rng.random_bool(0.2) {
                lighting = random_lighting(&mut rng);
            }
        }
        animate(seed, character, &segments, frames, size)
    }

    /// A clip that follows `script` (steps sorted by their start frame; before the first step the
    /// face is neutral in the default light). The character, blinks and head motion come from
    /// `seed`.
    pub fn with_script(seed: u64, script: &[ScriptStep<'_>], frames: usize, size: u32) -> Clip {
        let mut segments: Vec<Segment> = script
            .iter()
            .map(|&(start, emotion, lighting, line)| Segment {
                start,
                emotion,
                lighting,
                line: line.map(str::to_string),
            })
            .collect();
        segments.sort_by_key(|s| s.start);
        if segments.first().is_none_or(|s| s.start > 0) {
            segments.insert(
                0,
                Segment {
                    start: 0,
                    emotion: Emotion::Neutral,
                    lighting: Lighting::default(),
                    line: None,
                },
            );
        }
        animate(seed, Character::from_seed(seed), &segments, frames, size)
    }

    /// The neutral, silent portrait of character `seed` in `lighting` (the first frame of a clip
    /// that starts so): the picture a game renders of its NPC for a stream to start from.
    pub fn portrait(seed: u64, lighting: Lighting, size: u32) -> RgbImage {
        let clip = Clip::with_script(seed, &[(0, Emotion::Neutral, lighting, None)], 1, size);
        clip.frames
            .into_iter()
            .next()
            .unwrap_or_else(|| RgbImage::new(size, size))
    }

    /// The number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the clip has no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The scene in force at a frame (the caption of a chunk starting there).
    pub fn scene_at(&self, frame: usize) -> Option<&SceneText> {
        self.info.get(frame).map(|i| &i.scene)
    }
}

/// Draws the clip of `segments` (sorted, the first at frame 0).
fn animate(
    seed: u64,
    character: Character,
    segments: &[Segment],
    frames: usize,
    size: u32,
) -> Clip {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
    let description = character.description();
    // Head motion: a few slow sines.
    let phases: [f32; 4] = std::array::from_fn(|_| rng.random_range(0.0..std::f32::consts::TAU));
    let periods: [f32; 4] = std::array::from_fn(|_| rng.random_range(40.0..110.0));
    let wave = |i: usize, f: f32| (f / periods[i] * std::f32::consts::TAU + phases[i]).sin();

    let mut out = Clip {
        seed,
        character,
        frames: Vec::with_capacity(frames),
        info: Vec::with_capacity(frames),
    };
    let mut seg_index = 0;
    let first = segments.first();
    let mut from = first
        .map(|s| FacePose::target(s.emotion, s.lighting))
        .unwrap_or_default();
    let mut to = from;
    let mut t0 = 0usize;
    let mut dur = 1usize;
    let mut next_blink = rng.random_range(12..72usize);
    let mut syllable_start = 0usize;
    let mut syllable_len = 6usize;
    let mut syllable_amp = 0.6f32;
    const BLINK: [f32; 5] = [0.6, 0.15, 0.05, 0.3, 0.75];

    for f in 0..frames {
        // A new segment starts: ease from the current pose to its target.
        while seg_index + 1 < segments.len() && segments[seg_index + 1].start <= f {
            seg_index += 1;
            let current = from.lerp(&to, ease((f - t0) as f32 / dur as f32));
            let seg = &segments[seg_index];
            from = current;
            to = FacePose::target(seg.emotion, seg.lighting);
            t0 = f;
            dur = rng.random_range(8..=12);
        }
        let Some(seg) = segments.get(seg_index) else {
            break;
        };
        let mut pose = from.lerp(&to, ease((f - t0) as f32 / dur as f32));

        // Speech: syllables of 5 to 7 frames, sometimes a short pause.
        let speaking = seg.line.is_some();
        if f >= syllable_start + syllable_len {
            syllable_start = f;
            syllable_len = rng.random_range(5..=7);
            syllable_amp = if rng.random_bool(0.15) {
                0.0
            } else {
                rng.random_range(0.35..0.8)
            };
        }
        if speaking {
            let k = (f - syllable_start) as f32 / syllable_len as f32;
            let open = syllable_amp * (k * std::f32::consts::PI).sin();
            pose.mouth_open += open * (1.05 - pose.mouth_open).max(0.0);
        }

        // Blinks every 2 to 4 seconds.
        if f >= next_blink {
            let k = f - next_blink;
            if let Some(b) = BLINK.get(k) {
                pose.eye_open *= b;
            } else {
                next_blink = f + rng.random_range(48..96);
            }
        }

        pose.head_x = 0.015 * wave(0, f as f32) + 0.006 * wave(1, f as f32);
        pose.head_y = 0.008 * wave(2, f as f32);
        pose.tilt = 0.03 * wave(3, f as f32);

        out.frames.push(render(&out.character, &pose, size));
        out.info.push(FrameInfo {
            scene: SceneText::new(&description, seg.emotion, seg.line.as_deref(), seg.lighting),
            emotion: seg.emotion,
            speaking,
            lighting: seg.lighting,
            pose,
        });
    }
    out
}
