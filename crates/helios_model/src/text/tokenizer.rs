//! The UMT5 tokenizer: `tokenizer.json` through the `tokenizers` crate, built and called the way the
//! reference (transformers 5.23.0 `T5Tokenizer`, which `T5TokenizerFast` now names) does.
//!
//! transformers 5 does not run a T5 `tokenizer.json` as stored: `T5Tokenizer.__init__` rebuilds the
//! backend from the file's Unigram vocabulary (`unk_id` 2, no byte fallback), keeps only the
//! SentencePiece `Precompiled` normaliser (none if the file has none; other normalisers such as
//! NFKC or space collapsing are dropped), always pre-tokenises with `WhitespaceSplit` +
//! `Metaspace("▁", prepend always, split)`, appends `</s>` with a `$A </s>` template, and registers
//! `<pad>` / `</s>` / `<unk>` (plus `additional_special_tokens` and `extra_ids` from
//! `tokenizer_config.json`) as special tokens that are matched before normalisation.
//! [`PromptTokenizer::from_file`] reproduces that (checked against the reference on the fixture's
//! stand-in tokenizer, where the file's own normaliser would give different ids for e.g. full-width
//! letters and `</s>` inside a prompt).
//!
//! `_get_t5_prompt_embeds` (diffusers 0.42.1) then tokenizes the cleaned prompts with
//! `padding="max_length", max_length=L, truncation=True, add_special_tokens=True`: the pieces are cut
//! to `L - n` (`n` = special tokens the template adds, one `</s>`), `</s>` is appended and the row is
//! right-padded with `<pad>` to exactly `L`. [`PromptTokenizer::tokenize`] does the same steps.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, PostProcessor, Tokenizer, TruncationDirection};

use crate::error::{Error, Result};

/// Token ids and attention masks of a batch of prompts, each row exactly `max_len` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedPrompts {
    /// Row-major `[batch, max_len]` token ids.
    pub ids: Vec<u32>,
    /// Row-major `[batch, max_len]`: 1 for real tokens (incl. `</s>`), 0 for padding.
    pub mask: Vec<u32>,
    /// Real tokens per row (the number of ones in its mask).
    pub seq_lens: Vec<usize>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub max_len: usize,
}

impl TokenizedPrompts {
    /// Row `i` of the ids (like slice indexing, panics if `i >= batch`).
    pub fn row(&self, i: usize) -> &[u32] {
        &self.ids[i * self.max_len..(i + 1) * self.max_len]
    }
}

/// A `tokenizer.json` with the pipeline's padding and truncation.
#[derive(Clone)]
pub struct PromptTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    pad_id: u32,
    model_max_length: Option<usize>,
}

impl std::fmt::Debug for PromptTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTokenizer")
            .field("path", &self.path)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

/// The special-token settings of `tokenizer_config.json` that `T5Tokenizer` uses.
struct SpecialTokens {
    pad: String,
    eos: String,
    unk: String,
    additional: Vec<String>,
    /// `model_max_length`, when the config gives one.
    model_max_length: Option<usize>,
}

impl SpecialTokens {
    /// Reads `tokenizer_config.json` next to `tokenizer.json` if there is one (`T5Tokenizer`'s defaults
    /// otherwise: `<pad>`, `</s>`, `<unk>`, 100 extra ids).
    fn read(tokenizer_json: &Path) -> Result<Self> {
        let path = tokenizer_json.with_file_name("tokenizer_config.json");
        let config: Value = if path.exists() {
            crate::config::read_json(&path)?
        } else {
            json!({})
        };
        // A token is a string or an `AddedToken` object with `content`.
        let token = |v: &Value| {
            v.as_str()
                .or_else(|| v.get("content").and_then(Value::as_str))
                .map(String::from)
        };
        let named = |key: &str, default: &str| {
            config
                .get(key)
                .and_then(token)
                .unwrap_or_else(|| default.into())
        };
        let mut additional: Vec<String> = config
            .get("additional_special_tokens")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(token).collect())
            .unwrap_or_default();
        let extra_ids = config
            .get("extra_ids")
            .and_then(Value::as_u64)
            .unwrap_or(100);
        if !additional.iter().any(|t| t.contains("<extra_id_")) {
            additional.extend((0..extra_ids).map(|i| format!("<extra_id_{i}>")));
        }
        Ok(Self {
            pad: named("pad_token", "<pad>"),
            eos: named("eos_token", "</s>"),
            unk: named("unk_token", "<unk>"),
            additional,
            model_max_length: config
                .get("model_max_length")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok()),
        })
    }
}

