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

/// Frames of one syllable of a spoken line: two latent frames (the VAE keeps one latent frame per
/// four video frames), so that each syllable's opening and closing survive the VAE.
pub const SYLLABLE_FRAMES: usize = 8;

/// One step of a script: from this frame on, this emotion, lighting and spoken line (if any).
pub type ScriptStep<'a> = (usize, Emotion, Lighting, Option<&'a str>);

/// How the mouth moves while the character speaks a line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Speech {
    /// Syllables of 5 to 7 frames of random openings, sometimes a short pause, whatever the line
    /// (the data of the embedded demo model).
    #[default]
    Random,
    /// Lip-synced: the line's own syllables ([`syllable_beats`]), [`SYLLABLE_FRAMES`] frames each,
    /// from the start of the segment that has the line ([`mouth_beat`]), so what the mouth does
    /// follows from what is said and when.
    LipSync,
}

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

/// How far the mouth opens on each beat of a spoken `line`: one beat per syllable (a word's vowel
/// groups, a final silent `e` not counted, at least one per word), wider for open vowels, and a
/// closed beat after each punctuation mark.
pub fn syllable_beats(line: &str) -> Vec<f32> {
    let is_vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let openness = |c: char| match c {
        'a' => 0.8,
        'o' => 0.7,
        'e' => 0.55,
        'u' => 0.45,
        _ => 0.4,
    };
    let mut beats = Vec::new();
    for word in line.split_whitespace() {
        let letters: Vec<char> = word
            .chars()
            .filter(|c| c.is_alphabetic())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        // The first vowel of each vowel group.
        let mut groups: Vec<char> = Vec::new();
        let mut after_vowel = false;
        for &c in &letters {
            let vowel = is_vowel(c);
            if vowel && !after_vowel {
                groups.push(c);
            }
            after_vowel = vowel;
        }
        let n = letters.len();
        let silent_e = n >= 3
            && letters[n - 1] == 'e'
            && !is_vowel(letters[n - 2])
            && letters[n - 2] != 'l'
            && groups.len() > 1;
        if silent_e {
            groups.pop();
        }
        if groups.is_empty() && !letters.is_empty() {
            groups.push('e');
        }
        beats.extend(groups.into_iter().map(openness));
        if word.ends_with(|c: char| c.is_ascii_punctuation()) {
            beats.push(0.0);
        }
    }
    beats
}

/// How far the mouth opens `frame` frames after the character began to say a line of `beats`
/// ([`syllable_beats`]): each beat opens and closes it once over [`SYLLABLE_FRAMES`] frames, and
/// after a closed beat the line is said again.
pub fn mouth_beat(beats: &[f32], frame: usize) -> f32 {
    if beats.is_empty() {
        return 0.0;
    }
    let beat = (frame / SYLLABLE_FRAMES) % (beats.len() + 1);
    let k = (frame % SYLLABLE_FRAMES) as f32 / SYLLABLE_FRAMES as f32;
    beats.get(beat).copied().unwrap_or(0.0) * (k * std::f32::consts::PI).sin()
}

