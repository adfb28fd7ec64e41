//! What a demo checkpoint's sampler holds after each DiT call of a first chunk: the clean latents
//! each call implies (`x - sigma v`), up-sampled to the full latent size and decoded (frame 16),
//! one column per call, above the same training clip's own chunk decoded at each stage's
//! resolution. Shows at which stage generation departs from the data.
//!
//! `cargo run --release -p helios_train --example dit_stages -- CHECKPOINT OUT.png [clip_seed]`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::NdArray;
use burn::tensor::Tensor;
use helios_model::config::SchedulerConfig;
use helios_model::pipeline::denoise::pyramid_schedule;
use helios_model::pipeline::{
    ChunkStream, Frames, GenerationParams, HeliosPipeline, StreamRequest,
};
use helios_model::scheduler::pyramid::{downsample, upsample_nearest2x};
use helios_model::scheduler::{FlowScheduler, pyramid_stage_sizes};
use helios_model::vae::WanVae;
use helios_train::data::{training_clip, video_tensor};
use image::{RgbImage, imageops};

type B = NdArray<f32>;

fn frame16(vae: &WanVae<B>, latents: Tensor<B, 5>) -> Result<RgbImage, Box<dyn std::error::Error>> {
    // Frame 16, or the last one of a shorter video.
    let mut frames = Frames::new(vae.decode(latents)?).to_images()?;
    frames.truncate(17);
    frames.pop().ok_or_else(|| "no frame".into())
}

/// `x` up-sampled (nearest) to the full latent size.
fn full(mut x: Tensor<B, 5>, times: usize) -> Tensor<B, 5> {
    for _ in 0..times {
        x = upsample_nearest2x(x);
    }
    x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: dit_stages CHECKPOINT OUT.png [seed]")?,
    );
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: dit_stages CHECKPOINT OUT.png [seed]")?,
    );
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let device = Default::default();
    let pipeline = Arc::new(HeliosPipeline::<B>::load(&dir, &device)?);
    let vae = WanVae::<B>::load(&dir.join("vae"), &device)?;
    let clip = training_clip(seed);
    let params = GenerationParams {
        height: Some(128),
        width: Some(128),
        seed,
        ..GenerationParams::default()
    };
    let mut stream = ChunkStream::new(
        pipeline,
        StreamRequest::with_params(clip.captions[0].clone(), params),
    )?;
    // Each call's sigma, from the schedule the pipeline sets for its stage (mu from the latents
    // held before the stage's up-sample).
    let scheduler_config: SchedulerConfig = serde_json::from_str(&std::fs::read_to_string(
        dir.join("scheduler/scheduler_config.json"),
    )?)?;
    let scheduler = FlowScheduler::new(&scheduler_config)?;
    let sizes = pyramid_stage_sizes(16, 16, scheduler.stages())?;
    let mut sigmas = Vec::new();
    for stage in 0..scheduler.stages() {
        let [h, w] = sizes[stage.saturating_sub(1)];
        let schedule = pyramid_schedule(&scheduler, [1, 2, 2], 2, stage, [9, h, w], false)?;
        sigmas.push(schedule.steps().map(|s| s.sigma).collect::<Vec<_>>());
    }
    let mut calls = Vec::new();
    stream.next_chunk_observed(&AtomicBool::new(false), &mut |call| {
        let sigma = sigmas
            .get(call.stage)
            .and_then(|s| s.get(call.step))
            .copied()
            .unwrap_or(0.0) as f32;
        println!(
            "call stage {} step {} timestep {} sigma {sigma:.3}",
            call.stage, call.step, call.timestep
        );
        let x0 = call.hidden_states.clone() - call.velocity.clone().mul_scalar(sigma);
        calls.push((call.stage, call.step, sigma, call.hidden_states.clone(), x0));
    })?;
    let stages = calls.iter().map(|c| c.0).max().unwrap_or(0) + 1;

    // The clip's own first chunk, at each stage's resolution (average-pooled, as training makes
    // a stage's clean latents).
    let truth = vae.normalize(
        vae.encode(video_tensor::<B>(&clip.chunks[0], &device))?
            .mode(),
    )?;
    let size = 128u32;
    let mut sheet = RgbImage::new(size * calls.len() as u32, size * 3);
    for (i, (stage, step, sigma, x, x0)) in calls.iter().enumerate() {
        let times = stages - 1 - stage;
        let col = (i as u32 * size) as i64;
        imageops::replace(&mut sheet, &frame16(&vae, full(x.clone(), times))?, col, 0);
        imageops::replace(
            &mut sheet,
            &frame16(&vae, full(x0.clone(), times))?,
            col,
            size as i64,
        );
        let clean = downsample(truth.clone(), times)?.div_scalar((1u32 << times) as f32);
        imageops::replace(
            &mut sheet,
            &frame16(&vae, full(clean.clone(), times))?,
            col,
            2 * size as i64,
        );
        let err: f32 = (x0.clone() - clean).powi_scalar(2).mean().into_scalar();
        let spread: f32 = x0.clone().powi_scalar(2).mean().into_scalar();
        println!(
            "stage {stage} step {step} sigma {sigma:.3}: mean x0^2 {spread:.3}, mse to the clip's own chunk {err:.3}"
        );
    }
    sheet.save(&out)?;
    println!(
        "wrote {} (rows: the call's input, its clean latents, the clip's own)",
        out.display()
    );
    Ok(())
}
