//! Trains the demo Helios checkpoint: a small Wan VAE and Helios DiT that draw cartoon NPC faces
//! whose expression, speech and light follow the prompt the Bevy plugin writes from a scene
//! context.
//!
//! The data are the procedural clips of [`helios_faces`], captioned with the plugin's own
//! [`PromptTemplate`](helios_worker::prompt::PromptTemplate). Training runs on burn's autodiff over
//! the port's own modules (the same code that generates), on the CPU:
//!
//! 1. a word-level tokenizer for the captions and a frozen, randomly initialised UMT5 encoder
//!    ([`text`]);
//! 2. the VAE as an autoencoder ([`vae`]), then its latent statistics;
//! 3. the DiT with Helios' objective at the distilled sampler's points ([`dit`]).
//!
//! [`train_demo`] writes a diffusers-layout folder the normal loader reads (`model_index.json`
//! declares Helios-Distilled: the pyramid pipeline with the DMD scheduler it was trained for).
//! The same options and seed give the same checkpoint.

pub mod config;
pub mod data;
pub mod dit;
mod error;
pub mod eval;
mod init;
pub mod preview;
pub mod schedule;
mod step;
pub mod text;
pub mod vae;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use helios_model::config::{SchedulerConfig, TextEncoderConfig, TransformerConfig, VaeConfig};
use helios_model::pipeline::HistoryLayout;
use helios_model::save::{StoredAs, save_text_encoder, save_transformer, save_vae};
use helios_model::scheduler::FlowScheduler;
use helios_model::text::TextEncoder;
use helios_model::vae::WanVae;

pub use helios_faces::Speech;

pub use dit::DitTraining;
pub use error::{Result, TrainError};
pub use vae::VaeTraining;

/// The backend training runs on: burn's autodiff over NdArray (CPU, float32).
pub type TrainBackend = Autodiff<NdArray<f32>>;
type Inner = NdArray<f32>;

/// The part being trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainPart {
    /// The Wan VAE.
    Vae,
    /// The Helios DiT.
    Transformer,
}

/// One optimiser step done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The part.
    pub part: TrainPart,
    /// Steps done (1-based).
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// This step's loss.
    pub loss: f32,
}

/// Everything that decides the demo checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// The seed of the data, the initial weights and the noise.
    pub seed: u64,
    /// Clips whose frames train the VAE.
    pub vae_clips: usize,
    /// Clips whose latents train the DiT.
    pub dit_clips: usize,
    /// The VAE stage.
    pub vae: VaeTraining,
    /// The DiT stage.
    pub dit: DitTraining,
    /// Where to write preview images (VAE reconstructions), if anywhere.
    pub preview: Option<std::path::PathBuf>,
    /// A checkpoint folder whose trained `vae/` is reused instead of training one (to try DiT
    /// settings on the same VAE).
    pub vae_from: Option<std::path::PathBuf>,
    /// How the mouth moves in the clips while a line is spoken (the shipped model:
    /// [`Speech::LipSync`]).
    pub speech: Speech,
    /// The text encoder's layer scale ([`text::demo_text_encoder`]; 1: a plain random UMT5; the
    /// shipped model: 0.1, each prompt position mostly its own word).
    pub text_layer_scale: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            vae_clips: 48,
            dit_clips: 200,
            vae: VaeTraining::default(),
            dit: DitTraining::default(),
            preview: None,
            vae_from: None,
            speech: Speech::LipSync,
            text_layer_scale: 0.1,
        }
    }
}

/// What training produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Mean loss of the VAE's last 50 steps (0 when a trained VAE was reused).
    pub vae_loss: f32,
    /// Mean loss of the DiT's last 200 steps.
    pub dit_loss: f32,
    /// Seconds spent on each part (VAE, data encoding, DiT).
    pub seconds: [f64; 3],
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| TrainError::Options(format!("a built-in config does not parse: {e}")))
}

/// Copies a trained `vae/` folder (its config and weights).
fn copy_vae(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|source| TrainError::Write {
        path: to.to_path_buf(),
        source,
    })?;
    for name in ["config.json", "diffusion_pytorch_model.safetensors"] {
        std::fs::copy(from.join(name), to.join(name)).map_err(|source| TrainError::Write {
            path: to.join(name),
            source,
        })?;
    }
    Ok(())
}

/// Moves a tensor of the CPU backend that prepares the data to the training backend.
fn to_device<B: Backend, const D: usize>(t: Tensor<Inner, D>, device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(t.into_data(), device)
}

