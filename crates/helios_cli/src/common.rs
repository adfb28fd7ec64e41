//! What `generate` and `bench` share: the model folder (the embedded tiny model by default), the
//! generation parameters of the flags, and loading with a progress line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use clap::Args;
use helios_model::pipeline::{GenerationParams, HeliosPipeline, Part};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::BackendChoice;

/// The embedded tiny model (random weights, abstract motion), found relative to the workspace.
pub const EMBEDDED_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../helios_model/embedded/tiny-helios");

/// Frame size (height, width) on the embedded model (a checkpoint given with `--model` takes the
/// pipeline's default, 384x640, as the reference).
pub const EMBEDDED_SIZE: (usize, usize) = (128, 128);

/// Model, size, steps and backend options.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Diffusers-layout Helios folder [default: the embedded tiny model, random weights]
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Frame height in pixels [default: 384 with --model, 128 on the embedded model]
    #[arg(long)]
    pub height: Option<usize>,
    /// Frame width in pixels [default: 640 with --model, 128 on the embedded model]
    #[arg(long)]
    pub width: Option<usize>,
    /// Denoising steps per pyramid stage, comma-separated [default: the checkpoint's, 2,2,2 for Distilled]
    #[arg(long, value_delimiter = ',', value_name = "N,N,N")]
    pub steps: Option<Vec<usize>>,
    /// Twice the steps on the first chunk (DMD's amplified first chunk, as the Distilled reference)
    #[arg(long)]
    pub amplify_first_chunk: bool,
    /// Prompt tokens the text encoder reads [default: 512, as the reference]
    #[arg(long, value_name = "N")]
    pub max_sequence_length: Option<usize>,
    /// Backend to run on
    #[arg(long, value_enum, default_value_t = BackendChoice::Ndarray)]
    pub backend: BackendChoice,
}

impl ModelArgs {
    /// The checkpoint folder.
    pub fn dir(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(|| PathBuf::from(EMBEDDED_MODEL))
    }

    /// The generation parameters the flags give (`None`: the checkpoint's default; the embedded
    /// model runs at [`EMBEDDED_SIZE`] unless a size is given).
    pub fn params(&self, seed: u64) -> GenerationParams {
        let (height, width) = match self.model {
            Some(_) => (self.height, self.width),
            None => (self.height.or(Some(EMBEDDED_SIZE.0)), self.width.or(Some(EMBEDDED_SIZE.1))),
        };
        GenerationParams {
            height,
            width,
            steps: self.steps.clone(),
            seed,
            amplify_first_chunk: self.amplify_first_chunk,
            max_sequence_length: self.max_sequence_length,
            ..GenerationParams::default()
        }
    }
}

/// Loads a checkpoint, showing a spinner with the part and tensor count on stderr.
pub fn load_pipeline<B: Backend>(dir: &Path, device: &B::Device) -> Result<HeliosPipeline<B>> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} loading {msg}")?);
    let pipeline = HeliosPipeline::<B>::load_with_progress(dir, device, &mut |part, p| {
        let name = match part {
            Part::TextEncoder => "text encoder",
            Part::Transformer => "transformer",
            Part::Vae => "vae",
        };
        spinner.set_message(format!("{name}: {}/{} tensors", p.loaded, p.total));
        spinner.tick();
    })
    .with_context(|| format!("cannot load the model in {}", dir.display()));
    spinner.finish_and_clear();
    pipeline
}
