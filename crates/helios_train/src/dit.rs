//! Stage 2: the Helios DiT trained with Helios' own objective on VAE latents of the clips.
//!
//! A sample is one chunk of a clip (9 latent frames) with what inference gives the DiT for it:
//! the history window of the chunks before it (16 long / 2 mid / 1 short frames, zeros where the
//! clip has none), the prefix latent, and the caption's prompt embeddings. A sample's stream
//! starts in one of the two ways a stream does:
//!
//! - from an image (I2V, the plugin's portrait render): the character's neutral portrait, in the
//!   clip's first light or another one ([`crate::data::portrait`]); the prefix is its latent and the history
//!   begins with it held still, both noised as the pipeline's conditioning noises them;
//! - from the prompt alone (T2V): no history before the first chunk, and the clip's first latent
//!   frame as the prefix after it. Now and then a later chunk's history is dropped as well.
//!
//! The DiT has no absolute position embedding (3D RoPE is relative), so from noise alone it cannot
//! tell the centre of the picture from its corners; the history is what places the face, and the
//! image start is what gives the first chunk one.
//!
//! Flow matching at the points the distilled sampler visits: a random pyramid stage and step, the
//! stage's latents down-sampled from the clean chunk, the stage start made as the pipeline makes it
//! (pure noise at the lowest stage; above it the clean lower stage up-sampled and re-noised with
//! block noise), and the step's input `(1 - sigma) x0 + sigma start`. The DiT predicts a velocity;
//! the loss is on the clean latents it implies (`x - sigma v`), which is what the DMD step keeps.
//! It counts [`DitTraining::expression_weight`] times as much on the face's brows, eyes and mouth
//! as on the rest of the frame: that is all an emotion or a spoken line changes.

use std::collections::HashMap;

use burn::module::AutodiffModule;
use burn::optim::AdamWConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use helios_faces::render::expression_regions;
use helios_model::config::TransformerConfig;
use helios_model::dit::{DitInput, HeliosTransformer3DModel, Precision};
use helios_model::pipeline::ConditioningNoise;
use helios_model::pipeline::HistoryBuffer;
use helios_model::pipeline::HistoryLayout;
use helios_model::pipeline::denoise::pyramid_schedule;
use helios_model::random::random_transformer;
use helios_model::scheduler::pyramid::{downsample, renoise, upsample_nearest2x};
use helios_model::scheduler::{BlockNoise, FlowScheduler, Renoise, pyramid_stage_sizes};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Result, TrainError};
use crate::schedule::LearningRate;
use crate::step::{StepAt, normal, optimiser_step};
use crate::{Progress, TrainPart};

/// How the DiT is trained.
#[derive(Debug, Clone, PartialEq)]
pub struct DitTraining {
    /// Optimiser steps (one chunk each).
    pub steps: usize,
    /// Peak learning rate (AdamW).
    pub learning_rate: f64,
    /// Denoising steps per pyramid stage of the sampler trained for.
    pub steps_per_stage: usize,
    /// Chance that a later chunk's history (and prefix) is dropped (T2V samples).
    pub history_dropout: f64,
    /// Chance that a sample's stream started from an image (the character's portrait, I2V) rather
    /// than from the prompt alone.
    pub image_start: f64,
    /// How often each pyramid stage is trained, relative to the others (the steps within a stage
    /// equally often); empty: every stage equally.
    pub stage_weights: Vec<f64>,
    /// How much more the loss counts on the face's expression regions (the brows and eyes, the
    /// mouth: [`helios_faces::render::expression_regions`]) than on the rest of the frame (1:
    /// uniform). What the prompt's emotion and speech change is a few latent pixels; the rest of
    /// a frame is the history's face and the light, which the DiT learns first.
    pub expression_weight: f64,
}

impl Default for DitTraining {
    fn default() -> Self {
        Self {
            steps: 10000,
            learning_rate: 1e-3,
            steps_per_stage: 2,
            history_dropout: 0.1,
            image_start: 0.7,
            stage_weights: Vec::new(),
            expression_weight: 4.0,
        }
    }
}

