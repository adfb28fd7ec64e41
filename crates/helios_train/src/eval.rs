//! Reading a demo checkpoint's videos back with the measurements `helios_faces` calibrates on its
//! renderer (the emotion classifier, mouth motion, the light's warmth, identity): what the meaning
//! tests and the `demo_eval` example check.
//!
//! A stream is asked for the way the plugin asks: the prompt is the plugin's template over a
//! scene, and the stream starts from the character's neutral portrait in the scene's light (the
//! picture a game renders of its NPC), or from the prompt alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::NdArray;
use burn::tensor::Tensor;
use helios_faces::{Character, Clip, Emotion, EmotionClassifier, Lighting, SceneText};
use helios_model::config::{SchedulerConfig, read_json};
use helios_model::dit::HeliosTransformer3DModel;
use helios_model::pipeline::{
    ChunkStream, Conditioning, GenerationParams, HeliosPipeline, HistoryLayout, StreamRequest,
};
use helios_model::scheduler::FlowScheduler;
use helios_model::text::TextEncoder;
use helios_model::vae::WanVae;
use image::RgbImage;

use crate::TrainBackend;
use crate::data::{SIZE, caption};
use crate::dit::{DitTraining, LatentClip, PointLoss};
use crate::error::Result;

/// The backend the checks run on (the CPU, as the tests do).
pub type EvalBackend = NdArray<f32>;

/// The parts of a demo checkpoint the DiT diagnostics read (`dit_points`, `prompt_gap`): its
/// text encoder and VAE, and its DiT on the training backend with its scheduler.
pub struct DitParts {
    /// The text encoder.
    pub text: TextEncoder<EvalBackend>,
    /// The VAE.
    pub vae: WanVae<EvalBackend>,
    /// The scheduler the checkpoint declares.
    pub scheduler: FlowScheduler,
    /// The DiT.
    pub model: HeliosTransformer3DModel<TrainBackend>,
}

impl DitParts {
    /// Loads the parts of the checkpoint folder `dir`.
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        let device = Default::default();
        let scheduler_config: SchedulerConfig =
            read_json(&dir.join("scheduler/scheduler_config.json"))?;
        Ok(Self {
            text: TextEncoder::load(dir, &device)?,
            vae: WanVae::load(&dir.join("vae"), &device)?,
            scheduler: FlowScheduler::new(&scheduler_config)?,
            model: HeliosTransformer3DModel::load(&dir.join("transformer"), &device, &mut |_| {})?,
        })
    }

    /// The DiT's loss at each point of the distilled sampler it was trained for, on the first
    /// chunk of each of `clips` (`first_chunk`) or on their later chunks, in streams started from
    /// the character's portrait (`image`) or from the prompt alone, with each chunk's prompt
    /// embedding looked up by its caption in `embeddings`. The noise is the same on every call,
    /// so two calls that differ only in `embeddings` compare the prompts.
    pub fn point_losses(
        &self,
        clips: &[LatentClip<EvalBackend>],
        embeddings: &HashMap<String, Tensor<EvalBackend, 3>>,
        first_chunk: bool,
        image: bool,
    ) -> Result<Vec<PointLoss>> {
        crate::dit::point_losses::<TrainBackend>(
            &self.model,
            self.model.config(),
            &self.scheduler,
            HistoryLayout::default(),
            clips,
            embeddings,
            DitTraining::default().steps_per_stage,
            first_chunk,
            image,
            11,
            &Default::default(),
        )
    }
}

/// A scene of the demo model's world: a character (a `helios_faces` seed), an emotion, a line
/// or silence, a light.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scene {
    /// The character's seed.
    pub character: u64,
    /// The emotion.
    pub emotion: Emotion,
    /// The line being spoken, if any.
    pub line: Option<&'static str>,
    /// The light.
    pub lighting: Lighting,
}

impl Scene {
    /// The prompt the plugin sends for this scene.
    pub fn prompt(&self) -> String {
        let who = Character::from_seed(self.character).description();
        caption(&SceneText::new(
            &who,
            self.emotion,
            self.line,
            self.lighting,
        ))
    }

    /// The character's neutral, silent portrait in this scene's light.
    pub fn portrait(&self) -> RgbImage {
        Clip::portrait(self.character, self.lighting, SIZE)
    }
}

/// A loaded demo checkpoint.
pub struct DemoModel {
    pipeline: Arc<HeliosPipeline<EvalBackend>>,
}

impl DemoModel {
    /// Loads the checkpoint folder `dir`.
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        let pipeline = HeliosPipeline::load(dir, &Default::default())?;
        Ok(Self {
            pipeline: Arc::new(pipeline),
        })
    }

    /// A stream of `scene` with noise seed `seed`, at the checkpoint's own steps, starting from
    /// the scene's portrait when `from_portrait` (else from the prompt alone).
    pub fn stream(
        &self,
        scene: &Scene,
        seed: u64,
        from_portrait: bool,
    ) -> Result<ChunkStream<EvalBackend>> {
        self.stream_from(scene, seed, from_portrait.then(|| scene.portrait()))
    }

    /// A stream of `scene` with noise seed `seed` starting from `image` (I2V), or from the prompt
    /// alone.
    pub fn stream_from(
        &self,
        scene: &Scene,
        seed: u64,
        image: Option<RgbImage>,
    ) -> Result<ChunkStream<EvalBackend>> {
        let params = GenerationParams {
            height: Some(SIZE as usize),
            width: Some(SIZE as usize),
            seed,
            ..GenerationParams::default()
        };
        let mut request = StreamRequest::with_params(scene.prompt(), params);
        if let Some(image) = image {
            request.conditioning = Conditioning::Image(image);
        }
        Ok(ChunkStream::new(self.pipeline.clone(), request)?)
    }
}

/// The next chunk of `stream` as pictures.
pub fn next_frames(stream: &mut ChunkStream<EvalBackend>) -> Result<Vec<RgbImage>> {
    Ok(stream
        .next_chunk(&AtomicBool::new(false))?
        .frames
        .to_images()?)
}

/// The emotion a chunk shows: the classifier's scores summed over its second half (the face
/// eases into a new expression over the first frames of a chunk).
pub fn read_emotion(classifier: &EmotionClassifier, frames: &[RgbImage]) -> Emotion {
    classifier.classify_frames(frames.iter().skip(frames.len() / 2))
}
