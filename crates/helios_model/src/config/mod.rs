//! Typed configs of a diffusers-layout Helios checkpoint.
//!
//! Field names match the upstream `config.json` keys so that serde fills them directly; keys this
//! port does not use are ignored, a missing key takes the upstream class's default, and the string
//! options (`solver_type`, `qk_norm`, ...) are enums. A missing required key, a wrong type or an
//! unknown option is an [`Error::Json`] naming the file and the field.
//! [`HeliosCheckpoint::from_dir`] reads `model_index.json` and every part's config.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod scheduler;
mod text_encoder;
mod transformer;
mod vae;

pub use scheduler::{
    PredictionType, SchedulerClass, SchedulerConfig, SchedulerType, SolverType, TimeShiftType,
};
pub use text_encoder::{FeedForwardProj, TextEncoderConfig};
pub use transformer::{HistoryScaleMode, QkNorm, TransformerConfig};
pub use vae::VaeConfig;

/// Reads and parses one JSON file. A value serde rejects (a missing key, a wrong type, an unknown
/// enum value) is an [`Error::Json`] naming the file and the field.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text)).map_err(|e| {
        Error::Json {
            path: path.to_path_buf(),
            field: e.path().to_string(),
            source: e.into_inner(),
        }
    })
}

/// `#[serde(default = "n::<N>")]`: the literal `N` as a field's default.
const fn n<const N: usize>() -> usize {
    N
}

/// The pipeline class of the checkpoint (`_class_name` of `model_index.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum PipelineClass {
    /// `HeliosPipeline`: single stage (Base).
    #[serde(rename = "HeliosPipeline")]
    Single,
    /// `HeliosPyramidPipeline`: three resolution stages (Mid, Distilled).
    #[serde(rename = "HeliosPyramidPipeline")]
    Pyramid,
}

/// `model_index.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelIndex {
    /// Pipeline class.
    #[serde(rename = "_class_name")]
    pub class_name: PipelineClass,
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