/// The VAE latents of one clip: `[1, c, chunks * 9, h, w]` (normalised), and each chunk's caption.
#[derive(Debug, Clone)]
pub struct LatentClip<B: Backend> {
    /// The chunks' latents, one after another.
    pub latents: Tensor<B, 5>,
    /// The latent of the picture an image start begins from `[1, c, 1, h, w]` (normalised): the
    /// prefix of such a stream.
    pub image: Tensor<B, 5>,
    /// That picture held still for a chunk, its last latent frame `[1, c, 1, h, w]`: what an image
    /// start puts in the history (the pipeline's fake image latent).
    pub still: Tensor<B, 5>,
    /// One caption per chunk.
    pub captions: Vec<String>,
}

/// One (stage, step) point of the sampler.
#[derive(Debug, Clone, Copy)]
struct Point {
    stage: usize,
    step: usize,
    timestep: f64,
    sigma: f64,
}

/// Every point the pyramid sampler visits for a chunk of latents `[t, h, w]`, and the re-noise of
/// each stage above the first.
fn sampler_points(
    scheduler: &FlowScheduler,
    patch: [usize; 3],
    chunk: [usize; 3],
    steps: usize,
) -> Result<(Vec<Point>, Vec<Option<Renoise>>)> {
    let [t, h, w] = chunk;
    let stages = scheduler.stages();
    let sizes = pyramid_stage_sizes(h, w, stages)?;
    let mut points = Vec::new();
    let mut renoises = Vec::new();
    for stage in 0..stages {
        let [sh, sw] = sizes[stage.saturating_sub(1)];
        let schedule = pyramid_schedule(scheduler, patch, steps, stage, [t, sh, sw], false)?;
        for s in schedule.steps() {
            points.push(Point {
                stage,
                step: s.index,
                timestep: s.timestep_i64 as f64,
                sigma: s.sigma,
            });
        }
        renoises.push(if stage > 0 {
            Some(scheduler.renoise(stage)?)
        } else {
            None
        });
    }
    Ok((points, renoises))
}

/// Clean latents `times` pyramid stages down: bilinear halvings at the latents' own scale (the
/// pipeline's down-sampling doubles values at each halving to keep noise at unit variance).
fn clean_at<B: Backend>(x0: Tensor<B, 5>, times: usize) -> Result<Tensor<B, 5>> {
    Ok(downsample(x0, times)?.div_scalar((1u32 << times) as f32))
}

/// What the sampler's setup gives the DiT for one training sample: its input, timestep, history
/// and prompt, and the clean latents its prediction is scored against.
struct Sample<B: Backend> {
    input: DitInput<B>,
    target: Tensor<B, 5>,
    sigma: f32,
}

/// Everything fixed across the samples of a run.
struct Setup {
    points: Vec<Point>,
    renoises: Vec<Option<Renoise>>,
    stages: usize,
    block: BlockNoise,
    layout: HistoryLayout,
    chunk: usize,
}

impl Setup {
    fn new(
        config: &TransformerConfig,
        scheduler: &FlowScheduler,
        layout: HistoryLayout,
        latent_hw: [usize; 2],
        steps_per_stage: usize,
    ) -> Result<Self> {
        let chunk = layout.chunk;
        let patch = config.patch_size;
        let (points, renoises) = sampler_points(
            scheduler,
            patch,
            [chunk, latent_hw[0], latent_hw[1]],
            steps_per_stage,
        )?;
        Ok(Setup {
            points,
            renoises,
            stages: scheduler.stages(),
            block: BlockNoise::new(scheduler.gamma(), [patch[1], patch[2]])?,
            layout,
            chunk,
        })
    }

