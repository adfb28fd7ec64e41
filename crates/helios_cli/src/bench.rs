//! `helios bench`: the whole batch pipeline (prompt encoding, every chunk's denoising, VAE decode
//! and the 8-bit conversion of the frames), timed over several runs after warm-up runs. The last line
//! printed is `median_s=<seconds> frames_per_s=<fps> ...`, for scripts.
//!
//! With `--random-weights --config DIR` it times each part at the real shapes instead, built from a
//! checkpoint's configs with random weights, no download needed.

mod memory;
mod random;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::backend::Backend;
use clap::Args;
use helios_model::pipeline::{HeliosPipeline, StreamRequest, VideoPlan};

use crate::common::{ModelArgs, load_pipeline};
use crate::with_backend;

/// `helios bench` options.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Frames per run (chunks of 33, trimmed to 4k+1)
    #[arg(long, default_value_t = 66, value_name = "N")]
    pub frames: usize,
    /// Prompt of every run
    #[arg(long, default_value = "A cat and a dog baking a cake in a kitchen.")]
    pub prompt: String,
    /// Seed of every run
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Timed runs
    #[arg(long, default_value_t = 3, value_name = "R")]
    pub runs: usize,
    /// Untimed warm-up runs first
    #[arg(long, default_value_t = 1, value_name = "W")]
    pub warmup: usize,
    /// Time each part (DiT per pyramid stage, VAE decode, whole chunk, text encoder) at the real
    /// shapes, with random weights built from the configs of --config: no checkpoint needed
    #[arg(long, requires = "config", conflicts_with = "model")]
    pub random_weights: bool,
    /// Diffusers-layout folder of configs only (e.g. assets/configs/helios-distilled), for --random-weights
    #[arg(long, value_name = "DIR", requires = "random_weights")]
    pub config: Option<PathBuf>,
    /// Build only N of the DiT's blocks (and at most N of the text encoder's layers) [default: all]
    #[arg(long, value_name = "N", requires = "random_weights")]
    pub layers: Option<usize>,
}

/// The median of some durations (the mean of the two middle ones for an even count).
pub fn median(times: &[f64]) -> Option<f64> {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    let n = t.len();
    match n {
        0 => None,
        n if n % 2 == 1 => Some(t[n / 2]),
        n => Some((t[n / 2 - 1] + t[n / 2]) / 2.0),
    }
}

/// Runs `helios bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs 0: time at least one run");
    }
    if let Some(config) = &args.config {
        if args.layers == Some(0) {
            bail!("--layers 0: build at least one block");
        }
        return with_backend!(args.model.engine.backend, |device: B| random::run::<B>(
            args, config, device
        ));
    }
    if args.frames == 0 {
        bail!("--frames 0: ask for at least 1 frame");
    }
    let request = StreamRequest::with_params(args.prompt.clone(), args.model.params(args.seed));
    let dir = args.model.dir()?;
    with_backend!(args.model.engine.backend, |device: B| {
        let pipeline = Arc::new(load_pipeline::<B>(
            &dir,
            &device,
            args.model.load_options::<B>(&device),
        )?);
        bench::<B>(&pipeline, &request, args)
    })
}

fn bench<B: Backend>(
    pipeline: &Arc<HeliosPipeline<B>>,
    request: &StreamRequest,
    args: &BenchArgs,
) -> Result<()> {
    let resolved = pipeline.resolve(request)?;
    let plan = VideoPlan::new(pipeline, args.frames)?;
    let steps: Vec<String> = resolved.steps.iter().map(usize::to_string).collect();
    println!(
        "{}x{}, {} frames ({} chunks), steps {}, amplify first chunk {}, {:?}",
        resolved.width,
        resolved.height,
        plan.frames,
        plan.chunks,
        steps.join(","),
        request.params.amplify_first_chunk,
        args.model.engine.backend
    );
    let cancel = AtomicBool::new(false);
    let once = || -> Result<f64> {
        let start = Instant::now();
        let video = pipeline.generate(request.clone(), args.frames, &cancel)?;
        let pixels = video.frames.to_u8(3)?; // waits for the device, as a user would
        let secs = start.elapsed().as_secs_f64();
        if pixels.len() != plan.frames {
            bail!("got {} frames, expected {}", pixels.len(), plan.frames);
        }
        Ok(secs)
    };
    for i in 0..args.warmup {
        println!("warm-up {}/{}: {:.3} s", i + 1, args.warmup, once()?);
    }
    let mut times = Vec::with_capacity(args.runs);
    for i in 0..args.runs {
        let secs = once()?;
        println!("run {}/{}: {secs:.3} s", i + 1, args.runs);
        times.push(secs);
    }
    let Some(median_s) = median(&times) else {
        bail!("no timed run")
    };
    let min_s = times.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "median_s={median_s:.4} frames_per_s={:.3} min_s={min_s:.4} frames={} runs={}",
        plan.frames as f64 / median_s,
        plan.frames,
        args.runs
    );
    Ok(())
}
