//! `helios generate`: a prompt (and optionally an image or a video) to an MP4, a GIF or a folder of
//! PNGs, written chunk by chunk as the stream makes them.
//!
//! Everything a user controls is checked before any work: the output path (kind, folder,
//! `ffmpeg`), the conditioning file, the prompt and frame count, then, once the model is loaded,
//! the whole request (`HeliosPipeline::resolve`). The output is only moved into place when the last
//! frame is written; an error leaves nothing behind. Ctrl-C stops the stream at its next model call
//! and removes the partial output too (a second Ctrl-C quits at once).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use clap::Args;
use helios_model::pipeline::model::check_prompt;
use helios_model::pipeline::{
    ChunkStream, Conditioning, GenerationParams, HeliosPipeline, StreamRequest, VideoPlan,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::common::{ModelArgs, load_pipeline};
use crate::input::{read_image, read_video};
use crate::output::OutputTarget;
use crate::with_backend;

/// `helios generate` options.
#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// What the video shows
    #[arg(long)]
    pub prompt: String,
    /// What it should not show (only used with CFG, i.e. guidance > 1 on a non-distilled checkpoint)
    #[arg(long)]
    pub negative_prompt: Option<String>,
    /// Image to start from (image-to-video): PNG, JPEG or GIF
    #[arg(long, value_name = "PATH", conflicts_with = "video")]
    pub image: Option<PathBuf>,
    /// Video to continue (video-to-video): a folder of PNG/JPEG frames (name order), or a video
    /// file when ffmpeg is installed; at least 33 frames
    #[arg(long, value_name = "PATH")]
    pub video: Option<PathBuf>,
    /// Frames to generate; made in chunks of 33 and trimmed to 4k+1 (66 gives 65)
    #[arg(long, default_value_t = 66, value_name = "N")]
    pub frames: usize,
    /// Guidance scale [default: the checkpoint's, 1.0 for Distilled, 5.0 otherwise]
    #[arg(long, value_name = "G")]
    pub guidance: Option<f32>,
    /// Seed of the noise
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output: `.mp4` (needs ffmpeg), `.gif`, or a folder of PNGs (a path without extension, or an
    /// existing folder)
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

/// Set by Ctrl-C: the stream stops at its next model call and the staging output is removed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C cancels the generation; a second one ends the process at once (while the model loads,
/// before any output exists, there is nothing to clean up).
fn install_interrupt() {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::AcqRel) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping at the next model call (Ctrl-C again to quit now)");
    });
    if let Err(e) = installed {
        tracing::warn!("Ctrl-C will not clean up the partial output: {e}");
    }
}

/// What a finished generation reports.
struct Summary {
    frames: usize,
    width: usize,
    height: usize,
}

/// Runs `helios generate`.
pub fn run(args: &GenerateArgs) -> Result<()> {
    let target = OutputTarget::check(&args.out)?;
    check_prompt("prompt", &args.prompt)?;
    if args.frames == 0 {
        bail!("--frames 0: ask for at least 1 frame");
    }
    let params = GenerationParams {
        negative_prompt: args.negative_prompt.clone(),
        guidance_scale: args.guidance,
        ..args.model.params(args.seed)
    };
    let (height, width) = params.size();
    if height == 0 || width == 0 {
        bail!("the frame size {width}x{height} is empty");
    }
    let conditioning = match (&args.image, &args.video) {
        (Some(path), _) => Conditioning::Image(read_image(path)?),
        (None, Some(path)) => Conditioning::Video(read_video(path, width, height)?),
        (None, None) => Conditioning::None,
    };
    let request = StreamRequest {
        conditioning,
        ..StreamRequest::with_params(args.prompt.clone(), params)
    };
    write_stream(&args.model, request, &[], args.frames, &target)
}

/// Loads the model of `model`, writes `num_frames` frames of the stream of `request` to `target`
/// (switching to `later_prompts` at later chunks, see [`generate`]) and prints what it wrote. Ctrl-C
/// stops it with nothing written.
pub(crate) fn write_stream(
    model: &ModelArgs,
    request: StreamRequest,
    later_prompts: &[String],
    num_frames: usize,
    target: &OutputTarget,
) -> Result<()> {
    install_interrupt();
    let dir = model.dir()?;
    let start = Instant::now();
    let summary = with_backend!(model.engine.backend, |device: B| {
        let pipeline = Arc::new(load_pipeline::<B>(
            &dir,
            &device,
            model.load_options::<B>(&device),
        )?);
        match generate::<B>(
            pipeline,
            request,
            later_prompts,
            num_frames,
            target,
            &INTERRUPTED,
        ) {
            Ok(summary) => summary,
            Err(_) if INTERRUPTED.load(Ordering::Acquire) => {
                bail!(
                    "interrupted: nothing was written to {}",
                    target.path().display()
                )
            }
            Err(e) => return Err(e),
        }
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "wrote {} frames ({}x{}) to {} in {secs:.1} s, {:.1} frames/s",
        summary.frames,
        summary.width,
        summary.height,
        target.path().display(),
        summary.frames as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn chunk_bar(index: usize, chunks: usize, len: usize) -> Result<ProgressBar> {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} steps, {msg} ({elapsed})",
    )?);
    bar.set_prefix(format!("chunk {}/{chunks}", index + 1));
    bar.set_message("starting");
    Ok(bar)
}

/// Writes `num_frames` frames of the stream of `request` to `target`; chunk `i` > 0 switches to
/// `later_prompts[i - 1]` where there is one (at once, no blending).
fn generate<B: Backend>(
    pipeline: Arc<HeliosPipeline<B>>,
    request: StreamRequest,
    later_prompts: &[String],
    num_frames: usize,
    target: &OutputTarget,
    cancel: &AtomicBool,
) -> Result<Summary> {
    let resolved = pipeline.resolve(&request)?;
    let plan = VideoPlan::new(&pipeline, num_frames)?;
    let (width, height) = (resolved.width, resolved.height);
    let mut stream = ChunkStream::new(pipeline, request)?;
    let mut sink = target.open(width as u32, height as u32)?;
    let mut written = 0;
    for index in 0..plan.chunks {
        if let Some(prompt) = index.checked_sub(1).and_then(|i| later_prompts.get(i)) {
            stream.set_prompt(prompt, 1)?;
        }
        let stage_steps = stream.next_chunk_stage_steps()?;
        let stages = stage_steps.len();
        let bar = chunk_bar(index, plan.chunks, stage_steps.iter().sum())?;
        let chunk = stream.next_chunk_observed(cancel, &mut |call| {
            bar.inc(1);
            if bar.position() >= bar.length().unwrap_or(0) {
                bar.set_message("VAE decode");
            } else {
                bar.set_message(format!(
                    "stage {}/{stages} step {}/{}",
                    call.stage + 1,
                    call.step + 1,
                    call.steps_in_stage
                ));
            }
        });
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                bar.abandon();
                return Err(e).context(format!("chunk {}", index + 1));
            }
        };
        for frame in chunk.frames.take(plan.keep(index)).to_images()? {
            if cancel.load(Ordering::Acquire) {
                bail!("cancelled");
            }
            sink.write(&frame)?;
            written += 1;
        }
        bar.finish_with_message(format!("{written}/{} frames written", plan.frames));
    }
    sink.finish()?;
    Ok(Summary {
        frames: written,
        width,
        height,
    })
}
