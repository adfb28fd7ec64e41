//! `helios train-demo`: trains the demo face model (see `helios_train`) into a checkpoint folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use clap::Args;
use helios_train::{Progress, TrainOptions, TrainPart, train_demo, train_demo_on};

use crate::backend::{BackendChoice, Gpu};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `helios train-demo`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The checkpoint folder to write (created; files in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the data, the initial weights and the noise (the shipped model: 0).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// VAE optimiser steps on single frames [default: the shipped model's].
    #[arg(long)]
    pub vae_steps: Option<usize>,
    /// VAE optimiser steps on video windows, after the single-frame ones [default: the shipped
    /// model's].
    #[arg(long)]
    pub vae_video_steps: Option<usize>,
    /// DiT optimiser steps [default: the shipped model's].
    #[arg(long)]
    pub dit_steps: Option<usize>,
    /// Clips whose latents train the DiT [default: the shipped model's].
    #[arg(long)]
    pub clips: Option<usize>,
    /// Write preview images (VAE reconstructions) into this folder.
    #[arg(long)]
    pub preview: Option<PathBuf>,
    /// Reuse the trained VAE of this checkpoint folder instead of training one (to try DiT
    /// settings on the same VAE).
    #[arg(long, value_name = "DIR")]
    pub vae_from: Option<PathBuf>,
    /// How often each pyramid stage is trained by the DiT, relative to the others
    /// (comma-separated, lowest stage first) [default: the shipped model's]
    #[arg(long, value_delimiter = ',', value_name = "W,W,W")]
    pub dit_stage_weights: Option<Vec<f64>>,
    /// How much more the DiT's loss counts on the face's brows, eyes and mouth than on the rest
    /// of the frame (1: uniform) [default: the shipped model's]
    #[arg(long, value_name = "W")]
    pub dit_expression_weight: Option<f64>,
    /// How the mouth moves while a line is spoken: `lip-sync` opens it once per syllable of the
    /// line, 8 frames a syllable, from the line's start; `random` opens it at random (the model
    /// shipped before) [default: lip-sync, the shipped model's]
    #[arg(long, value_enum, value_name = "HOW")]
    pub speech: Option<SpeechArg>,
    /// Scale of the text encoder's layer outputs: below 1 each prompt position keeps more of its
    /// own word (0.1: mostly its own word; 1: a plain random UMT5) [default: 0.1, the shipped
    /// model's]
    #[arg(long, value_name = "S")]
    pub text_layer_scale: Option<f32>,
    /// Backend the VAE and the DiT train on (the data are made on the CPU)
    #[arg(long, value_enum, default_value_t = BackendChoice::Ndarray)]
    pub backend: BackendChoice,
}

/// `--speech`: how the training clips move the mouth while a line is spoken.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeechArg {
    /// Random syllables, 5 to 7 frames each.
    Random,
    /// One opening per syllable of the line, from its start.
    LipSync,
}

fn bar(steps: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// Runs `helios train-demo`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let mut options = TrainOptions {
        seed: args.seed,
        preview: args.preview.clone(),
        ..TrainOptions::default()
    };
    if let Some(steps) = args.vae_steps {
        options.vae.image_steps = steps;
    }
    if let Some(steps) = args.vae_video_steps {
        options.vae.video_steps = steps;
    }
    if let Some(steps) = args.dit_steps {
        options.dit.steps = steps;
    }
    if let Some(clips) = args.clips {
        options.dit_clips = clips;
    }
    if let Some(weights) = &args.dit_stage_weights {
        options.dit.stage_weights = weights.clone();
    }
    if let Some(weight) = args.dit_expression_weight {
        options.dit.expression_weight = weight;
    }
    if let Some(speech) = args.speech {
        options.speech = match speech {
            SpeechArg::Random => helios_train::Speech::Random,
            SpeechArg::LipSync => helios_train::Speech::LipSync,
        };
    }
    if let Some(scale) = args.text_layer_scale {
        options.text_layer_scale = scale;
    }
    options.vae_from = args.vae_from.clone();
    let mut current: Option<(TrainPart, ProgressBar, f32)> = None;
    let mut on_step = |p: Progress| {
        if current.as_ref().is_none_or(|(part, _, _)| *part != p.part) {
            if let Some((_, bar, _)) = current.take() {
                bar.finish();
            }
            let name = match p.part {
                TrainPart::Vae => "vae",
                TrainPart::Transformer => "transformer",
            };
            current = Some((p.part, bar(p.steps, name), p.loss));
        }
        if let Some((_, bar, smoothed)) = current.as_mut() {
            *smoothed = 0.98 * *smoothed + 0.02 * p.loss;
            bar.set_position(p.step as u64);
            if p.step.is_multiple_of(25) || p.step == p.steps {
                tracing::info!(part = ?p.part, step = p.step, steps = p.steps, loss = *smoothed, "training");
            }
        }
    };
    let report = match args.backend {
        BackendChoice::Ndarray => train_demo(&args.out, &options, &mut on_step),
        BackendChoice::Wgpu => {
            train_demo_on::<Autodiff<Gpu>>(&args.out, &options, &Default::default(), &mut on_step)
        }
        #[cfg(feature = "cuda")]
        BackendChoice::Cuda => train_demo_on::<Autodiff<crate::backend::CudaGpu>>(
            &args.out,
            &options,
            &crate::backend::cuda_device()?,
            &mut on_step,
        ),
        #[cfg(not(feature = "cuda"))]
        BackendChoice::Cuda => return Err(crate::backend::cuda_not_built()),
    }
    .with_context(|| format!("training the demo model into {}", args.out.display()))?;
    if let Some((_, bar, _)) = current.take() {
        bar.finish();
    }
    let vae = match &args.vae_from {
        Some(dir) => format!("VAE from {}", dir.display()),
        None => format!("VAE loss {:.4}", report.vae_loss),
    };
    println!(
        "wrote {}: {vae} ({:.0} s), data {:.0} s, DiT loss {:.4} ({:.0} s)",
        args.out.display(),
        report.seconds[0],
        report.seconds[1],
        report.dit_loss,
        report.seconds[2],
    );
    Ok(())
}