fn expect_class(
    path: &Path,
    component: &str,
    got: &(String, String),
    expected: &[&'static str],
) -> Result<()> {
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
        expect_class(
            &index_path,
            "transformer",
            &index.transformer,
            &["HeliosTransformer3DModel"],
        )?;
        expect_class(&index_path, "vae", &index.vae, &["AutoencoderKLWan"])?;
        expect_class(
            &index_path,
            "text_encoder",
            &index.text_encoder,
            &["UMT5EncoderModel"],
        )?;
        expect_class(
            &index_path,
            "tokenizer",
            &index.tokenizer,
            &["T5TokenizerFast", "T5Tokenizer", "AutoTokenizer"],
        )?;
        expect_class(
            &index_path,
            "scheduler",
            &index.scheduler,
            &["HeliosScheduler", "HeliosDMDScheduler"],
        )?;

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
                format!(
                    "text_dim {} differs from the text encoder's d_model {}",
                    transformer.text_dim, text_encoder.d_model
                ),
            ));
        }
        Ok(Self {
            dir,
            pipeline: index.class_name,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str<T: DeserializeOwned>(name: &str, json: &str) -> (tempfile::TempDir, Result<T>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, json).unwrap();
        let parsed = read_json(&path);
        (dir, parsed)
    }

    /// An unknown option is an `Error::Json` whose message names the file, the field and the value.
    #[test]
    fn unknown_options_name_the_file_and_the_field() {
        let cases = [
            (
                "scheduler_config.json",
                r#"{"solver_type": "bh3"}"#,
                "solver_type",
                "bh3",
            ),
            (
                "scheduler_config.json",
                r#"{"_class_name": "DDIMScheduler"}"#,
                "_class_name",
                "DDIMScheduler",
            ),
            (
                "scheduler_config.json",
                r#"{"prediction_type": "epsilon"}"#,
                "prediction_type",
                "epsilon",
            ),
            (
                "scheduler_config.json",
                r#"{"scheduler_type": "dpm"}"#,
                "scheduler_type",
                "dpm",
            ),
            (
                "scheduler_config.json",
                r#"{"time_shift_type": "cubic"}"#,
                "time_shift_type",
                "cubic",
            ),
        ];
        for (file, json, field, value) in cases {
            let (_dir, parsed) = read_str::<SchedulerConfig>(file, json);
            let err = parsed.unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(&err, Error::Json { field: f, .. } if f == field),
                "{msg}"
            );
            assert!(
                msg.contains(file) && msg.contains(&format!("`{field}`")) && msg.contains(value),
                "{msg}"
            );
        }
        for (json, field) in [
            (r#"{"qk_norm": "layer_norm"}"#, "qk_norm"),
            (r#"{"qk_norm": null}"#, "qk_norm"),
            (
                r#"{"history_scale_mode": "per_token"}"#,
                "history_scale_mode",
            ),
            (r#"{"patch_size": [1, 2, "2"]}"#, "patch_size[2]"),
        ] {
            let (_dir, parsed) = read_str::<TransformerConfig>("config.json", json);
            let msg = parsed.unwrap_err().to_string();
            assert!(
                msg.contains("config.json") && msg.contains(&format!("`{field}`")),
                "{msg}"
            );
        }
        let (_dir, parsed) =
            read_str::<ModelIndex>("model_index.json", r#"{"_class_name": "WanPipeline"}"#);
        let msg = parsed.unwrap_err().to_string();
        assert!(
            msg.contains("model_index.json")
                && msg.contains("`_class_name`")
                && msg.contains("WanPipeline"),
            "{msg}"
        );
    }

    #[test]
    fn missing_keys_take_the_upstream_defaults() {
        let (_dir, t) = read_str::<TransformerConfig>("config.json", "{}");
        assert_eq!(t.unwrap(), TransformerConfig::default());
        let (_dir, s) = read_str::<SchedulerConfig>(
            "scheduler_config.json",
            r#"{"_class_name": "HeliosDMDScheduler"}"#,
        );
        let s = s.unwrap();
        assert_eq!(
            s,
            SchedulerConfig {
                class_name: SchedulerClass::HeliosDmd,
                ..SchedulerConfig::default()
            }
        );
        assert_eq!(s.shift_type(), TimeShiftType::Linear);
        assert_eq!(
            SchedulerConfig::default().shift_type(),
            TimeShiftType::Exponential
        );
        let (_dir, v) = read_str::<VaeConfig>(
            "config.json",
            r#"{"latents_mean": [0.0], "latents_std": [1.0]}"#,
        );
        let v = v.unwrap();
        assert_eq!(
            (
                v.base_dim,
                v.z_dim,
                v.num_res_blocks,
                v.scale_factor_spatial
            ),
            (96, 16, 2, 8)
        );
        assert_eq!(v.dim_mult, [1, 2, 4, 4]);
        let (_dir, e) = read_str::<TextEncoderConfig>(
            "config.json",
            r#"{"vocab_size": 10, "d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 1, "num_heads": 2}"#,
        );
        let e = e.unwrap();
        assert_eq!(
            (
                e.relative_attention_num_buckets,
                e.relative_attention_max_distance,
                e.eos_token_id
            ),
            (32, 128, 1)
        );
        assert_eq!(e.feed_forward_proj, FeedForwardProj::GatedGelu);
    }

    #[test]
    fn options_read_their_diffusers_spellings() {
        let (_dir, s) = read_str::<SchedulerConfig>(
            "scheduler_config.json",
            r#"{"solver_type": "midpoint", "scheduler_type": "euler", "time_shift_type": "exponential"}"#,
        );
        let s = s.unwrap();
        assert_eq!(
            (s.solver_type, s.scheduler_type),
            (SolverType::Bh2, SchedulerType::Euler)
        );
        let (_dir, t) =
            read_str::<TransformerConfig>("config.json", r#"{"history_scale_mode": "scalar"}"#);
        assert_eq!(t.unwrap().history_scale_mode.scales(40), 1);
        assert_eq!(HistoryScaleMode::PerHead.scales(40), 40);
        // What serde writes it reads back.
        let json = serde_json::to_string(&SchedulerConfig::default()).unwrap();
        assert!(
            json.contains(r#""_class_name":"HeliosScheduler""#)
                && json.contains(r#""solver_type":"bh2""#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<SchedulerConfig>(&json).unwrap(),
            SchedulerConfig::default()
        );
    }

    #[test]
    fn inconsistent_values_are_config_errors() {
        let path = Path::new("scheduler_config.json");
        let bad = SchedulerConfig {
            stage_range: vec![0.0, 1.0],
            ..SchedulerConfig::default()
        };
        assert!(matches!(bad.validate(path), Err(Error::Config { .. })));
        let bad = SchedulerConfig {
            solver_order: 0,
            ..SchedulerConfig::default()
        };
        assert!(matches!(bad.validate(path), Err(Error::Config { .. })));
        let dmd = SchedulerConfig {
            class_name: SchedulerClass::HeliosDmd,
            solver_order: 0,
            ..SchedulerConfig::default()
        };
        assert!(dmd.validate(path).is_ok(), "DMD does not read solver_order");
        let bad = TransformerConfig {
            rope_dim: [44, 42, 40],
            ..TransformerConfig::default()
        };
        assert!(matches!(bad.validate(path), Err(Error::Config { .. })));
        assert!(TransformerConfig::default().validate(path).is_ok());
    }
}
