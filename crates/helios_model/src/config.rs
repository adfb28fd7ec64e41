//! Typed configs of a diffusers-layout Helios checkpoint.
//!
//! Field names match the upstream `config.json` keys so that serde fills them directly; keys this
//! port does not use are ignored, and a missing required key is an [`Error::Json`] naming the file
//! and the field. [`HeliosCheckpoint::from_dir`] reads `model_index.json` and every part's config.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Reads and parses one JSON file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: path.to_path_buf(), source })
}

/// `transformer/config.json` of `HeliosTransformer3DModel` (diffusers 0.42.1 defaults).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct TransformerConfig {
    /// Patch size `(t, h, w)` of the current-chunk and short-history patch embeddings.
    #[serde(default = "default_patch")]
    pub patch_size: [usize; 3],
    /// Attention heads.
    #[serde(default = "d40")]
    pub num_attention_heads: usize,
    /// Channels per head.
    #[serde(default = "d128")]
    pub attention_head_dim: usize,
    /// Latent channels in.
    #[serde(default = "d16")]
    pub in_channels: usize,
    /// Latent channels out.
    #[serde(default = "d16")]
    pub out_channels: usize,
    /// Width of the text embeddings (UMT5 `d_model`).
    #[serde(default = "d4096")]
    pub text_dim: usize,
    /// Width of the sinusoidal timestep embedding.
    #[serde(default = "d256")]
    pub freq_dim: usize,
    /// Hidden width of the feed-forward network.
    #[serde(default = "d13824")]
    pub ffn_dim: usize,
    /// Number of transformer blocks.
    #[serde(default = "d40")]
    pub num_layers: usize,
    /// LayerNorm (with affine) before cross-attention.
    #[serde(default = "dtrue")]
    pub cross_attn_norm: bool,
    /// Query/key normalisation; only `rms_norm_across_heads` exists in Helios.
    #[serde(default = "default_qk_norm")]
    pub qk_norm: Option<String>,
    /// Epsilon of every norm.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Extra key/value projections for image conditioning (unused by Helios: `null`).
    #[serde(default)]
    pub added_kv_proj_dim: Option<usize>,
    /// RoPE channels per axis `(t, y, x)`; they sum to `attention_head_dim`.
    #[serde(default = "default_rope_dim")]
    pub rope_dim: [usize; 3],
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Cross-attention only for the current chunk's tokens (history tokens skip it).
    #[serde(default = "dtrue")]
    pub guidance_cross_attn: bool,
    /// History tokens are modulated with the t = 0 embedding.
    #[serde(default = "dtrue")]
    pub zero_history_timestep: bool,
    /// The short / mid / long history patch embeddings exist.
    #[serde(default = "dtrue")]
    pub has_multi_term_memory_patch: bool,
    /// Learned amplification of the history keys in self-attention.
    #[serde(default)]
    pub is_amplify_history: bool,
    /// `per_head` or `scalar` history key scale.
    #[serde(default = "default_history_scale_mode")]
    pub history_scale_mode: String,
}

fn default_patch() -> [usize; 3] {
    [1, 2, 2]
}
fn default_qk_norm() -> Option<String> {
    Some("rms_norm_across_heads".into())
}
fn default_eps() -> f64 {
    1e-6
}
fn default_rope_dim() -> [usize; 3] {
    [44, 42, 42]
}
fn default_theta() -> f64 {
    10000.0
}
fn default_history_scale_mode() -> String {
    "per_head".into()
}
fn d16() -> usize {
    16
}
fn d40() -> usize {
    40
}
fn d128() -> usize {
    128
}
fn d256() -> usize {
    256
}
fn d4096() -> usize {
    4096
}
fn d13824() -> usize {
    13824
}
fn dtrue() -> bool {
    true
}

impl TransformerConfig {
    /// Model width `heads * head_dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Checks the values a forward pass relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(Error::config(path, m));
        if self.num_attention_heads == 0 || self.attention_head_dim == 0 || self.num_layers == 0 {
            return bad("num_attention_heads, attention_head_dim and num_layers must be > 0".into());
        }
        if self.patch_size.contains(&0) {
            return bad(format!("patch_size {:?} has a zero", self.patch_size));
        }
        if self.rope_dim.iter().sum::<usize>() != self.attention_head_dim || self.rope_dim.iter().any(|d| d % 2 != 0) {
            return bad(format!(
                "rope_dim {:?} must be even and sum to attention_head_dim {}",
                self.rope_dim, self.attention_head_dim
            ));
        }
        if let Some(q) = &self.qk_norm
            && q != "rms_norm_across_heads"
        {
            return bad(format!("qk_norm `{q}` is not supported (only rms_norm_across_heads)"));
        }
        if self.added_kv_proj_dim.is_some() {
            return bad("added_kv_proj_dim is not supported by Helios".into());
        }
        if !self.has_multi_term_memory_patch {
            return bad("has_multi_term_memory_patch = false is not supported".into());
        }
        if !matches!(self.history_scale_mode.as_str(), "per_head" | "scalar") {
            return bad(format!("history_scale_mode `{}` is not per_head or scalar", self.history_scale_mode));
        }
        Ok(())
    }
}