/// Trains the demo model on the CPU ([`TrainBackend`]) and writes it to `out` (a diffusers-layout
/// folder).
pub fn train_demo(
    out: &Path,
    options: &TrainOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainReport> {
    train_demo_on::<TrainBackend>(out, options, &Default::default(), progress)
}

/// [`train_demo`] with the VAE and the DiT trained on backend `B` (a GPU where one is lent); the
/// data are made on the CPU.
pub fn train_demo_on<B: AutodiffBackend>(
    out: &Path,
    options: &TrainOptions,
    train_device: &B::Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainReport> {
    let device = Default::default();
    let seed = options.seed;
    config::write_json(out, "model_index.json", &config::model_index())?;
    config::write_json(
        &out.join("scheduler"),
        "scheduler_config.json",
        &config::scheduler(),
    )?;

    // Text: a word-level tokenizer for the captions and a frozen random UMT5.
    let words = data::caption_words(256);
    let (tokenizer, vocab_size) = config::tokenizer(&words);
    let tokenizer_dir = out.join("tokenizer");
    config::write_json(&tokenizer_dir, "tokenizer.json", &tokenizer)?;
    config::write_json(
        &tokenizer_dir,
        "tokenizer_config.json",
        &config::tokenizer_config(),
    )?;
    config::write_json(
        &tokenizer_dir,
        "special_tokens_map.json",
        &config::special_tokens_map(),
    )?;
    let text_config = config::text_encoder(vocab_size);
    let text_dir = out.join("text_encoder");
    config::write_json(&text_dir, "config.json", &text_config)?;
    let umt5 = text::demo_text_encoder::<Inner>(
        &parse::<TextEncoderConfig>(text_config)?,
        seed ^ 0x7e47,
        options.text_layer_scale,
        &device,
    )?;
    save_text_encoder(&umt5, &text_dir)?;
    let text = TextEncoder::<Inner>::load(out, &device)?;

    // Stage 1: the VAE (or a trained one reused).
    let started = Instant::now();
    let vae_dir = out.join("vae");
    // The VAE's frames: to train it, and for the preview (none to render for a reused VAE
    // without one).
    let render = options.vae_from.is_none() || options.preview.is_some();
    let vae_clips = if render { options.vae_clips as u64 } else { 0 };
    let videos: Vec<_> = (0..vae_clips)
        .flat_map(|i| {
            data::training_clip_speaking(seed.wrapping_add(1_000_000 + i), options.speech).chunks
        })
        .collect();
    let mut vae_losses = Vec::new();
    if let Some(from) = &options.vae_from {
        copy_vae(&from.join("vae"), &vae_dir)?;
    } else {
        let vae_config: VaeConfig = parse(config::vae_untrained())?;
        let vae_model = vae::train_vae::<B>(
            &vae_config,
            &videos,
            &options.vae,
            seed ^ 0x0a3e,
            train_device,
            &mut |p| {
                vae_losses.push(p.loss);
                progress(p);
            },
        )?;
        let unit = WanVae::from_parts(vae_model.clone(), vae_config);
        let probe: Vec<_> = videos.iter().take(24).cloned().collect();
        let (mean, std) = vae::latent_statistics(&unit, &probe, train_device)?;
        config::write_json(&vae_dir, "config.json", &config::vae(&mean, &std))?;
        save_vae(&vae_model, &vae_dir)?;
    }
    // The VAE as the pipeline will load it (with its latent statistics), read back once.
    let vae = WanVae::<Inner>::load(&vae_dir, &device)?;
    if let Some(dir) = &options.preview {
        preview::reconstructions(&vae, &videos[videos.len().saturating_sub(4)..], dir)?;
    }
    drop(videos);
    let vae_seconds = started.elapsed().as_secs_f64();

    // The DiT's data: normalised latents of each chunk, prompt embeddings of each caption.
    let started = Instant::now();
    let mut clips = Vec::with_capacity(options.dit_clips);
    let mut embeddings: HashMap<String, Tensor<B::InnerBackend, 3>> = HashMap::new();
    for i in 0..options.dit_clips as u64 {
        let clip = data::training_clip_speaking(seed.wrapping_add(i), options.speech);
        for caption in &clip.captions {
            if !embeddings.contains_key(caption) {
                let e = text.encode(&[caption], config::TEXT_TOKENS)?;
                embeddings.insert(caption.clone(), to_device(e, train_device));
            }
        }
        let latent = data::encode_clip(&vae, &clip, &device)?;
        clips.push(dit::LatentClip {
            latents: to_device(latent.latents, train_device),
            image: to_device(latent.image, train_device),
            still: to_device(latent.still, train_device),
            captions: latent.captions,
        });
    }
    let data_seconds = started.elapsed().as_secs_f64();

    // Stage 2: the DiT.
    let started = Instant::now();
    let transformer_config = config::transformer();
    let transformer_dir = out.join("transformer");
    config::write_json(&transformer_dir, "config.json", &transformer_config)?;
    let scheduler = FlowScheduler::new(&parse::<SchedulerConfig>(config::scheduler())?)?;
    let mut dit_losses = Vec::new();
    let dit = dit::train_dit::<B>(
        &parse::<TransformerConfig>(transformer_config)?,
        &scheduler,
        HistoryLayout::default(),
        &clips,
        &embeddings,
        &options.dit,
        seed ^ 0xd17,
        train_device,
        &mut |p| {
            dit_losses.push(p.loss);
            progress(p);
        },
    )?;
    save_transformer(&dit, &transformer_dir, StoredAs::Bf16)?;
    let dit_seconds = started.elapsed().as_secs_f64();

    let tail_mean = |v: &[f32], n: usize| {
        let tail = &v[v.len().saturating_sub(n)..];
        if tail.is_empty() {
            return 0.0;
        }
        tail.iter().sum::<f32>() / tail.len() as f32
    };
    Ok(TrainReport {
        vae_loss: tail_mean(&vae_losses, 50),
        dit_loss: tail_mean(&dit_losses, 200),
        seconds: [vae_seconds, data_seconds, dit_seconds],
    })
}
