//! `helios bench --random-weights --config DIR`: every part at the real shapes, built from a
//! checkpoint's configs with random weights (no weight files, no tokenizer), timed one by one.
//!
//! Measured, each after `--warmup` untimed runs, over `--runs` timed runs (the text encoder once):
//! the DiT forward of each pyramid stage (the chunk's latents at 1/4, 1/2 and full latent size, the
//! history at full size, as the pyramid pipeline passes it); the VAE decode of one 9-latent chunk;
//! the whole chunk (every DiT call of the sampling with its scheduler steps, then the VAE decode)
//! and its frames/s; the text encoder on one prompt; and on GPU backends the device memory. One
//! `bench part=... median_s=... min_s=... runs=...` line per measurement, then a summary, and last
//! the chunk's `median_s=... frames_per_s=...` line in the format of the checkpoint bench.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use helios_model::config::{HeliosCheckpoint, PipelineClass};
use helios_model::dit::quantize::{quantize_blocks, stored_bytes};
use helios_model::dit::{DitInput, HeliosTransformer3DModel, Precision};
use helios_model::pipeline::SeededNoise;
use helios_model::pipeline::{ChunkDenoiser, HistoryBuffer, HistoryLayout, Sampling};
use helios_model::random::{
    TEXT_EMBEDDING_ROWS, random_text_encoder, random_transformer, random_vae,
};
use helios_model::scheduler::{FlowScheduler, GuidanceMode};
use helios_model::text::UMT5EncoderModel;
use helios_model::vae::WanVae;

use super::memory::{PeakMemory, bytes_field};
use super::{BenchArgs, median};
use crate::common::CHECKPOINT_SIZE;

/// Seed of the random weights.
const WEIGHT_SEED: u64 = 0x4865_6c69_6f73;
/// The CFG scale the non-distilled pipelines default to.
const DEFAULT_CFG: f64 = 5.0;

/// What one measurement gave.
struct Timing {
    median_s: f64,
    min_s: f64,
    runs: usize,
}

impl Timing {
    fn fields(&self) -> String {
        format!(
            "median_s={:.5} min_s={:.5} runs={}",
            self.median_s, self.min_s, self.runs
        )
    }
}

/// Times `f` (which must wait for the device before returning) after `warmup` untimed calls.
fn time<F: FnMut() -> Result<()>>(warmup: usize, runs: usize, mut f: F) -> Result<Timing> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    let Some(median_s) = median(&times) else {
        bail!("no timed run")
    };
    Ok(Timing {
        median_s,
        min_s: times.iter().copied().fold(f64::INFINITY, f64::min),
        runs,
    })
}

fn sync<B: Backend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|e| anyhow!("the device failed: {e:?}"))
}

/// The built parts and what the measurements share.
struct Bench<B: Backend> {
    ckpt: HeliosCheckpoint,
    dit: HeliosTransformer3DModel<B>,
    vae: WanVae<B>,
    text: UMT5EncoderModel<B>,
    scheduler: FlowScheduler,
    sampling: Sampling,
    steps: Vec<usize>,
    guidance: GuidanceMode,
    /// Full latent height and width.
    latent: (usize, usize),
    layout: HistoryLayout,
    device: B::Device,
}