/// `vae/config.json` of `AutoencoderKLWan`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct VaeConfig {
    /// Base channel count of the encoder (and decoder unless `decoder_base_dim`).
    #[serde(default = "d96")]
    pub base_dim: usize,
    /// Base channel count of the decoder (`null`: `base_dim`).
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    /// Latent channels.
    #[serde(default = "d16")]
    pub z_dim: usize,
    /// Channel multipliers per level.
    #[serde(default = "default_dim_mult")]
    pub dim_mult: Vec<usize>,
    /// Residual blocks per level.
    #[serde(default = "d2")]
    pub num_res_blocks: usize,
    /// Attention at these scales (empty in Wan 2.1).
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    /// Temporal down-sampling per level (the decoder reverses it).
    #[serde(default = "default_temporal")]
    pub temperal_downsample: Vec<bool>,
    /// Dropout (inference: ignored).
    #[serde(default)]
    pub dropout: f64,
    /// Per-channel latent mean.
    pub latents_mean: Vec<f64>,
    /// Per-channel latent standard deviation.
    pub latents_std: Vec<f64>,
    /// Residual up/down-sampling blocks (Wan 2.2 VAE; not used by Helios).
    #[serde(default)]
    pub is_residual: bool,
    /// Pixel channels in.
    #[serde(default = "d3")]
    pub in_channels: usize,
    /// Pixel channels out.
    #[serde(default = "d3")]
    pub out_channels: usize,
    /// Patchification (Wan 2.2 VAE; `null` for Helios).
    #[serde(default)]
    pub patch_size: Option<usize>,
    /// Temporal compression (4).
    #[serde(default = "d4")]
    pub scale_factor_temporal: usize,
    /// Spatial compression (8).
    #[serde(default = "d8")]
    pub scale_factor_spatial: usize,
}

fn d2() -> usize {
    2
}
fn d3() -> usize {
    3
}
fn d4() -> usize {
    4
}
fn d8() -> usize {
    8
}
fn d96() -> usize {
    96
}
fn default_dim_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn default_temporal() -> Vec<bool> {
    vec![false, true, true]
}

impl VaeConfig {
    /// Checks the values the VAE relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            return Err(Error::config(path, format!("latents_mean/latents_std must have z_dim = {} values", self.z_dim)));
        }
        if self.latents_std.contains(&0.0) {
            return Err(Error::config(path, "latents_std has a zero"));
        }
        if self.temperal_downsample.len() + 1 != self.dim_mult.len() {
            return Err(Error::config(path, "temperal_downsample must have len(dim_mult) - 1 entries"));
        }
        if self.is_residual || self.patch_size.is_some() {
            return Err(Error::config(path, "the Wan 2.2 residual / patchified VAE is not supported"));
        }
        Ok(())
    }
}

/// `text_encoder/config.json` of `UMT5EncoderModel` (transformers).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct TextEncoderConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub d_model: usize,
    /// Channels per head.
    pub d_kv: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets.
    #[serde(default = "d32")]
    pub relative_attention_num_buckets: usize,
    /// Largest distance the buckets distinguish.
    #[serde(default = "d128")]
    pub relative_attention_max_distance: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `gated-gelu` for UMT5.
    #[serde(default = "default_ff_proj")]
    pub feed_forward_proj: String,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: u32,
    /// End-of-sequence token id.
    #[serde(default = "d1u32")]
    pub eos_token_id: u32,
}

fn d32() -> usize {
    32
}
fn d1u32() -> u32 {
    1
}
fn default_ff_proj() -> String {
    "gated-gelu".into()
}

impl TextEncoderConfig {
    /// Checks the values the encoder relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.feed_forward_proj != "gated-gelu" {
            return Err(Error::config(path, format!("feed_forward_proj `{}` is not supported (gated-gelu)", self.feed_forward_proj)));
        }
        if self.num_heads == 0 || self.d_kv == 0 || self.num_layers == 0 || self.relative_attention_num_buckets < 2 {
            return Err(Error::config(path, "num_heads, d_kv, num_layers must be > 0 and buckets >= 2"));
        }
        Ok(())
    }
}

