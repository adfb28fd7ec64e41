//! How much a trained demo DiT reads its prompt: its loss at each point of the distilled sampler
//! with each chunk's own caption, beside its loss with the caption of another emotion (the same
//! character, line and light) and with the speaking and silent captions swapped, on the same noise
//! and history. A DiT that ignores the prompt scores the same with the wrong caption; the gap is
//! what the prompt is worth to it.
//!
//! `cargo run --release -p helios_train --example prompt_gap -- CHECKPOINT [clips]`

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::Tensor;
use helios_faces::{Character, Emotion, LINES, SceneText};
use helios_train::config::TEXT_TOKENS;
use helios_train::data::{caption, encode_clip, training_clip, training_script};
use helios_train::eval::{DitParts, EvalBackend};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: prompt_gap CHECKPOINT [clips]")?);
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let device = Default::default();
    let parts = DitParts::load(&dir)?;
    let encode = |c: &str| parts.text.encode(&[c], TEXT_TOKENS);
    let mut clips = Vec::new();
    // Each caption's embedding, and the embeddings of its wrong-emotion and swapped-speech twins.
    let mut own: HashMap<String, Tensor<EvalBackend, 3>> = HashMap::new();
    let mut emotion: HashMap<String, Tensor<EvalBackend, 3>> = HashMap::new();
    let mut speech: HashMap<String, Tensor<EvalBackend, 3>> = HashMap::new();
    for seed in 0..n {
        let clip = training_clip(seed);
        let (script, captions) = training_script(seed);
        let character = Character::from_seed(seed).description();
        for ((_, e, lighting, line), c) in script.into_iter().zip(captions) {
            let others: Vec<Emotion> = Emotion::ALL.into_iter().filter(|o| *o != e).collect();
            let other = others[(seed as usize) % others.len()];
            let wrong = caption(&SceneText::new(&character, other, line, lighting));
            let swapped_line = match line {
                Some(_) => None,
                None => Some(LINES[(seed as usize) % LINES.len()]),
            };
            let swapped = caption(&SceneText::new(&character, e, swapped_line, lighting));
            own.insert(c.clone(), encode(&c)?);
            emotion.insert(c.clone(), encode(&wrong)?);
            speech.insert(c.clone(), encode(&swapped)?);
        }
        clips.push(encode_clip(&parts.vae, &clip, &device)?);
    }
    for (first, image) in [(true, true), (false, true), (false, false)] {
        println!(
            "{} chunks, {} start (own caption / another emotion / speech swapped):",
            if first { "first" } else { "later" },
            if image { "image" } else { "text" }
        );
        let run = |embeddings| parts.point_losses(&clips, embeddings, first, image);
        let (a, b, c) = (run(&own)?, run(&emotion)?, run(&speech)?);
        for ((p, q), r) in a.iter().zip(&b).zip(&c) {
            println!(
                "  stage {} step {} sigma {:.3}: {:.5} / {:.5} ({:+.2} %) / {:.5} ({:+.2} %)",
                p.stage,
                p.step,
                p.sigma,
                p.model,
                q.model,
                100.0 * (q.model / p.model - 1.0),
                r.model,
                100.0 * (r.model / p.model - 1.0),
            );
        }
    }
    Ok(())
}
