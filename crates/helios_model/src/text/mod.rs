//! Text: prompts → UMT5 prompt embeddings, as the Helios pipelines make them.
//!
//! Port of diffusers `HeliosPipeline._get_t5_prompt_embeds` (`pipelines/helios/pipeline_helios.py`,
//! 0.42.1; the pyramid pipeline has the same code):
//!
//! 1. [`prompt::prompt_clean`] each prompt (HTML unescaping, whitespace collapsing; ftfy is not
//!    reproduced, see that module);
//! 2. [`tokenizer::PromptTokenizer`]: `padding="max_length"`, `truncation=True`, `</s>` appended;
//! 3. [`umt5::UMT5EncoderModel`] with the attention mask → `last_hidden_state`;
//! 4. rows at or past each prompt's real length zeroed, the length kept at `max_sequence_length`.
//!
//! [`TextEncoder`] bundles the tokenizer and the encoder of a checkpoint folder and exposes each step.

pub mod prompt;
pub mod tokenizer;
pub mod umt5;

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::config::{TextEncoderConfig, read_json};
use crate::error::{Error, Result};
use crate::weights::{LoadProgress, SafetensorsSet, load_module};

pub use tokenizer::{PromptTokenizer, TokenizedPrompts};
pub use umt5::UMT5EncoderModel;

/// The tokenizer and UMT5 encoder of a Helios checkpoint: prompts in, prompt embeddings out.
#[derive(Debug)]
pub struct TextEncoder<B: Backend> {
    tokenizer: PromptTokenizer,
    model: UMT5EncoderModel<B>,
    config: TextEncoderConfig,
    device: B::Device,
}

impl<B: Backend> TextEncoder<B> {
    /// Loads `<checkpoint_dir>/tokenizer/tokenizer.json` and `<checkpoint_dir>/text_encoder/`
    /// (`config.json` and `model.safetensors`, or its shards through `model.safetensors.index.json`).
    pub fn load(checkpoint_dir: &Path, device: &B::Device) -> Result<Self> {
        Self::load_with_progress(checkpoint_dir, device, &mut |_| {})
    }

