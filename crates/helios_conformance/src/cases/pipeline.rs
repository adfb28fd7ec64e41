//! The `pipe_*` cases: a whole T2V / I2V / V2V generation replayed from the case's recorded draws
//! (`noise_###` in order), checked on the prompt embeddings, chunk 0's per-call DiT tensors and
//! history where stored, the timesteps of every DiT call, each chunk's latents and the frames.
//!
//! Everything comes from the case JSON: the pipeline class, scheduler config and flags, the call
//! kwargs (size, frames, steps, guidance, prompts, amplification, zero-init), the draw list. The
//! generation itself is the library's batch pipeline (a `ChunkStream` run chunk by chunk).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use helios_model::config::{PipelineClass, SchedulerConfig};
use helios_model::pipeline::{
    Conditioning, DitCall, DrawKind, GenerationParams, HeliosPipeline, RecordedDraw, ReplayNoise,
    StreamRequest,
};
use image::RgbImage;
use serde::Deserialize;
use serde_json::Value;

use crate::case::{Case, Tolerance};
use crate::compare::{CheckLine, compare};
use crate::{Outcome, Result};

#[derive(Debug, Deserialize)]
struct DrawSpec {
    name: String,
    kind: DrawSpecKind,
    shape: Vec<usize>,
}

/// `draws[*].kind` of a pipeline case.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DrawSpecKind {
    Normal,
    Uniform,
}

impl From<DrawSpecKind> for DrawKind {
    fn from(kind: DrawSpecKind) -> Self {
        match kind {
            DrawSpecKind::Normal => Self::Normal,
            DrawSpecKind::Uniform => Self::Uniform,
        }
    }
}

#[derive(Debug, Deserialize)]
struct CallSpec {
    chunk: usize,
    branch: String,
    timestep: f64,
}

/// What the run recorded besides the video.
struct Recorded<B: Backend> {
    /// `(chunk, timestep)` of every DiT step (the cond branch).
    timesteps: Vec<(usize, f64)>,
    /// Chunk 0's calls: hidden states and velocity.
    chunk0: Vec<(Tensor<B, 5>, Tensor<B, 5>)>,
}

fn kwarg<T: serde::de::DeserializeOwned>(case: &Case, key: &str) -> Result<Option<T>> {
    let kwargs = case.field("call_kwargs")?;
    match kwargs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| case.field_error(format!("call_kwargs.{key}"), e)),
    }
}

fn required<T: serde::de::DeserializeOwned>(case: &Case, key: &str) -> Result<T> {
    kwarg(case, key)?.ok_or_else(|| case.error(format!("call_kwargs.{key} is missing")))
}

/// The checkpoint with the case's pipeline class, scheduler and flags.
fn pipeline<B: Backend>(
    fixture_dir: &Path,
    case: &Case,
    device: &B::Device,
) -> Result<HeliosPipeline<B>> {
    let class: PipelineClass = case.get("pipeline")?;
    let pc = case.field("pipeline_config")?;
    let flag = |k: &str| pc.get(k).and_then(Value::as_bool).unwrap_or(false);
    let scheduler_class = pc
        .get("scheduler")
        .and_then(|s| s.get(1))
        .and_then(Value::as_str)
        .ok_or_else(|| case.error("pipeline_config.scheduler lacks its class"))?;
    let mut sc = case.field("scheduler_config")?.clone();
    sc["_class_name"] = Value::from(scheduler_class);
    let scheduler: SchedulerConfig =
        serde_json::from_value(sc).map_err(|e| case.field_error("scheduler_config", e))?;
    let zero_init = match kwarg::<bool>(case, "use_zero_init")?.unwrap_or(true) {
        true => Some(kwarg::<usize>(case, "zero_steps")?.unwrap_or(1)),
        false => None,
    };
    Ok(HeliosPipeline::load(fixture_dir, device)?
        .with_scheduling(
            class,
            flag("is_distilled"),
            flag("is_cfg_zero_star"),
            scheduler,
        )?
        .with_zero_init(zero_init))
}

