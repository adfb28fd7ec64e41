//! `helios demo`: an NPC of the embedded demo model, animated. The face renderer draws the
//! character's portrait, which starts the stream (image-to-video, as the plugin's portrait render
//! does); each chunk then follows one step of a scene script (an emotion, a line or silence, a
//! light), its prompt written by the plugin's template from the scene's fields: the path a game
//! takes from scene context to video.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use helios_faces::{Clip, Emotion, LINES, LightDirection, Lighting, Tint};
use helios_model::pipeline::{Conditioning, StreamRequest};
use helios_train::data::{FRAMES_PER_CHUNK, SIZE};
use helios_train::eval::Scene;

use crate::common::ModelArgs;
use crate::generate::write_stream;
use crate::output::OutputTarget;

/// The light of the scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Light {
    /// Warm candle light from the left.
    Warm,
    /// Cold blue moonlight from the right.
    Cold,
    /// Soft daylight from the front.
    Daylight,
}

impl Light {
    fn lighting(self) -> Lighting {
        let (tint, direction) = match self {
            Light::Warm => (Tint::Warm, LightDirection::Left),
            Light::Cold => (Tint::Cold, LightDirection::Right),
            Light::Daylight => (Tint::Neutral, LightDirection::Front),
        };
        Lighting {
            tint,
            dim: false,
            direction,
        }
    }
}

/// `helios demo` options.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// The emotion of each chunk in turn: neutral, happy, sad, angry, surprised, worried
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "neutral,happy,angry,surprised"
    )]
    pub emotions: Vec<String>,
    /// The character: a seed of the face renderer
    #[arg(long, default_value_t = 3, value_name = "SEED")]
    pub character: u64,
    /// The light
    #[arg(long, value_enum, default_value_t = Light::Warm)]
    pub light: Light,
    /// The character speaks (a line of the model's data in every chunk)
    #[arg(long)]
    pub speak: bool,
    /// Seed of the noise
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output: `.mp4` (needs ffmpeg), `.gif`, or a folder of PNGs
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

/// Runs `helios demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let target = OutputTarget::check(&args.out)?;
    let emotions = args
        .emotions
        .iter()
        .map(|e| Emotion::from_str(e.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if emotions.is_empty() {
        bail!("--emotions is empty: name at least one");
    }
    let lighting = args.light.lighting();
    let prompts: Vec<String> = emotions
        .iter()
        .enumerate()
        .map(|(i, &emotion)| {
            Scene {
                character: args.character,
                emotion,
                line: args.speak.then_some(LINES[i % LINES.len()]),
                lighting,
            }
            .prompt()
        })
        .collect();
    for (i, prompt) in prompts.iter().enumerate() {
        println!("chunk {}: {prompt}", i + 1);
    }
    let mut params = args.model.params(args.seed);
    params.height = params.height.or(Some(SIZE as usize));
    params.width = params.width.or(Some(SIZE as usize));
    let request = StreamRequest {
        conditioning: Conditioning::Image(Clip::portrait(args.character, lighting, SIZE)),
        ..StreamRequest::with_params(prompts[0].clone(), params)
    };
    write_stream(
        &args.model,
        request,
        &prompts[1..],
        FRAMES_PER_CHUNK * prompts.len(),
        &target,
    )
}