    /// [`Self::load`], reporting progress per loaded tensor.
    pub fn load_with_progress(
        checkpoint_dir: &Path,
        device: &B::Device,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self> {
        Self::from_parts(
            &checkpoint_dir.join("tokenizer").join("tokenizer.json"),
            &checkpoint_dir.join("text_encoder"),
            device,
            progress,
        )
    }

    /// Loads a `tokenizer.json` and a `UMT5EncoderModel` folder given separately.
    pub fn from_parts(
        tokenizer_json: &Path,
        text_encoder_dir: &Path,
        device: &B::Device,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self> {
        let config_path = text_encoder_dir.join("config.json");
        let config: TextEncoderConfig = read_json(&config_path)?;
        config.validate(&config_path)?;
        let tokenizer = PromptTokenizer::from_file(tokenizer_json)?;
        let set = SafetensorsSet::open("text_encoder", text_encoder_dir, "model")?;
        // Some exports store the tied embedding only under its encoder name.
        let embedding_only_in_encoder =
            !set.contains("shared.weight") && set.contains("encoder.embed_tokens.weight");
        let map = umt5::key_map(embedding_only_in_encoder);
        let (model, report) =
            load_module(UMT5EncoderModel::new(&config, device), &set, &map, progress)?;
        tracing::debug!(tensors = report.applied.len(), ignored = ?report.ignored, "text encoder loaded");
        Ok(Self {
            tokenizer,
            model,
            config,
            device: device.clone(),
        })
    }

    /// The encoder config.
    pub fn config(&self) -> &TextEncoderConfig {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &PromptTokenizer {
        &self.tokenizer
    }

    /// The encoder.
    pub fn model(&self) -> &UMT5EncoderModel<B> {
        &self.model
    }

    /// Cleans (see [`prompt::prompt_clean`]) and tokenizes `prompts` to exactly
    /// `max_sequence_length` tokens each.
    pub fn tokenize(
        &self,
        prompts: &[&str],
        max_sequence_length: usize,
    ) -> Result<TokenizedPrompts> {
        let cleaned: Vec<String> = prompts.iter().map(|p| prompt::prompt_clean(p)).collect();
        let cleaned: Vec<&str> = cleaned.iter().map(String::as_str).collect();
        self.tokenizer.tokenize(&cleaned, max_sequence_length)
    }

    /// The raw encoder output `last_hidden_state` `[b, max_len, d_model]` (padded rows are not zero).
    pub fn forward(&self, tokens: &TokenizedPrompts) -> Result<Tensor<B, 3>> {
        let shape = [tokens.batch, tokens.max_len];
        if tokens.batch == 0 || tokens.max_len == 0 {
            return Err(Error::InvalidRequest(
                "no prompt (or a zero sequence length) to encode".into(),
            ));
        }
        if tokens.ids.len() != tokens.batch * tokens.max_len
            || tokens.mask.len() != tokens.ids.len()
            || tokens.seq_lens.len() != tokens.batch
        {
            return Err(Error::Shape {
                what: "token ids and mask".into(),
                expected: format!("{} values each", tokens.batch * tokens.max_len),
                got: format!(
                    "{} ids, {} mask values",
                    tokens.ids.len(),
                    tokens.mask.len()
                ),
            });
        }
        if let Some(id) = tokens
            .ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(Error::InvalidRequest(format!(
                "token id {id} is outside the text encoder's vocabulary of {} (tokenizer {} does not match the model)",
                self.config.vocab_size,
                self.tokenizer.path().display()
            )));
        }
        let ints = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
            Tensor::<B, 2, Int>::from_data(TensorData::new(v, shape), &self.device)
        };
        Ok(self.model.forward(ints(&tokens.ids), ints(&tokens.mask)))
    }

    /// The pipeline's post-processing: rows `>= seq_len` of each prompt set to zero.
    pub fn zero_padding_rows(
        &self,
        last_hidden_state: Tensor<B, 3>,
        tokens: &TokenizedPrompts,
    ) -> Tensor<B, 3> {
        let [b, s, _] = last_hidden_state.dims();
        let seq_len = |i: usize| tokens.seq_lens.get(i).copied().unwrap_or(0);
        let pad: Vec<bool> = (0..b)
            .flat_map(|i| (0..s).map(move |j| j >= seq_len(i)))
            .collect();
        let pad = Tensor::<B, 2, Bool>::from_data(TensorData::new(pad, [b, s]), &self.device);
        last_hidden_state.mask_fill(pad.unsqueeze_dim::<3>(2), 0.0)
    }

    /// Prompt embeddings `[b, max_sequence_length, d_model]` as the pipeline feeds them to the DiT:
    /// cleaned, tokenized, encoded, rows past each prompt's real length zeroed. An empty prompt is
    /// valid (it encodes `</s>` alone); a long one is truncated to `max_sequence_length - 1` tokens.
    pub fn encode(&self, prompts: &[&str], max_sequence_length: usize) -> Result<Tensor<B, 3>> {
        let tokens = self.tokenize(prompts, max_sequence_length)?;
        let hidden = self.forward(&tokens)?;
        Ok(self.zero_padding_rows(hidden, &tokens))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::TestBackend;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("embedded/tiny-helios")
    }

    /// A copy of the fixture's `tokenizer/` and `text_encoder/` in a temp dir, to break.
    fn copy_checkpoint() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for part in ["tokenizer", "text_encoder"] {
            std::fs::create_dir(dir.path().join(part)).unwrap();
            for entry in std::fs::read_dir(fixture().join(part)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dir.path().join(part).join(entry.file_name())).unwrap();
            }
        }
        dir
    }

    fn load(dir: &Path) -> Result<TextEncoder<TestBackend>> {
        TextEncoder::load(dir, &Default::default())
    }

    #[test]
    fn encode_zeroes_rows_past_the_real_length() {
        let enc = load(&fixture()).unwrap();
        let prompts = ["", "a cat", &"a dog ".repeat(100)];
        let tokens = enc.tokenize(&prompts, 8).unwrap();
        assert_eq!(tokens.seq_lens, vec![1, 3, 8]);
        let embeds = enc.encode(&prompts, 8).unwrap();
        assert_eq!(embeds.dims(), [3, 8, enc.config().d_model]);
        let rows = embeds.abs().sum_dim(2).into_data().to_vec::<f32>().unwrap();
        for (i, &len) in tokens.seq_lens.iter().enumerate() {
            for (j, &row) in rows[i * 8..(i + 1) * 8].iter().enumerate() {
                assert_eq!(row == 0.0, j >= len, "prompt {i} row {j}: {row}");
            }
        }
    }

    #[test]
    fn requests_the_model_cannot_serve_are_errors() {
        let enc = load(&fixture()).unwrap();
        assert!(matches!(enc.encode(&[], 8), Err(Error::InvalidRequest(_))));
        assert!(matches!(
            enc.encode(&["a cat"], 0),
            Err(Error::InvalidRequest(_))
        ));
        let mut tokens = enc.tokenize(&["a cat"], 4).unwrap();
        tokens.ids[0] = enc.config().vocab_size as u32;
        assert!(matches!(
            enc.forward(&tokens),
            Err(Error::InvalidRequest(_))
        ));
        tokens.ids.pop();
        assert!(matches!(enc.forward(&tokens), Err(Error::Shape { .. })));
    }

    #[test]
    fn missing_or_malformed_tokenizer_is_a_typed_error() {
        let dir = copy_checkpoint();
        let tok = dir.path().join("tokenizer/tokenizer.json");
        std::fs::write(&tok, "{\"model\": 3").unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Tokenizer { path, .. }) if path == tok));
        std::fs::remove_file(&tok).unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Io { path, .. }) if path == tok));
    }

    #[test]
    fn missing_weights_or_config_are_typed_errors() {
        let dir = copy_checkpoint();
        let weights = dir.path().join("text_encoder/model.safetensors");
        std::fs::write(&weights, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Safetensors { .. })));
        std::fs::remove_file(&weights).unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Io { path, .. }) if path == weights));
        std::fs::remove_file(dir.path().join("text_encoder/config.json")).unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Io { .. })));
    }

    #[test]
    fn a_config_that_does_not_match_the_weights_is_a_shape_error() {
        let dir = copy_checkpoint();
        let config_path = dir.path().join("text_encoder/config.json");
        let mut config: serde_json::Value = read_json(&config_path).unwrap();
        config["d_ff"] = serde_json::json!(48);
        std::fs::write(&config_path, config.to_string()).unwrap();
        match load(dir.path()) {
            Err(Error::TensorShape {
                key, expected, got, ..
            }) => {
                assert!(key.contains("DenseReluDense"), "{key}");
                assert_ne!(expected, got);
            }
            other => panic!("expected a shape error, got {other:?}"),
        }
        config["d_ff"] = serde_json::json!(64);
        config["num_layers"] = serde_json::json!(1);
        std::fs::write(&config_path, config.to_string()).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(Error::UnexpectedTensors { .. })
        ));
        config["num_layers"] = serde_json::json!(3);
        std::fs::write(&config_path, config.to_string()).unwrap();
        assert!(matches!(load(dir.path()), Err(Error::MissingTensor { .. })));
    }

    /// The embedding stored under `encoder.embed_tokens.weight` (only, or as an extra tied copy)
    /// loads to the same encoder.
    #[test]
    fn embedding_under_either_name_loads() {
        let dir = copy_checkpoint();
        let weights = dir.path().join("text_encoder/model.safetensors");
        let bytes = std::fs::read(&weights).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let rename = |both: bool| {
            let mut views = Vec::new();
            for (name, view) in st.tensors() {
                if name == "shared.weight" {
                    views.push(("encoder.embed_tokens.weight".to_string(), view.clone()));
                    if !both {
                        continue;
                    }
                }
                views.push((name, view));
            }
            safetensors::serialize(views, None).unwrap()
        };
        let reference = load(&fixture())
            .unwrap()
            .encode(&["a cat"], 4)
            .unwrap()
            .into_data();
        for both in [false, true] {
            std::fs::write(&weights, rename(both)).unwrap();
            let got = load(dir.path())
                .unwrap()
                .encode(&["a cat"], 4)
                .unwrap()
                .into_data();
            assert_eq!(got, reference, "both = {both}");
        }
    }
}