fn u8_images(case: &Case, name: &str) -> Result<Vec<RgbImage>> {
    let (values, shape) = case.i64(name)?;
    let (frames, h, w) = match shape.as_slice() {
        [h, w, 3] => (1, *h, *w),
        [t, h, w, 3] => (*t, *h, *w),
        _ => {
            return Err(case.error(format!(
                "`{name}` has shape {shape:?}, expected [(t,) h, w, 3]"
            )));
        }
    };
    let n = h * w * 3;
    (0..frames)
        .map(|f| {
            let px = values[f * n..(f + 1) * n]
                .iter()
                .map(|&v| v.clamp(0, 255) as u8)
                .collect();
            RgbImage::from_raw(w as u32, h as u32, px)
                .ok_or_else(|| case.error(format!("`{name}`: bad frame size")))
        })
        .collect()
}

fn request(case: &Case) -> Result<StreamRequest> {
    let steps = match kwarg::<Vec<usize>>(case, "pyramid_num_inference_steps_list")? {
        Some(s) => Some(s),
        None => kwarg::<usize>(case, "num_inference_steps")?.map(|n| vec![n]),
    };
    let conditioning = if case.has("input_image_u8") {
        Conditioning::Image(
            u8_images(case, "input_image_u8")?
                .into_iter()
                .next()
                .ok_or_else(|| case.error("no image"))?,
        )
    } else if case.has("input_video_u8") {
        Conditioning::Video(u8_images(case, "input_video_u8")?)
    } else {
        Conditioning::None
    };
    let params = GenerationParams {
        negative_prompt: kwarg(case, "negative_prompt")?,
        height: Some(required(case, "height")?),
        width: Some(required(case, "width")?),
        steps,
        guidance_scale: kwarg(case, "guidance_scale")?,
        seed: 0,
        amplify_first_chunk: kwarg(case, "is_amplify_first_chunk")?.unwrap_or(false),
        max_sequence_length: kwarg(case, "max_sequence_length")?,
    };
    Ok(StreamRequest {
        conditioning,
        ..StreamRequest::with_params(required::<String>(case, "prompt")?, params)
    })
}