/// Runs `helios bench --random-weights`.
pub fn run<B: Backend>(args: &BenchArgs, config_dir: &Path, device: B::Device) -> Result<()> {
    let ckpt = HeliosCheckpoint::from_dir(config_dir)
        .with_context(|| format!("cannot read the configs in {}", config_dir.display()))?;
    let (height, width) = (
        args.model.height.unwrap_or(CHECKPOINT_SIZE.0),
        args.model.width.unwrap_or(CHECKPOINT_SIZE.1),
    );
    let (sampling, stages) = match ckpt.pipeline {
        PipelineClass::Single => (Sampling::SingleStage, 1),
        PipelineClass::Pyramid => (Sampling::Pyramid, ckpt.scheduler.stages),
    };
    let spatial = 1usize << ckpt.vae.dim_mult.len().saturating_sub(1);
    let patch = ckpt.transformer.patch_size;
    let multiple = spatial * patch[1].max(patch[2]) * (1 << (stages - 1));
    for (name, v) in [("height", height), ("width", width)] {
        if v == 0 || v % multiple != 0 {
            bail!(
                "--{name} {v} must be a positive multiple of {multiple} (VAE factor x patch x pyramid)"
            );
        }
    }
    let steps = match (&args.model.steps, sampling, ckpt.is_distilled) {
        (Some(s), _, _) => s.clone(),
        (None, Sampling::SingleStage, _) => vec![50],
        (None, Sampling::Pyramid, true) => vec![2; stages],
        (None, Sampling::Pyramid, false) => vec![10; stages],
    };
    if steps.len() != stages || steps.iter().any(|&s| s == 0 || s > 1000) {
        bail!("--steps {steps:?}: give {stages} step count(s) of 1 to 1000");
    }
    let guidance = match (
        ckpt.is_distilled,
        ckpt.is_cfg_zero_star && sampling == Sampling::Pyramid,
    ) {
        (true, _) => GuidanceMode::None,
        (false, true) => GuidanceMode::CfgZeroStar {
            scale: DEFAULT_CFG,
            zero_init_steps: Some(1),
        },
        (false, false) => GuidanceMode::Cfg { scale: DEFAULT_CFG },
    };
    // The DiT as the pipeline runs it (`--precision`; by default half on GPU backends, f32 on the CPU).
    let precision = args.model.precision::<B>(&device);
    let text_layers = args.layers.map(|n| n.min(ckpt.text_encoder.num_layers));

    let start = Instant::now();
    let dit = random_transformer::<B>(
        &ckpt.transformer,
        args.layers,
        precision,
        WEIGHT_SEED,
        &device,
    )?;
    let (dit, quantized) = quantize_blocks(dit, args.model.engine.quantize.into(), &device);
    let vae = random_vae::<B>(&ckpt.vae, WEIGHT_SEED + 1, &device);
    let text = random_text_encoder::<B>(&ckpt.text_encoder, text_layers, WEIGHT_SEED + 2, &device)?;
    sync::<B>(&device)?;
    B::memory_cleanup(&device);
    let built_s = start.elapsed().as_secs_f64();
    let mut memory = PeakMemory::default();
    let weights = memory.sample(&device);
    let steps_text: Vec<String> = steps.iter().map(usize::to_string).collect();
    println!(
        "random weights from {}: DiT {}/{} blocks at {precision:?}, text encoder {}/{} layers, VAE; {width}x{height}, steps {}, {:?}; built in {built_s:.1} s",
        config_dir.display(),
        dit.blocks.len(),
        ckpt.transformer.num_layers,
        text.encoder.block.len(),
        ckpt.text_encoder.num_layers,
        steps_text.join(","),
        args.model.engine.backend,
    );
    // The DiT's weights as stored: the precision's bytes per value, one byte and a float32 scale
    // per block for the quantised ones (the fp32-kept modules are a rounding error at 14B).
    let values = dit.num_params();
    let per_value = match precision {
        Precision::Native(_) => 2,
        Precision::F32 | Precision::EmulatedBf16 => 4,
    };
    let stored = (values - quantized.values) * per_value + stored_bytes(quantized.values);
    println!(
        "DiT weights: {values} values, {:.2} GiB as stored ({} tensors, {} values quantised: {:?})",
        stored as f64 / f64::from(1u32 << 30),
        quantized.tensors,
        quantized.values,
        args.model.engine.quantize,
    );
    let scheduler = FlowScheduler::new(&ckpt.scheduler)?;
    let latent = (height / spatial, width / spatial);
    let bench = Bench {
        ckpt,
        dit,
        vae,
        text,
        scheduler,
        sampling,
        steps,
        guidance,
        latent,
        layout: HistoryLayout::default(),
        device,
    };
    bench.measure(args, &mut memory, weights.map(|w| w.in_use))
}

