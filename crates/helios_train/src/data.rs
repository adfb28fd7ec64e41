//! The training clips: procedural face videos whose scene changes at chunk boundaries, captioned
//! with the plugin's own prompt template.
//!
//! A clip is [`CHUNKS`] chunks of [`FRAMES_PER_CHUNK`] frames (the 33 frames one 9-latent chunk
//! decodes to). Each chunk starts a script step: a new emotion, a new light now and then, a spoken
//! line or silence. The face eases into a new expression over the first frames of the
//! chunk, which is what the model must draw after a prompt switch. The caption of a chunk is the
//! scene in force at its first frame, written by [`helios_worker::prompt::compact_prompt`] with the
//! default [`PromptTemplate`].

use std::collections::BTreeSet;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use helios_faces::{
    Character, Clip, DEFAULT_SIZE, Emotion, LINES, Lighting, SceneText, ScriptStep, Speech,
};
use helios_model::vae::WanVae;
use helios_worker::prompt::{PromptTemplate, SceneFields, compact_prompt};
use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dit::LatentClip;
use crate::error::Result;

/// Frames of one chunk (9 latent frames).
pub const FRAMES_PER_CHUNK: usize = 33;
/// Chunks per training clip.
pub const CHUNKS: usize = 3;
/// Frame size.
pub const SIZE: u32 = DEFAULT_SIZE;

/// The prompt the plugin sends for a scene.
pub fn caption(scene: &SceneText) -> String {
    compact_prompt(
        &SceneFields {
            character: &scene.character,
            emotion: &scene.emotion,
            line: scene.line.as_deref(),
            lighting: &scene.lighting,
            mood: &scene.mood,
            framing: &scene.framing,
        },
        &PromptTemplate::default(),
    )
}

/// One training clip: its frames per chunk and each chunk's caption.
#[derive(Debug, Clone)]
pub struct TrainingClip {
    /// The clip's seed.
    pub seed: u64,
    /// [`CHUNKS`] runs of [`FRAMES_PER_CHUNK`] frames.
    pub chunks: Vec<Vec<RgbImage>>,
    /// The caption of each chunk.
    pub captions: Vec<String>,
}

/// The script of the clip of `seed` (a step at each chunk start) and each chunk's caption,
/// without drawing a frame.
pub fn training_script(seed: u64) -> (Vec<ScriptStep<'static>>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7e1f_a11c_0de5_eed5);
    let lightings = Lighting::all();
    let mut emotion = Emotion::ALL[rng.random_range(0..Emotion::ALL.len())];
    let mut lighting = lightings[rng.random_range(0..lightings.len())];
    let description = Character::from_seed(seed).description();
    let mut script = Vec::with_capacity(CHUNKS);
    let mut captions = Vec::with_capacity(CHUNKS);
    for chunk in 0..CHUNKS {
        if chunk > 0 {
            // A new emotion at every chunk start: a chunk's expression is never its history's,
            // so the model learns it from the prompt.
            let others: Vec<Emotion> = Emotion::ALL.into_iter().filter(|e| *e != emotion).collect();
            emotion = others[rng.random_range(0..others.len())];
            if rng.random_bool(0.2) {
                lighting = lightings[rng.random_range(0..lightings.len())];
            }
        }
        let line = rng
            .random_bool(0.5)
            .then(|| LINES[rng.random_range(0..LINES.len())]);
        script.push((chunk * FRAMES_PER_CHUNK, emotion, lighting, line));
        captions.push(caption(&SceneText::new(
            &description,
            emotion,
            line,
            lighting,
        )));
    }
    (script, captions)
}

/// The clip of `seed`: reproducible, a scene change at each chunk start, a spoken line mouthed
/// syllable by syllable (the shipped model's data).
pub fn training_clip(seed: u64) -> TrainingClip {
    training_clip_speaking(seed, Speech::LipSync)
}

