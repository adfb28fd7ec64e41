//! What `generate` and `bench` share: the model folder (the embedded demo model by default), the
//! generation parameters of the flags, and loading with a progress line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use clap::Args;
use helios_model::dit::{Precision, WeightQuantization};
use helios_model::pipeline::{GenerationParams, HeliosPipeline, LoadOptions, Part};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::{BackendChoice, PrecisionChoice};

/// The model folder when none is named: `HELIOS_MODEL_DIR`, else the demo model compiled into
/// `helios_model` (cartoon NPC faces), written once into the user's cache folder.
pub fn default_model_dir() -> Result<PathBuf> {
    helios_model::embedded::default_model_dir().context("cannot prepare the embedded model")
}

/// Frame size (height, width) of the real checkpoints (the reference default), for the benches.
pub const CHECKPOINT_SIZE: (usize, usize) = (384, 640);

/// Whether a run without `--model` uses a checkpoint named by `HELIOS_MODEL_DIR`.
fn model_from_env() -> bool {
    std::env::var_os(helios_model::embedded::MODEL_DIR_ENV).is_some_and(|d| !d.is_empty())
}

/// Which model runs where: the checkpoint, the backend, the DiT's precision and quantisation
/// (`generate`, `bench` and `serve`).
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Diffusers-layout Helios folder [default: $HELIOS_MODEL_DIR, else the embedded demo model]
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Backend to run on
    #[arg(long, value_enum, default_value_t = BackendChoice::Ndarray)]
    pub backend: BackendChoice,
    /// DiT precision [default: half on wgpu and cuda, f32 on ndarray]
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionChoice>,
    /// Weight-only quantisation of the DiT's block weights (int8: one byte per weight and a
    /// float32 scale per 32, about half the memory of bf16)
    #[arg(long, value_enum, default_value_t = QuantizeChoice::None)]
    pub quantize: QuantizeChoice,
    /// Keep the DiT's last N blocks in host memory and move each to the GPU only while it runs
    /// (layer offload: for a model that does not fit the card even quantised; slower)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offload_blocks: usize,
}

/// Model, size, steps and backend options.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The model and where it runs.
    #[command(flatten)]
    pub engine: EngineArgs,
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
}

/// `--quantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantizeChoice {
    /// The weights at the DiT's precision.
    None,
    /// int8 with a float32 scale per block of 32 values.
    Int8,
}

impl From<QuantizeChoice> for WeightQuantization {
    fn from(choice: QuantizeChoice) -> Self {
        match choice {
            QuantizeChoice::None => Self::None,
            QuantizeChoice::Int8 => Self::Int8,
        }
    }
}

impl ModelArgs {
    /// The checkpoint folder.
    pub fn dir(&self) -> Result<PathBuf> {
        match &self.engine.model {
            Some(dir) => Ok(dir.clone()),
            None => default_model_dir(),
        }
    }

    /// How the checkpoint is loaded on backend `B`: the DiT's precision and quantisation.
    pub fn load_options<B: Backend>(&self, device: &B::Device) -> LoadOptions {
        LoadOptions::at(self.precision::<B>(device))
            .quantized(self.engine.quantize.into())
            .offloaded(self.engine.offload_blocks)
    }

    /// The DiT precision on backend `B`, with the backend's default filled in.
    pub fn precision<B: Backend>(&self, device: &B::Device) -> Precision {
        self.engine
            .precision
            .unwrap_or(self.engine.backend.default_precision())
            .resolve::<B>(device)
    }

    /// The generation parameters the flags give (`None`: the checkpoint's default; the embedded
    /// model runs at its own size, `helios_model::embedded::SIZE`, unless a size is given).
    pub fn params(&self, seed: u64) -> GenerationParams {
        let (height, width) = if self.engine.model.is_some() || model_from_env() {
            (self.height, self.width)
        } else {
            let (h, w) = helios_model::embedded::SIZE;
            (self.height.or(Some(h)), self.width.or(Some(w)))
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

/// Loads a checkpoint with `options` (the DiT's precision and quantisation), showing a spinner
/// with the part and tensor count on stderr, then what the DiT's loading did.
pub fn load_pipeline<B: Backend>(
    dir: &Path,
    device: &B::Device,
    options: LoadOptions,
) -> Result<HeliosPipeline<B>> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} loading {msg}")?);
    let pipeline =
        HeliosPipeline::<B>::load_with_options_progress(dir, device, options, &mut |part, p| {
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
    if let Ok(p) = &pipeline {
        eprintln!("{} ({:?})", p.transformer_load_report(), options.precision);
    }
    pipeline
}