    /// The sample of chunk `k` of `clip` at sampler point `point`, in a stream started as `start`.
    #[allow(clippy::too_many_arguments)]
    fn sample<B: AutodiffBackend>(
        &self,
        clip: &LatentClip<B::InnerBackend>,
        k: usize,
        start: Start,
        point: Point,
        text: &Tensor<B::InnerBackend, 3>,
        rng: &mut StdRng,
        device: &B::Device,
    ) -> Result<Sample<B>> {
        let [_, channels, _, h, w] = clip.latents.dims();
        let chunk = self.chunk;
        let x0: Tensor<B, 5> = Tensor::from_inner(clip.latents.clone().narrow(2, k * chunk, chunk));

        // The history and prefix inference would hold before chunk k.
        let mut history = HistoryBuffer::<B>::zeros(self.layout, channels, h, w, device);
        let earlier = |n: usize| Tensor::<B, 5>::from_inner(clip.latents.clone().narrow(2, 0, n));
        let prefix = match start {
            Start::Image => {
                let noise = ConditioningNoise::default();
                let still = Tensor::from_inner(clip.still.clone());
                history.push(noised(still, noise.video, rng, device))?;
                if k > 0 {
                    history.push(earlier(k * chunk))?;
                }
                noised(
                    Tensor::from_inner(clip.image.clone()),
                    noise.image,
                    rng,
                    device,
                )
            }
            Start::Text { drop: false } if k > 0 => {
                history.push(earlier(k * chunk))?;
                earlier(1)
            }
            Start::Text { .. } => Tensor::zeros([1, channels, 1, h, w], device),
        };

        let stages = self.stages;
        let target = clean_at(x0.clone(), stages - 1 - point.stage)?;
        let dims = target.dims();
        let start = match self.renoises.get(point.stage).copied().flatten() {
            None => normal(rng, dims, device),
            Some(coefficients) => {
                let up = upsample_nearest2x(clean_at(x0, stages - point.stage)?);
                let z_shape = self.block.z_shape(dims)?;
                let z = normal(rng, z_shape, device);
                renoise(up, self.block.sample(z, dims)?, coefficients)?
            }
        };
        let sigma = point.sigma as f32;
        let hidden_states = if point.step == 0 {
            start
        } else {
            target.clone().mul_scalar(1.0 - sigma) + start.mul_scalar(sigma)
        };
        Ok(Sample {
            input: DitInput {
                hidden_states,
                timesteps: vec![point.timestep],
                encoder_hidden_states: Tensor::from_inner(text.clone()),
                indices: self.layout.indices().current,
                history: Some(history.terms(prefix)),
            },
            target,
            sigma,
        })
    }
}

/// How a sample's stream started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// From the character's portrait (I2V, [`crate::data::portrait`]).
    Image,
    /// From the prompt alone (T2V), a later chunk's history dropped if `drop`.
    Text { drop: bool },
}

/// `sigma eps + (1 - sigma) z` with `sigma` uniform in `range`: the pipeline's conditioning noise.
fn noised<B: Backend>(
    z: Tensor<B, 5>,
    (lo, hi): (f64, f64),
    rng: &mut StdRng,
    device: &B::Device,
) -> Tensor<B, 5> {
    let sigma = rng.random_range(lo..=hi) as f32;
    normal::<B, 5>(rng, z.dims(), device).mul_scalar(sigma) + z.mul_scalar(1.0 - sigma)
}

/// The prompt embeddings of chunk `k`'s caption.
fn prompt_of<'a, B: Backend>(
    clip: &LatentClip<B>,
    k: usize,
    embeddings: &'a HashMap<String, Tensor<B, 3>>,
) -> Result<&'a Tensor<B, 3>> {
    let caption = clip.captions.get(k).map(String::as_str).unwrap_or_default();
    embeddings.get(caption).ok_or_else(|| {
        TrainError::Options(format!("no prompt embedding for the caption {caption:?}"))
    })
}

/// Per-position loss weights of a `[h, w]` latent frame, `[1, 1, 1, h, w]` with mean 1: `weight`
/// times as much on the share of each latent pixel inside the face's expression regions as
/// outside them.
fn expression_weights<B: Backend>(
    h: usize,
    w: usize,
    weight: f64,
    device: &B::Device,
) -> Tensor<B, 5> {
    let regions = expression_regions();
    let overlap = |a0: f32, a1: f32, b0: f32, b1: f32| (a1.min(b1) - a0.max(b0)).max(0.0);
    let mut values = Vec::with_capacity(h * w);
    for i in 0..h {
        let (y0, y1) = (i as f32 / h as f32, (i + 1) as f32 / h as f32);
        for j in 0..w {
            let (x0, x1) = (j as f32 / w as f32, (j + 1) as f32 / w as f32);
            let area = (x1 - x0) * (y1 - y0);
            let covered: f32 = regions
                .iter()
                .map(|r| overlap(x0, x1, r[0], r[2]) * overlap(y0, y1, r[1], r[3]))
                .sum::<f32>()
                / area;
            values.push(1.0 + (weight as f32 - 1.0) * covered.min(1.0));
        }
    }
    let mean = values.iter().sum::<f32>() / values.len().max(1) as f32;
    values.iter_mut().for_each(|v| *v /= mean.max(f32::EPSILON));
    Tensor::from_data(TensorData::new(values, [1, 1, 1, h, w]), device)
}