/// [`training_clip`] with the mouth moving as `speech` says while a line is spoken.
pub fn training_clip_speaking(seed: u64, speech: Speech) -> TrainingClip {
    let (script, captions) = training_script(seed);
    let clip = Clip::with_script_speaking(seed, &script, CHUNKS * FRAMES_PER_CHUNK, SIZE, speech);
    let chunks = clip
        .frames
        .chunks(FRAMES_PER_CHUNK)
        .map(<[RgbImage]>::to_vec)
        .collect();
    TrainingClip {
        seed,
        chunks,
        captions,
    }
}

/// Every word the captions can contain (the demo tokenizer has one piece per word): those of
/// `probe` clips' captions and of every emotion, lighting and line.
pub fn caption_words(probe: usize) -> BTreeSet<String> {
    let mut texts: Vec<String> = Vec::new();
    for seed in 0..probe as u64 {
        texts.extend(training_script(seed).1);
    }
    for emotion in Emotion::ALL {
        for lighting in Lighting::all() {
            for line in LINES.iter().map(|l| Some(*l)).chain([None]) {
                texts.push(caption(&SceneText::new("", emotion, line, lighting)));
            }
        }
    }
    for seed in 0..512 {
        texts.push(Character::from_seed(seed).description());
    }
    let mut words = BTreeSet::new();
    for text in &texts {
        for word in text.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-') {
            let word = word.trim_matches(|c: char| c == '\'' || c == '-');
            if word.chars().count() > 1 {
                words.insert(word.to_string());
            }
        }
    }
    words
}

/// Frames as a video tensor `[1, 3, t, h, w]` in `[-1, 1]`.
pub fn video_tensor<B: Backend>(frames: &[RgbImage], device: &B::Device) -> Tensor<B, 5> {
    let (w, h) = frames
        .first()
        .map_or((0, 0), |f| (f.width() as usize, f.height() as usize));
    let t = frames.len();
    let mut values = vec![0.0f32; 3 * t * h * w];
    for (i, frame) in frames.iter().enumerate() {
        for (x, y, p) in frame.enumerate_pixels() {
            for c in 0..3 {
                values[((c * t + i) * h + y as usize) * w + x as usize] =
                    p.0[c] as f32 / 127.5 - 1.0;
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 3, t, h, w]), device)
}

/// The picture an image start of the clip of `seed` begins from: its character, neutral and
/// silent (the portrait a game renders of its NPC), in the clip's first light or, half of the
/// time, in another one. The prompt then says how the face moves from it, and in which light.
pub fn portrait(seed: u64) -> RgbImage {
    let (script, _) = training_script(seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9a7e_11ed_f00d_cafe);
    let lightings = Lighting::all();
    let lighting = if rng.random_bool(0.5) {
        script.first().map_or(Lighting::default(), |s| s.2)
    } else {
        lightings[rng.random_range(0..lightings.len())]
    };
    Clip::portrait(seed, lighting, SIZE)
}

/// The DiT's view of a clip: the normalised latents of its chunks (each chunk encoded as the
/// pipeline encodes a window) and of its [`portrait`] as an image start conditions on it (alone,
/// and held still for a chunk).
pub fn encode_clip<B: Backend>(
    vae: &WanVae<B>,
    clip: &TrainingClip,
    device: &B::Device,
) -> Result<LatentClip<B>> {
    let encode = |frames: &[RgbImage]| -> Result<Tensor<B, 5>> {
        let posterior = vae.encode(video_tensor::<B>(frames, device))?;
        Ok(vae.normalize(posterior.mode())?)
    };
    let mut latents = Vec::with_capacity(clip.chunks.len());
    for frames in &clip.chunks {
        latents.push(encode(frames)?);
    }
    let portrait = portrait(clip.seed);
    let image = encode(std::slice::from_ref(&portrait))?;
    let still = encode(&vec![portrait; FRAMES_PER_CHUNK])?;
    let t = still.dims()[2];
    Ok(LatentClip {
        latents: Tensor::cat(latents, 2),
        image,
        still: still.narrow(2, t - 1, 1),
        captions: clip.captions.clone(),
    })
}