/// `tokenizer.json` rewritten as transformers 5 `T5Tokenizer.__init__` rebuilds it (see the module
/// doc); the post-processor is set once the `</s>` id is known.
fn as_t5_tokenizer(mut file: Value) -> std::result::Result<Value, String> {
    let model = file
        .get_mut("model")
        .and_then(Value::as_object_mut)
        .ok_or("no `model`")?;
    if model.get("type").and_then(Value::as_str) != Some("Unigram") {
        return Err(
            "the model is not a Unigram (SentencePiece) model, as T5 tokenizers are".into(),
        );
    }
    model.insert("unk_id".into(), json!(2));
    model.insert("byte_fallback".into(), json!(false));
    let normalizers = match file.get("normalizer") {
        Some(n) if n.get("type").and_then(Value::as_str) == Some("Sequence") => n
            .get("normalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Some(Value::Null) | None => Vec::new(),
        Some(n) => vec![n.clone()],
    };
    let precompiled = normalizers.into_iter().find(|n| {
        n.get("type").and_then(Value::as_str) == Some("Precompiled")
            && n.get("precompiled_charsmap").is_some()
    });
    file["normalizer"] = precompiled.unwrap_or(Value::Null);
    file["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"},
        {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true},
    ]});
    file["post_processor"] = Value::Null;
    file["truncation"] = Value::Null;
    file["padding"] = Value::Null;
    Ok(file)
}

impl PromptTokenizer {
    /// Loads `path` (a `tokenizer.json`, with the `tokenizer_config.json` beside it if any) as the
    /// reference's `T5Tokenizer` (see the module doc).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let invalid = |e: tokenizers::Error| tokenizer_error(path, e);
        let file: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.into()))?;
        let file = as_t5_tokenizer(file).map_err(|e| invalid(e.into()))?;
        let mut inner: Tokenizer = serde_json::from_value(file).map_err(|e| invalid(e.into()))?;

        let special = SpecialTokens::read(path)?;
        let mut tokens = vec![
            special.pad.clone(),
            special.eos.clone(),
            special.unk.clone(),
        ];
        tokens.extend(special.additional.iter().cloned());
        let tokens: Vec<AddedToken> = tokens
            .into_iter()
            .map(|t| AddedToken::from(t, true))
            .collect();
        inner.add_special_tokens(&tokens);
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| invalid(format!("special token `{t}` has no id").into()))
        };
        let (pad_id, eos_id) = (id(&special.pad)?, id(&special.eos)?);
        let eos = &special.eos;
        let template = json!({
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}}],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}},
            ],
            "special_tokens": {eos.as_str(): {"id": eos, "ids": [eos_id], "tokens": [eos]}},
        });
        let template: PostProcessorWrapper =
            serde_json::from_value(template).map_err(|e| invalid(e.into()))?;
        inner.with_post_processor(Some(template));
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            pad_id,
            model_max_length: special.model_max_length,
        })
    }

    /// The longest input the checkpoint's `tokenizer_config.json` declares (`model_max_length`), if
    /// it declares one.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// The file this tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The string of each id (`convert_ids_to_tokens`); unknown ids give `None`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Tokenizes already-cleaned prompts (see [`super::prompt::prompt_clean`]) to exactly `max_len`
    /// tokens each: special tokens added, truncated to keep room for them, right-padded.
    ///
    /// Errors when `max_len` cannot even hold the special tokens (0 for UMT5's one `</s>`).
    pub fn tokenize(&self, prompts: &[&str], max_len: usize) -> Result<TokenizedPrompts> {
        let n_special = self
            .inner
            .get_post_processor()
            .map(|p| p.added_tokens(false))
            .unwrap_or(0);
        if max_len == 0 || max_len < n_special {
            return Err(Error::InvalidRequest(format!(
                "max_sequence_length {max_len} cannot hold the {n_special} special token(s) the tokenizer adds"
            )));
        }
        let mut out = TokenizedPrompts {
            ids: Vec::with_capacity(prompts.len() * max_len),
            mask: Vec::with_capacity(prompts.len() * max_len),
            seq_lens: Vec::with_capacity(prompts.len()),
            batch: prompts.len(),
            max_len,
        };
        for prompt in prompts {
            let mut encoding = self
                .inner
                .encode(*prompt, false)
                .map_err(|e| tokenizer_error(&self.path, e))?;
            encoding.truncate(max_len - n_special, 0, TruncationDirection::Right);
            let encoding = self
                .inner
                .post_process(encoding, None, true)
                .map_err(|e| tokenizer_error(&self.path, e))?;
            let (ids, mask) = (encoding.get_ids(), encoding.get_attention_mask());
            if ids.len() > max_len {
                return Err(tokenizer_error(
                    &self.path,
                    format!(
                        "the post-processor made {} tokens out of at most {max_len}",
                        ids.len()
                    )
                    .into(),
                ));
            }
            out.seq_lens.push(mask.iter().filter(|&&m| m != 0).count());
            out.ids.extend_from_slice(ids);
            out.mask.extend_from_slice(mask);
            out.ids
                .resize(out.ids.len() + max_len - ids.len(), self.pad_id);
            out.mask.resize(out.mask.len() + max_len - ids.len(), 0);
        }
        Ok(out)
    }
}

