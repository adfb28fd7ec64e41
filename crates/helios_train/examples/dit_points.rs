//! Where a trained demo DiT has learned to denoise: its loss at each point of the distilled
//! sampler (stage, step), beside the loss of taking the input as the clean latents (what its
//! identity start predicts), on the first chunks of training clips and on their later chunks, in
//! streams started from the clip's first frame (I2V) and from the prompt alone (T2V).
//!
//! `cargo run --release -p helios_train --example dit_points -- CHECKPOINT [clips]`

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::Tensor;
use helios_train::data::{encode_clip, training_clip};
use helios_train::eval::{DitParts, EvalBackend};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: dit_points CHECKPOINT [clips]")?);
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let device = Default::default();
    let parts = DitParts::load(&dir)?;
    let mut clips = Vec::new();
    let mut embeddings: HashMap<String, Tensor<EvalBackend, 3>> = HashMap::new();
    for seed in 0..n {
        let clip = training_clip(seed);
        for caption in &clip.captions {
            if !embeddings.contains_key(caption) {
                let e = parts
                    .text
                    .encode(&[caption], helios_train::config::TEXT_TOKENS)?;
                embeddings.insert(caption.clone(), e);
            }
        }
        clips.push(encode_clip(&parts.vae, &clip, &device)?);
    }
    for (first, image) in [(true, true), (true, false), (false, true), (false, false)] {
        println!(
            "{} chunks, {} start:",
            if first { "first" } else { "later" },
            if image { "image" } else { "text" }
        );
        let losses = parts.point_losses(&clips, &embeddings, first, image)?;
        for p in losses {
            println!(
                "  stage {} step {} sigma {:.3}: model {:.4}, input as output {:.4}",
                p.stage, p.step, p.sigma, p.model, p.identity
            );
        }
    }
    Ok(())
}
