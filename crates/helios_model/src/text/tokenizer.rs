//! The UMT5 tokenizer: `tokenizer.json` through the `tokenizers` crate, called the way the Helios
//! pipelines call `T5TokenizerFast`.
//!
//! `_get_t5_prompt_embeds` (diffusers 0.42.1) tokenizes the cleaned prompts with
//! `padding="max_length", max_length=L, truncation=True, add_special_tokens=True`: the pieces are cut
//! to `L - n` (where `n` is the number of special tokens the post-processor adds: one `</s>` for
//! UMT5), the post-processor appends `</s>`, and the row is right-padded with `<pad>` to exactly `L`.
//! [`PromptTokenizer::tokenize`] does the same steps explicitly, so it works for any `tokenizer.json`
//! (the real UMT5 SentencePiece one or the fixtures' stand-in) whatever truncation or padding the file
//! itself configures.

use std::path::{Path, PathBuf};

use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

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
    /// Row `i` of the ids.
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
}

impl std::fmt::Debug for PromptTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTokenizer")
            .field("path", &self.path)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

impl PromptTokenizer {
    /// Loads `path` (a `tokenizer.json`); rows are padded with `pad_id` (the text encoder config's
    /// `pad_token_id`, 0 = `<pad>` for UMT5).
    pub fn from_file(path: &Path, pad_id: u32) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| tokenizer_error(path, e))?;
        // Truncation and padding are done per call (the length is a call parameter).
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| tokenizer_error(path, e))?;
        if inner.id_to_token(pad_id).is_none() {
            return Err(Error::Tokenizer {
                path: path.to_path_buf(),
                message: format!("the pad token id {pad_id} is not in the vocabulary"),
            });
        }
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            pad_id,
        })
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
                return Err(Error::Tokenizer {
                    path: self.path.clone(),
                    message: format!(
                        "the post-processor made {} tokens out of at most {max_len}",
                        ids.len()
                    ),
                });
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

fn tokenizer_error(path: &Path, e: tokenizers::Error) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/tiny-helios/tokenizer/tokenizer.json")
    }

    #[test]
    fn pads_truncates_and_appends_eos() {
        let tok = PromptTokenizer::from_file(&fixture(), 0).unwrap();
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

    #[test]
    fn max_len_one_keeps_only_eos_and_zero_is_an_error() {
        let tok = PromptTokenizer::from_file(&fixture(), 0).unwrap();
        assert_eq!(tok.tokenize(&["a cat"], 1).unwrap().ids, vec![1]);
        assert!(matches!(
            tok.tokenize(&["a cat"], 0),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn missing_and_malformed_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("tokenizer.json");
        assert!(matches!(
            PromptTokenizer::from_file(&missing, 0),
            Err(Error::Io { .. })
        ));
        std::fs::write(&missing, "{ not json").unwrap();
        assert!(matches!(
            PromptTokenizer::from_file(&missing, 0),
            Err(Error::Tokenizer { .. })
        ));
        std::fs::write(&missing, r#"{"version": "1.0", "model": {"type": "Nope"}}"#).unwrap();
        assert!(matches!(
            PromptTokenizer::from_file(&missing, 0),
            Err(Error::Tokenizer { .. })
        ));
        assert!(matches!(
            PromptTokenizer::from_file(&fixture(), 1_000_000),
            Err(Error::Tokenizer { .. })
        ));
    }
}