fn replay(case: &Case) -> Result<ReplayNoise> {
    let specs: Vec<DrawSpec> = case.get("draws")?;
    let draws = specs
        .into_iter()
        .map(|d| {
            let values = case
                .f32(&d.name)?
                .to_vec::<f32>()
                .map_err(|e| case.data_error(&d.name, e))?;
            Ok(RecordedDraw {
                name: d.name,
                kind: d.kind.into(),
                shape: d.shape,
                values,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ReplayNoise::new(draws))
}

/// `[1, 3, f, h, w]` → `[f, 3, h, w]`.
fn frames_first<B: Backend>(video: &Tensor<B, 5>) -> Tensor<B, 4> {
    let [_, c, f, h, w] = video.dims();
    video.clone().permute([0, 2, 1, 3, 4]).reshape([f, c, h, w])
}

/// 2-D average pooling by `k` of `[f, c, h, w]`.
fn avg_pool<B: Backend>(x: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    let [f, c, h, w] = x.dims();
    x.reshape([f * c, h / k, k, w / k, k])
        .mean_dim(4)
        .mean_dim(2)
        .reshape([f, c, h / k, w / k])
}

fn check<B: Backend, const D: usize>(
    case: &Case,
    name: &str,
    port: Tensor<B, D>,
    tol: &Tolerance,
) -> Result<CheckLine> {
    Ok(compare(
        &case.name,
        name,
        &port.into_data(),
        &case.f32(name)?,
        tol,
    ))
}

/// Runs a `pipe_*` case.
pub fn run<B: Backend>(fixture_dir: &Path, name: &str, device: &B::Device) -> Result<Outcome> {
    let case = &Case::open(fixture_dir, name)?;
    let pipeline = Arc::new(pipeline::<B>(fixture_dir, case, device)?);
    let request = request(case)?;
    let num_frames: usize = required(case, "num_frames")?;
    let noise = replay(case)?;
    let tol0 = case.tolerance("chunk_latents_0")?;
    let mut lines = Vec::new();

    // The prompt embeddings (checked at the chunk-0 tolerance: the case gives them none), at the
    // length the pipeline reads prompts at.
    let text = pipeline.text_encoder();
    let tokens = pipeline.resolve(&request)?.max_sequence_length;
    if case.has("prompt_embeds") {
        lines.push(check(
            case,
            "prompt_embeds",
            text.encode(&[&request.prompt], tokens)?,
            &tol0,
        )?);
    }
    if case.has("negative_prompt_embeds") {
        let negative = request.params.negative_prompt.as_deref().unwrap_or("");
        lines.push(check(
            case,
            "negative_prompt_embeds",
            text.encode(&[negative], tokens)?,
            &tol0,
        )?);
    }

    let plan = helios_model::pipeline::VideoPlan::new(&pipeline, num_frames)?;
    let mut stream = helios_model::pipeline::ChunkStream::with_noise(
        pipeline.clone(),
        request,
        Box::new(noise),
    )?;
    let history = stream.next_history();
    for (stored, term) in [
        ("c0_history_short", Some(history.short)),
        ("c0_history_mid", history.mid),
        ("c0_history_long", history.long),
    ] {
        if let (true, Some(term)) = (case.has(stored), term) {
            lines.push(check(case, stored, term.latents, &tol0)?);
        }
    }

    let cancel = AtomicBool::new(false);
    let mut recorded = Recorded::<B> {
        timesteps: Vec::new(),
        chunk0: Vec::new(),
    };
    let mut chunks = Vec::new();
    for index in 0..plan.chunks {
        let chunk = stream.next_chunk_observed(&cancel, &mut |call: &DitCall<B>| {
            recorded.timesteps.push((index, call.timestep));
            if index == 0 {
                recorded
                    .chunk0
                    .push((call.hidden_states.clone(), call.velocity.clone()));
            }
        })?;
        let latents_name = format!("chunk_latents_{index}");
        if case.has(&latents_name) {
            lines.push(check(
                case,
                &latents_name,
                chunk.latents.clone(),
                &case.tolerance(&latents_name)?,
            )?);
        }
        chunks.push(chunk.frames.take(plan.keep(index)));
    }
    for (i, (hidden, velocity)) in recorded.chunk0.iter().enumerate() {
        for (suffix, t) in [("hidden_states", hidden), ("velocity", velocity)] {
            let stored = format!("c0_call{i:02}_{suffix}");
            if case.has(&stored) {
                lines.push(check(case, &stored, t.clone(), &tol0)?);
            }
        }
    }
    lines.push(timestep_line(case, &recorded.timesteps)?);

    let video = helios_model::pipeline::Frames::cat(chunks)?;
    let frames = frames_first(video.tensor());
    let tol_frames = case.tolerance("frames_sel")?;
    let (index, _) = case.i64("frames_sel_index")?;
    let index: Vec<i32> = index.into_iter().map(|i| i as i32).collect();
    let n = index.len();
    let sel = frames.clone().select(
        0,
        Tensor::<B, 1, Int>::from_data(TensorData::new(index, [n]), device),
    );
    lines.push(check(case, "frames_sel", sel, &tol_frames)?);
    let pool: usize = case.get("frames_pool")?;
    lines.push(check(
        case,
        "frames_avgpool16",
        avg_pool(frames, pool),
        &case.tolerance("frames_avgpool16")?,
    )?);
    Ok(Outcome::Checked(lines))
}

/// The timestep of every DiT call (cond branch) against the case's `transformer_calls`: exact for
/// int64 timesteps, to f64 rounding for float ones.
fn timestep_line(case: &Case, port: &[(usize, f64)]) -> Result<CheckLine> {
    let calls: Vec<CallSpec> = case.get("transformer_calls")?;
    let golden: Vec<(usize, f64)> = calls
        .iter()
        .filter(|c| c.branch == "cond")
        .map(|c| (c.chunk, c.timestep))
        .collect();
    let tol = Tolerance {
        what: "timesteps".into(),
        tensors: vec![],
        max_abs: 1e-9,
        rel_l2: 1e-12,
    };
    let to_data = |v: &[(usize, f64)]| {
        TensorData::new(
            v.iter()
                .flat_map(|&(c, t)| [c as f32, t as f32])
                .collect::<Vec<f32>>(),
            [v.len(), 2],
        )
    };
    let mut line = compare(
        &case.name,
        "dit_call_timesteps",
        &to_data(port),
        &to_data(&golden),
        &tol,
    );
    let exact = port.len() == golden.len()
        && port
            .iter()
            .zip(&golden)
            .all(|(a, b)| a.0 == b.0 && (a.1 - b.1).abs() <= 1e-9 * b.1.abs().max(1.0));
    line.ok = exact;
    if !exact {
        line.note = Some(format!(
            "{} DiT steps vs {} in the case (chunk, t): {port:?}",
            port.len(),
            golden.len()
        ));
    }
    Ok(line)
}