fn tokenizer_error(path: &Path, source: tokenizers::Error) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/tiny-helios/tokenizer/tokenizer.json")
    }

    #[test]
    fn pads_truncates_and_appends_eos() {
        let tok = PromptTokenizer::from_file(&fixture()).unwrap();
        let out = tok
            .tokenize(&["a cat", "", "a cat and a dog and a cat and a dog"], 6)
            .unwrap();
        assert_eq!((out.batch, out.max_len), (3, 6));
        // "a cat" -> ▁a ▁cat </s> <pad>...
        assert_eq!(out.seq_lens[0], 3);
        assert_eq!(out.row(0)[2], 1);
        assert_eq!(&out.row(0)[3..], &[0, 0, 0]);
        // The empty prompt is just </s>.
        assert_eq!(out.row(1), &[1, 0, 0, 0, 0, 0]);
        assert_eq!(out.seq_lens[1], 1);
        // Truncation keeps max_len - 1 pieces and still ends with </s>.
        assert_eq!(out.seq_lens[2], 6);
        assert_eq!(out.row(2)[5], 1);
        assert_eq!(&out.mask[12..], &[1; 6]);
    }

    /// Ids from transformers 5.23.0 `AutoTokenizer.from_pretrained(<fixture>/tokenizer)(s).input_ids`:
    /// no NFKC (the file's normaliser is dropped) and special tokens matched inside the text.
    #[test]
    fn matches_transformers_5_t5_tokenizer() {
        let tok = PromptTokenizer::from_file(&fixture()).unwrap();
        let cases: [(&str, &[u32]); 10] = [
            (
                "\u{ff46}\u{ff55}\u{ff4c}\u{ff4c} \u{ff43}\u{ff41}\u{ff54}",
                &[3, 2, 3, 2, 1],
            ),
            ("a  cat", &[4, 197, 1]),
            ("a\tcat", &[4, 197, 1]),
            ("\u{fb01}sh", &[3, 2, 74, 63, 1]),
            ("a </s> cat", &[4, 1, 197, 1]),
            ("x\u{b2}", &[27, 2, 1]),
            ("a<unk>b", &[4, 2, 5, 1]),
            ("x <pad>", &[27, 0, 1]),
            ("</s>", &[1, 1]),
            ("a</s>b", &[4, 1, 5, 1]),
        ];
        for (text, want) in cases {
            let out = tok.tokenize(&[text], 8).unwrap();
            assert_eq!(&out.ids[..out.seq_lens[0]], want, "{text:?}");
        }
    }

    #[test]
    fn max_len_one_keeps_only_eos_and_zero_is_an_error() {
        let tok = PromptTokenizer::from_file(&fixture()).unwrap();
        assert_eq!(tok.tokenize(&["a cat"], 1).unwrap().ids, vec![1]);
        assert!(matches!(
            tok.tokenize(&["a cat"], 0),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn model_max_length_comes_from_the_tokenizer_config() {
        let tok = PromptTokenizer::from_file(&fixture()).unwrap();
        assert_eq!(tok.model_max_length(), Some(512));
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("tokenizer.json");
        std::fs::copy(fixture(), &json).unwrap();
        // No config: T5Tokenizer's defaults, and no length.
        assert_eq!(
            PromptTokenizer::from_file(&json)
                .unwrap()
                .model_max_length(),
            None
        );
        let config = dir.path().join("tokenizer_config.json");
        std::fs::write(&config, r#"{"model_max_length": 96, "extra_ids": 0}"#).unwrap();
        assert_eq!(
            PromptTokenizer::from_file(&json)
                .unwrap()
                .model_max_length(),
            Some(96)
        );
        // transformers writes a huge number (or a float) when a tokenizer has no limit.
        std::fs::write(&config, r#"{"model_max_length": 1e30, "extra_ids": 0}"#).unwrap();
        assert_eq!(
            PromptTokenizer::from_file(&json)
                .unwrap()
                .model_max_length(),
            None
        );
    }

    #[test]
    fn missing_and_malformed_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("tokenizer.json");
        assert!(matches!(
            PromptTokenizer::from_file(&missing),
            Err(Error::Io { .. })
        ));
        std::fs::write(&missing, "{ not json").unwrap();
        assert!(matches!(
            PromptTokenizer::from_file(&missing),
            Err(Error::Tokenizer { .. })
        ));
        std::fs::write(&missing, r#"{"version": "1.0", "model": {"type": "Nope"}}"#).unwrap();
        assert!(matches!(
            PromptTokenizer::from_file(&missing),
            Err(Error::Tokenizer { .. })
        ));
        // Valid JSON for the `tokenizers` crate, but not a SentencePiece (T5) tokenizer.
        std::fs::write(
            &missing,
            r#"{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}"#,
        )
        .unwrap();
        assert!(
            matches!(PromptTokenizer::from_file(&missing), Err(Error::Tokenizer { source, .. }) if source.to_string().contains("Unigram"))
        );
    }
}