/// How the dynamic shift maps sigmas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeShiftType {
    /// `s' = e^mu / (e^mu + (1/s - 1))`.
    Exponential,
    /// `s' = mu / (mu + (1/s - 1))`.
    Linear,
}

/// Which scheduler class the checkpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SchedulerClass {
    /// `HeliosScheduler` (UniPC; Base and Mid).
    Helios,
    /// `HeliosDMDScheduler` (Distilled).
    HeliosDmd,
}

/// `scheduler/scheduler_config.json` (either `HeliosScheduler` or `HeliosDMDScheduler`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct SchedulerConfig {
    /// `_class_name`.
    #[serde(rename = "_class_name", default = "default_sched_class")]
    pub class_name: String,
    /// Training timesteps (1000).
    #[serde(default = "d1000")]
    pub num_train_timesteps: usize,
    /// Static shift.
    #[serde(default = "d1f")]
    pub shift: f64,
    /// Pyramid stages.
    #[serde(default = "d3")]
    pub stages: usize,
    /// Stage boundaries in [0, 1], `stages + 1` values.
    #[serde(default = "default_stage_range")]
    pub stage_range: Vec<f64>,
    /// Stage-transition re-noise parameter.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// `flow_prediction`.
    #[serde(default = "default_prediction")]
    pub prediction_type: String,
    /// UniPC order.
    #[serde(default = "d2")]
    pub solver_order: usize,
    /// UniPC predicts x0.
    #[serde(default = "dtrue")]
    pub predict_x0: bool,
    /// `bh1` or `bh2`.
    #[serde(default = "default_solver_type")]
    pub solver_type: String,
    /// Lower the order on the last steps.
    #[serde(default = "dtrue")]
    pub lower_order_final: bool,
    /// Steps without the UniC corrector.
    #[serde(default)]
    pub disable_corrector: Vec<usize>,
    /// Flow sigmas.
    #[serde(default = "dtrue")]
    pub use_flow_sigmas: bool,
    /// `unipc` or `euler`.
    #[serde(default = "default_scheduler_type")]
    pub scheduler_type: String,
    /// Resolution-dependent shift `mu`.
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    /// Linear or exponential shift (the default depends on the class).
    #[serde(default)]
    pub time_shift_type: Option<TimeShiftType>,
}

fn d1000() -> usize {
    1000
}
fn d1f() -> f64 {
    1.0
}
fn default_gamma() -> f64 {
    1.0 / 3.0
}
fn default_stage_range() -> Vec<f64> {
    vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
}
fn default_prediction() -> String {
    "flow_prediction".into()
}
fn default_solver_type() -> String {
    "bh2".into()
}
fn default_scheduler_type() -> String {
    "unipc".into()
}
fn default_sched_class() -> String {
    "HeliosScheduler".into()
}

impl SchedulerConfig {
    /// The scheduler class, or an error naming the file.
    pub fn class(&self, path: &Path) -> Result<SchedulerClass> {
        match self.class_name.as_str() {
            "HeliosScheduler" => Ok(SchedulerClass::Helios),
            "HeliosDMDScheduler" => Ok(SchedulerClass::HeliosDmd),
            other => Err(Error::UnknownModelClass {
                path: path.to_path_buf(),
                component: "scheduler".into(),
                class: other.into(),
                expected: vec!["HeliosScheduler", "HeliosDMDScheduler"],
            }),
        }
    }

    /// The shift type, with each class's default.
    pub fn shift_type(&self) -> TimeShiftType {
        self.time_shift_type.unwrap_or(if self.class_name == "HeliosDMDScheduler" {
            TimeShiftType::Linear
        } else {
            TimeShiftType::Exponential
        })
    }

    /// Checks the values the schedulers rely on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        self.class(path)?;
        if self.stages == 0 || self.stage_range.len() != self.stages + 1 {
            return Err(Error::config(path, format!("stage_range must have stages + 1 = {} values", self.stages + 1)));
        }
        if self.prediction_type != "flow_prediction" {
            return Err(Error::config(path, format!("prediction_type `{}` is not supported", self.prediction_type)));
        }
        if !matches!(self.solver_type.as_str(), "bh1" | "bh2" | "midpoint" | "heun" | "logrho") {
            return Err(Error::config(path, format!("solver_type `{}` is not supported", self.solver_type)));
        }
        Ok(())
    }
}