/// Smoothstep easing on 0..1.
fn ease(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

impl Clip {
    /// A clip of `frames` frames of `size` x `size`, reproducible from `seed`: a character, a
    /// starting scene, and at random moments a new emotion (eased over 8 to 12 frames), sometimes a
    /// new line or lighting; blinks every 2 to 4 seconds, syllables while speaking
    /// ([`Speech::Random`]), and small head motion.
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
        animate(seed, character, &segments, frames, size, Speech::Random)
    }

    /// A clip that follows `script` (steps sorted by their start frame; before the first step the
    /// face is neutral in the default light). The character, blinks and head motion come from
    /// `seed`.
    pub fn with_script(seed: u64, script: &[ScriptStep<'_>], frames: usize, size: u32) -> Clip {
        Clip::with_script_speaking(seed, script, frames, size, Speech::Random)
    }

    /// [`Clip::with_script`] with the mouth moving as `speech` says while a line is spoken.
    pub fn with_script_speaking(
        seed: u64,
        script: &[ScriptStep<'_>],
        frames: usize,
        size: u32,
        speech: Speech,
    ) -> Clip {
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
        animate(
            seed,
            Character::from_seed(seed),
            &segments,
            frames,
            size,
            speech,
        )
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
    speech: Speech,
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
    // Each segment's syllables, when the mouth follows them.
    let beats: Vec<Vec<f32>> = match speech {
        Speech::Random => Vec::new(),
        Speech::LipSync => segments
            .iter()
            .map(|s| s.line.as_deref().map(syllable_beats).unwrap_or_default())
            .collect(),
    };
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

        // Speech: random syllables of 5 to 7 frames, sometimes a short pause (drawn either way,
        // so that the blinks are the same whatever the speech), or the line's own syllables.
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
            let open = match speech {
                Speech::Random => {
                    let k = (f - syllable_start) as f32 / syllable_len as f32;
                    syllable_amp * (k * std::f32::consts::PI).sin()
                }
                Speech::LipSync => beats
                    .get(seg_index)
                    .map_or(0.0, |beats| mouth_beat(beats, f.saturating_sub(seg.start))),
            };
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

#[cfg(test)]
mod tests {
    use super::{Clip, SYLLABLE_FRAMES, Speech, mouth_beat, syllable_beats};
    use crate::scene::{Emotion, LINES, Lighting};

    #[test]
    fn a_lip_synced_clip_mouths_its_line_and_blinks_as_a_random_one() {
        let line = LINES[0];
        let script = [(0, Emotion::Neutral, Lighting::default(), Some(line))];
        let synced = Clip::with_script_speaking(3, &script, 40, 32, Speech::LipSync);
        let random = Clip::with_script_speaking(3, &script, 40, 32, Speech::Random);
        let beats = syllable_beats(line);
        for (f, info) in synced.info.iter().enumerate() {
            // A neutral mouth is closed: what opens it is the line.
            let expected = 1.05 * mouth_beat(&beats, f);
            assert!(
                (info.pose.mouth_open - expected).abs() < 1e-5,
                "frame {f}: {} vs {expected}",
                info.pose.mouth_open
            );
            assert_eq!(
                info.pose.eye_open, random.info[f].pose.eye_open,
                "frame {f}"
            );
        }
        assert_ne!(synced.info[4].pose, random.info[4].pose);
    }

    #[test]
    fn a_line_has_a_beat_per_syllable_and_a_closed_one_after_punctuation() {
        // wel-come, tra-vel-ler.
        let beats = syllable_beats("Welcome, traveller.");
        assert_eq!(beats.len(), 2 + 1 + 3 + 1, "{beats:?}");
        assert_eq!(beats[2], 0.0);
        assert_eq!(beats[6], 0.0);
        assert!(beats[..2].iter().all(|&b| b > 0.0));
        // "Have" has one syllable (a silent e), "the" and "cat" one each.
        assert_eq!(syllable_beats("Have the cat").len(), 3);
        assert!(syllable_beats("").is_empty());
    }

    #[test]
    fn the_mouth_opens_and_closes_once_per_beat_and_the_line_repeats() {
        let beats = [0.8, 0.0, 0.4];
        let frames: Vec<f32> = (0..4 * SYLLABLE_FRAMES)
            .map(|f| mouth_beat(&beats, f))
            .collect();
        let peak = |beat: usize| {
            frames[beat * SYLLABLE_FRAMES..(beat + 1) * SYLLABLE_FRAMES]
                .iter()
                .cloned()
                .fold(0.0f32, f32::max)
        };
        assert!((peak(0) - 0.8).abs() < 1e-6);
        assert_eq!(peak(1), 0.0);
        assert!((peak(2) - 0.4).abs() < 1e-6);
        // A closed beat between one saying of the line and the next.
        assert_eq!(peak(3), 0.0);
        assert_eq!(frames[0], 0.0);
        assert_eq!(mouth_beat(&beats, 4 * SYLLABLE_FRAMES), 0.0);
        assert!(mouth_beat(&beats, 4 * SYLLABLE_FRAMES + 4) > 0.7);
        assert_eq!(mouth_beat(&[], 3), 0.0);
    }
}