impl<B: Backend> Bench<B> {
    fn normal<const D: usize>(&self, shape: [usize; D]) -> Tensor<B, D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &self.device)
    }

    /// History, prefix and prompt embeddings as the pipeline passes them for a later chunk.
    fn history(&self) -> Result<HistoryBuffer<B>> {
        let (h, w) = self.latent;
        let c = self.ckpt.transformer.in_channels;
        let mut history = HistoryBuffer::zeros(self.layout, c, h, w, &self.device);
        history.push(self.normal([1, c, self.layout.window(), h, w]))?;
        Ok(history)
    }

    /// Tokens the DiT attends over for current latents of `h x w` (the history at full size).
    fn tokens(&self, h: usize, w: usize) -> usize {
        let [pt, ph, pw] = self.ckpt.transformer.patch_size;
        let (hh, ww) = self.latent;
        let grid =
            |t: usize, k: usize| t.div_ceil(pt * k) * hh.div_ceil(ph * k) * ww.div_ceil(pw * k);
        let l = self.layout;
        self.layout.chunk / pt * (h / ph) * (w / pw)
            + grid(1 + l.short, 1)
            + grid(l.mid, 2)
            + grid(l.long, 4)
    }

    fn measure(
        &self,
        args: &BenchArgs,
        memory: &mut PeakMemory,
        weights: Option<u64>,
    ) -> Result<()> {
        let (runs, warmup) = (args.runs, args.warmup);
        let c = self.ckpt.transformer.in_channels;
        let seq = args
            .model
            .max_sequence_length
            .unwrap_or(helios_model::pipeline::request::DEFAULT_MAX_SEQUENCE_LENGTH);
        let text_dim = self.ckpt.transformer.text_dim;
        let (h, w) = self.latent;
        let chunk = self.layout.chunk;
        let history = self.history()?;
        let prefix = self.normal([1, c, 1, h, w]);
        let terms = history.terms(prefix);
        let cond = self.normal([1, seq, text_dim]);
        let uncond = self
            .guidance
            .needs_uncond()
            .then(|| self.normal([1, seq, text_dim]));
        let indices = self.layout.indices().current;

        // Text encoder: one prompt of `seq` tokens, timed once.
        let ids: Vec<i64> = (0..seq)
            .map(|i| {
                ((i * 7919) % TEXT_EMBEDDING_ROWS.min(self.ckpt.text_encoder.vocab_size)) as i64
            })
            .collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, seq]), &self.device);
        let mask = Tensor::<B, 2, Int>::ones([1, seq], &self.device);
        let text = time(warmup, 1, || {
            let out = self.text.forward(ids.clone(), mask.clone());
            sync::<B>(&self.device)?;
            memory.sample(&self.device);
            drop(out);
            Ok(())
        })?;
        println!(
            "bench part=text tokens={seq} layers={} {}",
            self.text.encoder.block.len(),
            text.fields()
        );

        // The DiT at each stage's size.
        let stages = self.steps.len();
        let mut stage_medians = Vec::with_capacity(stages);
        for stage in 0..stages {
            let down = match self.sampling {
                Sampling::SingleStage => 1,
                Sampling::Pyramid => 1 << (stages - 1 - stage),
            };
            let (sh, sw) = (h / down, w / down);
            let latents = self.normal([1, c, chunk, sh, sw]);
            let timestep = (1000 * (stages - stage) / stages) as f64 - 1.0;
            let t = time(warmup, runs, || {
                let out = self.dit.forward(DitInput {
                    hidden_states: latents.clone(),
                    timesteps: vec![timestep],
                    encoder_hidden_states: cond.clone(),
                    indices: indices.clone(),
                    history: Some(terms.clone()),
                })?;
                sync::<B>(&self.device)?;
                memory.sample(&self.device);
                drop(out);
                Ok(())
            })?;
            println!(
                "bench part=dit stage={stage} latents={chunk}x{sh}x{sw} tokens={} {}",
                self.tokens(sh, sw),
                t.fields()
            );
            stage_medians.push(t.median_s);
        }

        // The VAE decode of one chunk.
        let latents = self.normal([1, c, chunk, h, w]);
        let frames = (chunk - 1) * self.vae.temporal_factor() + 1;
        let vae = time(warmup, runs, || {
            let out = self.vae.decode(latents.clone())?;
            sync::<B>(&self.device)?;
            memory.sample(&self.device);
            drop(out);
            Ok(())
        })?;
        println!(
            "bench part=vae_decode latents={chunk}x{h}x{w} frames={frames} {}",
            vae.fields()
        );

        // The whole chunk: the sampling loop, then the decode.
        let cancel = AtomicBool::new(false);
        let mut calls = 0;
        let mut seed = args.seed;
        let whole = time(warmup, runs, || {
            calls = 0;
            seed += 1;
            let denoiser = ChunkDenoiser {
                dit: &self.dit,
                scheduler: &self.scheduler,
                sampling: self.sampling,
                steps: &self.steps,
                guidance: self.guidance,
                amplify: args.model.amplify_first_chunk,
                cond: cond.clone(),
                uncond: uncond.clone(),
                history: terms.clone(),
                indices: indices.clone(),
                cancel: &cancel,
            };
            let latents = denoiser.run(
                [1, c, chunk, h, w],
                &mut SeededNoise::new(seed),
                &mut |_| calls += 1,
            )?;
            let video = self.vae.decode(latents)?;
            sync::<B>(&self.device)?;
            memory.sample(&self.device);
            drop(video);
            Ok(())
        })?;
        let fps = frames as f64 / whole.median_s;
        println!(
            "bench part=chunk dit_calls={calls} frames={frames} frames_per_s={fps:.3} {}",
            whole.fields()
        );

        let peak = memory.peak();
        println!(
            "bench part=memory weights_bytes={} peak_in_use_bytes={} peak_reserved_bytes={}",
            bytes_field(weights),
            bytes_field(peak.map(|p| p.in_use)),
            bytes_field(peak.map(|p| p.reserved)),
        );
        let dit_s: f64 = self
            .steps
            .iter()
            .zip(&stage_medians)
            .map(|(n, s)| *n as f64 * s)
            .sum::<f64>()
            * if self.guidance.needs_uncond() {
                2.0
            } else {
                1.0
            };
        let gib = |b: u64| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64);
        println!(
            "summary: one chunk of {frames} frames in {:.3} s = {fps:.2} frames/s ({calls} DiT calls ~{dit_s:.3} s by the per-stage medians, VAE decode {:.3} s, text encoder {:.3} s once per prompt); peak device memory {}",
            whole.median_s,
            vae.median_s,
            text.median_s,
            peak.map_or_else(
                || "n/a".to_string(),
                |p| format!("{} in use, {} reserved", gib(p.in_use), gib(p.reserved))
            ),
        );
        println!(
            "median_s={:.4} frames_per_s={fps:.3} min_s={:.4} frames={frames} runs={}",
            whole.median_s, whole.min_s, whole.runs
        );
        Ok(())
    }
}
