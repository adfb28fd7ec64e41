//! The demo checkpoint's configs and its word-level tokenizer, written into the output folder as a
//! diffusers checkpoint reads them.
//!
//! The shapes are those of the tiny golden checkpoint where speed matters (the Wan VAE: base
//! dimension 8, 16 latent channels; the UMT5 encoder: 2 layers of width 32) and a wider DiT (4
//! blocks of 4 heads x 32) so that it can learn faces. The scheduler is Helios-Distilled's DMD
//! (2 steps, no CFG), the one the DiT is trained for, with a single pyramid stage: at 128x128 the
//! lower stages of the 14B model's pyramid would hold 2x2 and 4x4 tokens per frame, too coarse to
//! place a face, and the full-resolution stage's tokens line up with the history's short-term
//! tokens, so the DiT can take the face from the history where it is.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::error::{Result, TrainError};

/// Prompt tokens the demo model reads (its tokenizer's `model_max_length`, which the pipeline
/// takes when a request leaves the length unset): every caption of the data fits, the longest
/// filling more than half of it (a test), and every padding row past the prompt is one more key
/// for the DiT's cross-attention to look past on its way to the few words that name the emotion.
pub const TEXT_TOKENS: usize = 96;

/// DiT blocks of the demo model.
pub const DIT_LAYERS: usize = 4;
/// DiT attention heads (of width 32).
pub const DIT_HEADS: usize = 4;

/// `model_index.json`: Helios-Distilled (the pyramid pipeline with the DMD scheduler).
pub fn model_index() -> Value {
    json!({
        "_class_name": "HeliosPyramidPipeline",
        "_diffusers_version": "0.42.1",
        "is_cfg_zero_star": false,
        "is_distilled": true,
        "scheduler": ["diffusers", "HeliosDMDScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "HeliosTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"]
    })
}

/// `scheduler/scheduler_config.json`: HeliosDMDScheduler, one stage at full resolution.
pub fn scheduler() -> Value {
    json!({
        "_class_name": "HeliosDMDScheduler",
        "_diffusers_version": "0.42.1",
        "gamma": 1.0 / 3.0,
        "num_train_timesteps": 1000,
        "prediction_type": "flow_prediction",
        "shift": 1.0,
        "stage_range": [0.0, 1.0],
        "stages": 1,
        "time_shift_type": "linear",
        "use_dynamic_shifting": true,
        "use_flow_sigmas": true
    })
}

/// `transformer/config.json`.
pub fn transformer() -> Value {
    json!({
        "_class_name": "HeliosTransformer3DModel",
        "_diffusers_version": "0.42.1",
        "added_kv_proj_dim": null,
        "attention_head_dim": 32,
        "cross_attn_norm": true,
        "eps": 1e-6,
        "ffn_dim": 4 * 32 * DIT_HEADS,
        "freq_dim": 256,
        "guidance_cross_attn": true,
        "has_multi_term_memory_patch": true,
        "history_scale_mode": "per_head",
        "in_channels": 16,
        "is_amplify_history": false,
        "num_attention_heads": DIT_HEADS,
        "num_layers": DIT_LAYERS,
        "out_channels": 16,
        "patch_size": [1, 2, 2],
        "qk_norm": "rms_norm_across_heads",
        "rope_dim": [12, 10, 10],
        "rope_theta": 10000.0,
        "text_dim": 32,
        "zero_history_timestep": true
    })
}

/// `vae/config.json` with the per-channel latent statistics measured on the training frames.
pub fn vae(latents_mean: &[f32], latents_std: &[f32]) -> Value {
    json!({
        "_class_name": "AutoencoderKLWan",
        "_diffusers_version": "0.42.1",
        "attn_scales": [],
        "base_dim": 8,
        "decoder_base_dim": null,
        "dim_mult": [1, 1, 1, 1],
        "dropout": 0.0,
        "in_channels": 3,
        "is_residual": false,
        "latents_mean": latents_mean,
        "latents_std": latents_std,
        "num_res_blocks": 1,
        "out_channels": 3,
        "patch_size": null,
        "scale_factor_spatial": 8,
        "scale_factor_temporal": 4,
        "temperal_downsample": [false, true, true],
        "z_dim": 16
    })
}

/// `vae/config.json` before training (unit latent statistics).
pub fn vae_untrained() -> Value {
    vae(&[0.0; 16], &[1.0; 16])
}

/// `text_encoder/config.json` for a vocabulary of `vocab_size` pieces.
pub fn text_encoder(vocab_size: usize) -> Value {
    json!({
        "architectures": ["UMT5EncoderModel"],
        "classifier_dropout": 0.0,
        "d_ff": 64,
        "d_kv": 8,
        "d_model": 32,
        "decoder_start_token_id": 0,
        "dense_act_fn": "gelu_new",
        "dropout_rate": 0.0,
        "dtype": "float32",
        "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu",
        "initializer_factor": 1.0,
        "is_decoder": false,
        "is_encoder_decoder": true,
        "is_gated_act": true,
        "layer_norm_epsilon": 1e-6,
        "model_type": "umt5",
        "num_decoder_layers": 2,
        "num_heads": 4,
        "num_layers": 2,
        "pad_token_id": 0,
        "relative_attention_max_distance": 128,
        "relative_attention_num_buckets": 32,
        "tie_word_embeddings": true,
        "vocab_size": vocab_size
    })
}

/// A T5-style Unigram `tokenizer.json` whose vocabulary has every word of `words` as one piece
/// (with and without the word-start mark), and single characters for anything else. Returns the
/// JSON and the vocabulary size.
pub fn tokenizer(words: &BTreeSet<String>) -> (Value, usize) {
    let mut vocab: Vec<(String, f64)> = vec![
        ("<pad>".into(), 0.0),
        ("</s>".into(), 0.0),
        ("<unk>".into(), 0.0),
        ("\u{2581}".into(), -3.0),
    ];
    let mut seen: BTreeSet<String> = vocab.iter().map(|(p, _)| p.clone()).collect();
    let mut add = |piece: String, score: f64, vocab: &mut Vec<(String, f64)>| {
        if seen.insert(piece.clone()) {
            vocab.push((piece, score));
        }
    };
    for c in (b'!'..=b'~').map(char::from) {
        add(format!("\u{2581}{c}"), -8.0, &mut vocab);
        add(c.to_string(), -10.0, &mut vocab);
    }
    for word in words {
        add(format!("\u{2581}{word}"), -5.0, &mut vocab);
        add(word.clone(), -7.0, &mut vocab);
    }
    let size = vocab.len();
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true}
        ]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}
            ],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}
        },
        "decoder": {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true},
        "model": {
            "type": "Unigram",
            "unk_id": 2,
            "byte_fallback": false,
            "vocab": vocab.into_iter().map(|(p, s)| json!([p, s])).collect::<Vec<_>>()
        }
    });
    (json, size)
}

/// `tokenizer/tokenizer_config.json`.
pub fn tokenizer_config() -> Value {
    json!({
        "tokenizer_class": "T5TokenizerFast",
        "model_max_length": TEXT_TOKENS,
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "extra_ids": 0,
        "additional_special_tokens": [],
        "clean_up_tokenization_spaces": false
    })
}

/// `tokenizer/special_tokens_map.json`.
pub fn special_tokens_map() -> Value {
    json!({"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"})
}

/// Writes `value` as pretty JSON to `dir/name`, creating `dir`.
pub fn write_json(dir: &Path, name: &str, value: &Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, text + "\n").map_err(|source| TrainError::Write { path, source })
}