/// The pipeline class of the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PipelineClass {
    /// `HeliosPipeline`: single stage (Base).
    Single,
    /// `HeliosPyramidPipeline`: three resolution stages (Mid, Distilled).
    Pyramid,
}

/// `model_index.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelIndex {
    /// Pipeline class.
    #[serde(rename = "_class_name")]
    pub class_name: String,
    /// Distilled checkpoint (DMD, no CFG).
    #[serde(default)]
    pub is_distilled: bool,
    /// Mid checkpoint (CFG-Zero*).
    #[serde(default)]
    pub is_cfg_zero_star: bool,
    /// `[library, class]`.
    pub transformer: (String, String),
    /// `[library, class]`.
    pub vae: (String, String),
    /// `[library, class]`.
    pub text_encoder: (String, String),
    /// `[library, class]`.
    pub tokenizer: (String, String),
    /// `[library, class]`.
    pub scheduler: (String, String),
}

/// All configs of a checkpoint folder, validated.
#[derive(Debug, Clone)]
pub struct HeliosCheckpoint {
    /// The folder.
    pub dir: PathBuf,
    /// Single-stage or pyramid pipeline.
    pub pipeline: PipelineClass,
    /// Distilled (DMD).
    pub is_distilled: bool,
    /// CFG-Zero* (Mid).
    pub is_cfg_zero_star: bool,
    /// The DiT config.
    pub transformer: TransformerConfig,
    /// The VAE config.
    pub vae: VaeConfig,
    /// The UMT5 config.
    pub text_encoder: TextEncoderConfig,
    /// The scheduler config.
    pub scheduler: SchedulerConfig,
}

fn expect_class(path: &Path, component: &str, got: &(String, String), expected: &[&'static str]) -> Result<()> {
    if expected.contains(&got.1.as_str()) {
        Ok(())
    } else {
        Err(Error::UnknownModelClass {
            path: path.to_path_buf(),
            component: component.into(),
            class: got.1.clone(),
            expected: expected.to_vec(),
        })
    }
}

impl HeliosCheckpoint {
    /// Reads `model_index.json` and each part's config from a diffusers-layout folder.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let index_path = dir.join("model_index.json");
        let index: ModelIndex = read_json(&index_path)?;
        let pipeline = match index.class_name.as_str() {
            "HeliosPipeline" => PipelineClass::Single,
            "HeliosPyramidPipeline" => PipelineClass::Pyramid,
            other => {
                return Err(Error::UnknownModelClass {
                    path: index_path,
                    component: "pipeline".into(),
                    class: other.into(),
                    expected: vec!["HeliosPipeline", "HeliosPyramidPipeline"],
                });
            }
        };
        expect_class(&index_path, "transformer", &index.transformer, &["HeliosTransformer3DModel"])?;
        expect_class(&index_path, "vae", &index.vae, &["AutoencoderKLWan"])?;
        expect_class(&index_path, "text_encoder", &index.text_encoder, &["UMT5EncoderModel"])?;
        expect_class(&index_path, "tokenizer", &index.tokenizer, &["T5TokenizerFast", "T5Tokenizer", "AutoTokenizer"])?;
        expect_class(&index_path, "scheduler", &index.scheduler, &["HeliosScheduler", "HeliosDMDScheduler"])?;

        let p = dir.join("transformer/config.json");
        let transformer: TransformerConfig = read_json(&p)?;
        transformer.validate(&p)?;
        let p = dir.join("vae/config.json");
        let vae: VaeConfig = read_json(&p)?;
        vae.validate(&p)?;
        let p = dir.join("text_encoder/config.json");
        let text_encoder: TextEncoderConfig = read_json(&p)?;
        text_encoder.validate(&p)?;
        let p = dir.join("scheduler/scheduler_config.json");
        let scheduler: SchedulerConfig = read_json(&p)?;
        scheduler.validate(&p)?;
        if transformer.text_dim != text_encoder.d_model {
            return Err(Error::config(
                dir.join("transformer/config.json"),
                format!("text_dim {} differs from the text encoder's d_model {}", transformer.text_dim, text_encoder.d_model),
            ));
        }
        Ok(Self {
            dir,
            pipeline,
            is_distilled: index.is_distilled,
            is_cfg_zero_star: index.is_cfg_zero_star,
            transformer,
            vae,
            text_encoder,
            scheduler,
        })
    }

    /// `<dir>/<part>`.
    pub fn part_dir(&self, part: &str) -> PathBuf {
        self.dir.join(part)
    }
}