/// The expression weights of each latent frame size a run meets ([`expression_weights`]), made
/// once per size; none for a weight of 1 (a uniform loss).
struct ExpressionWeights<B: Backend> {
    weight: f64,
    by_size: HashMap<[usize; 2], Tensor<B, 5>>,
}

impl<B: Backend> ExpressionWeights<B> {
    fn new(weight: f64) -> Self {
        Self {
            weight,
            by_size: HashMap::new(),
        }
    }

    fn of(&mut self, h: usize, w: usize, device: &B::Device) -> Option<Tensor<B, 5>> {
        if self.weight == 1.0 {
            return None;
        }
        let weight = self.weight;
        Some(
            self.by_size
                .entry([h, w])
                .or_insert_with(|| expression_weights(h, w, weight, device))
                .clone(),
        )
    }
}

/// The loss of one sample: the squared error of the clean latents the predicted velocity implies
/// (`x - sigma v`), weighted by `weights` (`[1, 1, 1, h, w]`) where given.
fn sample_loss<B: Backend>(
    model: &HeliosTransformer3DModel<B>,
    sample: Sample<B>,
    weights: &mut ExpressionWeights<B>,
) -> Result<Tensor<B, 1>> {
    let Sample {
        input,
        target,
        sigma,
    } = sample;
    let x = input.hidden_states.clone();
    let velocity = model.forward(input)?;
    let predicted = x - velocity.mul_scalar(sigma);
    let error = (predicted - target).powi_scalar(2);
    let [_, _, _, h, w] = error.dims();
    Ok(match weights.of(h, w, &error.device()) {
        Some(weights) => (error * weights).mean(),
        None => error.mean(),
    })
}

/// The loss at one point of the sampler, averaged over samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointLoss {
    /// The pyramid stage (0 = the lowest resolution).
    pub stage: usize,
    /// The step within the stage.
    pub step: usize,
    /// The point's noise level.
    pub sigma: f64,
    /// The model's loss.
    pub model: f32,
    /// The loss of taking the input itself as the clean latents.
    pub identity: f32,
}

/// The loss of a trained `model` at each point of the sampler, on the first chunk of each of
/// `clips` or on their later chunks, in streams started from the character's portrait (`image`)
/// or from the prompt alone: where it has learned to denoise and where it still predicts little more
/// than its input.
#[allow(clippy::too_many_arguments)]
pub fn point_losses<B: AutodiffBackend>(
    model: &HeliosTransformer3DModel<B>,
    config: &TransformerConfig,
    scheduler: &FlowScheduler,
    layout: HistoryLayout,
    clips: &[LatentClip<B::InnerBackend>],
    embeddings: &HashMap<String, Tensor<B::InnerBackend, 3>>,
    steps_per_stage: usize,
    first_chunk: bool,
    image: bool,
    seed: u64,
    device: &B::Device,
) -> Result<Vec<PointLoss>> {
    let Some(first) = clips.first() else {
        return Err(TrainError::Options("no clips".into()));
    };
    let [_, _, _, h, w] = first.latents.dims();
    let setup = Setup::new(config, scheduler, layout, [h, w], steps_per_stage)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut uniform = ExpressionWeights::new(1.0);
    let mut out = Vec::with_capacity(setup.points.len());
    for &point in &setup.points {
        let (mut model_sum, mut identity_sum, mut n) = (0.0f32, 0.0f32, 0usize);
        for clip in clips {
            let chunks = clip.latents.dims()[2] / setup.chunk;
            let ks: Vec<usize> = if first_chunk {
                vec![0]
            } else {
                (1..chunks).collect()
            };
            for k in ks {
                let text = prompt_of(clip, k, embeddings)?;
                let start = if image {
                    Start::Image
                } else {
                    Start::Text { drop: false }
                };
                let sample = setup.sample::<B>(clip, k, start, point, text, &mut rng, device)?;
                // A model that learned nothing predicts its input (its identity start).
                let identity = (sample.input.hidden_states.clone() - sample.target.clone())
                    .powi_scalar(2)
                    .mean();
                identity_sum += identity.into_scalar().elem::<f32>();
                model_sum += sample_loss(model, sample, &mut uniform)?
                    .into_scalar()
                    .elem::<f32>();
                n += 1;
            }
        }
        let n = n.max(1) as f32;
        out.push(PointLoss {
            stage: point.stage,
            step: point.step,
            sigma: point.sigma,
            model: model_sum / n,
            identity: identity_sum / n,
        });
    }
    Ok(out)
}

