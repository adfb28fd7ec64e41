//! Case `text_encoder`: tokenizer + UMT5 encoder + the pipeline's prompt post-processing.
//!
//! Inputs come from the case file (`prompts`, `max_sequence_length`) and the checkpoint next to it
//! (`tokenizer/`, `text_encoder/`). Checked: the token ids, attention mask and real lengths (exactly:
//! tolerance 0), `last_hidden_state` and `prompt_embeds` at the case's own tolerances.

use std::path::Path;

use burn::tensor::TensorData;
use burn::tensor::backend::Backend;
use helios_model::text::{TextEncoder, TokenizedPrompts};

use crate::case::{Case, Tolerance};
use crate::compare::{CheckLine, compare};
use crate::{Outcome, Result};

/// Runs the case.
pub fn run<B: Backend>(fixture_dir: &Path, device: &B::Device) -> Result<Outcome> {
    let case = Case::open(fixture_dir, "text_encoder")?;
    let prompts: Vec<String> = case.get("prompts")?;
    let max_len: usize = case.get("max_sequence_length")?;
    let encoder = TextEncoder::<B>::load(fixture_dir, device)?;

    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let tokens = encoder.tokenize(&prompts, max_len)?;
    let mut lines = vec![
        exact(&case, "input_ids", &tokens.ids, tokens_shape(&tokens))?,
        exact(&case, "attention_mask", &tokens.mask, tokens_shape(&tokens))?,
    ];
    let seq_lens: Vec<u32> = tokens.seq_lens.iter().map(|&n| n as u32).collect();
    lines.push(exact(&case, "seq_lens", &seq_lens, vec![tokens.batch])?);

    let hidden = encoder.forward(&tokens)?;
    let embeds = encoder.zero_padding_rows(hidden.clone(), &tokens);
    for (name, tensor) in [("last_hidden_state", hidden), ("prompt_embeds", embeds)] {
        let golden = case.f32(name)?;
        lines.push(compare(
            &case.name,
            name,
            &tensor.into_data(),
            &golden,
            &case.tolerance(name)?,
        ));
    }
    Ok(Outcome::Checked(lines))
}

fn tokens_shape(tokens: &TokenizedPrompts) -> Vec<usize> {
    vec![tokens.batch, tokens.max_len]
}

/// An integer tensor that must match exactly: max-abs of the difference, tolerance 0.
fn exact(case: &Case, name: &str, port: &[u32], shape: Vec<usize>) -> Result<CheckLine> {
    let (golden, golden_shape) = case.i64(name)?;
    let to_f32 = |v: Vec<f32>, s: Vec<usize>| TensorData::new(v, s);
    // Ids up to 2^24 are exact in f32; compare in i64 first so larger vocabularies stay exact too.
    let equal = golden_shape == shape && golden.iter().zip(port).all(|(&g, &p)| g == i64::from(p));
    let tol = Tolerance {
        what: "exact".into(),
        tensors: vec![name.into()],
        max_abs: 0.0,
        rel_l2: 0.0,
    };
    let mut line = compare(
        &case.name,
        name,
        &to_f32(port.iter().map(|&v| v as f32).collect(), shape),
        &to_f32(golden.iter().map(|&v| v as f32).collect(), golden_shape),
        &tol,
    );
    if !equal && line.ok {
        line.ok = false;
        line.note = Some("integer values differ".into());
    }
    if !equal && line.note.is_none() {
        let first = golden
            .iter()
            .zip(port)
            .position(|(&g, &p)| g != i64::from(p));
        line.note = first.map(|i| {
            format!(
                "first difference at flat index {i}: port {} vs golden {}",
                port[i], golden[i]
            )
        });
    }
    Ok(line)
}