/// The distribution of the sampler points trained: each stage's weight shared by its steps.
fn point_weights(setup: &Setup, stage_weights: &[f64]) -> Result<WeightedIndex<f64>> {
    let equal = vec![1.0; setup.stages];
    let stage_weights = if stage_weights.is_empty() {
        &equal
    } else {
        stage_weights
    };
    if stage_weights.len() != setup.stages {
        return Err(TrainError::Options(format!(
            "{} stage weights given, the scheduler has {} stages",
            stage_weights.len(),
            setup.stages
        )));
    }
    let weights = setup.points.iter().map(|p| {
        let steps = setup.points.iter().filter(|q| q.stage == p.stage).count();
        stage_weights[p.stage] / steps as f64
    });
    WeightedIndex::new(weights).map_err(|e| {
        TrainError::Options(format!(
            "stage weights {stage_weights:?} are not usable weights: {e}"
        ))
    })
}

/// Trains a DiT of `config` from random weights on `clips`, with `embed` giving the prompt
/// embeddings of a caption (on the inner backend).
#[allow(clippy::too_many_arguments)]
pub fn train_dit<B: AutodiffBackend>(
    config: &TransformerConfig,
    scheduler: &FlowScheduler,
    layout: HistoryLayout,
    clips: &[LatentClip<B::InnerBackend>],
    embeddings: &HashMap<String, Tensor<B::InnerBackend, 3>>,
    options: &DitTraining,
    seed: u64,
    device: &B::Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<HeliosTransformer3DModel<B::InnerBackend>> {
    let Some(first) = clips.first() else {
        return Err(TrainError::Options("no training clips".into()));
    };
    let weight = options.expression_weight;
    if !(weight.is_finite() && weight > 0.0) {
        return Err(TrainError::Options(format!(
            "the expression weight must be a positive number, not {weight}"
        )));
    }
    let [_, _, _, h, w] = first.latents.dims();
    let setup = Setup::new(config, scheduler, layout, [h, w], options.steps_per_stage)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let model = random_transformer::<B>(config, None, Precision::F32, seed, device)?;
    let mut model = crate::init::identity_start(model, seed, device);
    let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
    let schedule = LearningRate::new(options.learning_rate, options.steps);
    let pick = point_weights(&setup, &options.stage_weights)?;
    let mut weights = ExpressionWeights::new(weight);

    for step in 0..options.steps {
        let clip = &clips[rng.random_range(0..clips.len())];
        let chunks = clip.latents.dims()[2] / setup.chunk;
        let k = rng.random_range(0..chunks.max(1));
        let text = prompt_of(clip, k, embeddings)?;
        let start = if rng.random_bool(options.image_start) {
            Start::Image
        } else {
            Start::Text {
                drop: k > 0 && rng.random_bool(options.history_dropout),
            }
        };
        let point = setup.points[pick.sample(&mut rng)];
        let sample = setup.sample::<B>(clip, k, start, point, text, &mut rng, device)?;
        let loss = sample_loss(&model, sample, &mut weights)?;
        let at = StepAt {
            part: TrainPart::Transformer,
            step,
            steps: options.steps,
            learning_rate: schedule.at(step),
        };
        model = optimiser_step(model, &mut optim, loss, at, progress)?;
    }
    Ok(model.valid())
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;

    use super::expression_weights;

    #[test]
    fn expression_weights_have_mean_one_and_weigh_the_face_features() {
        let device = Default::default();
        let weights = expression_weights::<NdArray<f32>>(16, 16, 4.0, &device);
        let values: Vec<f32> = weights.into_data().to_vec().unwrap();
        let at = |row: usize, col: usize| values[row * 16 + col];
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        assert!((mean - 1.0).abs() < 1e-5, "mean {mean}");
        // The mouth (row 11, the centre columns) and the eyes (row 7) against a corner and the
        // hair on top of the head.
        let corner = at(0, 0);
        assert!(at(11, 8) > 3.5 * corner, "{} vs {corner}", at(11, 8));
        assert!(at(7, 5) > 3.5 * corner, "{} vs {corner}", at(7, 5));
        assert_eq!(at(1, 8), corner);
        let uniform = expression_weights::<NdArray<f32>>(16, 16, 1.0, &device);
        let uniform: Vec<f32> = uniform.into_data().to_vec().unwrap();
        assert!(uniform.iter().all(|v| (v - 1.0).abs() < 1e-6));
    }
}
