//! Trains only the demo VAE, prints its loss every 50 steps, saves it as `OUT/vae` (a diffusers
//! `vae` folder, with unit latent statistics; `vae_emotions OUT` reads it) and writes
//! reconstructions of a clip it has not seen (`OUT/vae_0.png`, `OUT/vae_1.png`: input above,
//! reconstruction below): a quick way to try VAE settings.
//!
//! ```sh
//! cargo run --release -p helios_train --example vae_probe -- \
//!     OUT [image_steps] [image_batch] [crop] [video_steps] [learning_rate] [base_dim] [dim_mult]
//! ```

// A development tool: a bad argument is a panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use helios_model::config::VaeConfig;
use helios_model::vae::WanVae;
use helios_train::TrainBackend;
use helios_train::data::training_clip;
use helios_train::vae::{VaeTraining, train_vae};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let defaults = VaeTraining::default();
    let arg = |i: usize, default: String| args.get(i).cloned().unwrap_or(default);
    let out = std::path::PathBuf::from(arg(0, "vae-probe".into()));
    let options = VaeTraining {
        image_steps: arg(1, defaults.image_steps.to_string()).parse().unwrap(),
        image_batch: arg(2, defaults.image_batch.to_string()).parse().unwrap(),
        crop: arg(3, defaults.crop.to_string()).parse().unwrap(),
        video_steps: arg(4, defaults.video_steps.to_string()).parse().unwrap(),
        learning_rate: arg(5, defaults.learning_rate.to_string()).parse().unwrap(),
        ..defaults
    };
    let mut config = helios_train::config::vae_untrained();
    config["base_dim"] = serde_json::json!(arg(6, "8".into()).parse::<usize>().unwrap());
    let dim_mult: Vec<usize> = arg(7, "1,1,1,1".into())
        .split(',')
        .map(|m| m.parse().unwrap())
        .collect();
    config["dim_mult"] = serde_json::json!(dim_mult);
    let config: VaeConfig = serde_json::from_value(config).unwrap();
    let videos: Vec<_> = (0..16u64)
        .flat_map(|i| training_clip(1_000_000 + i).chunks)
        .collect();
    let started = Instant::now();
    let mut window = Vec::new();
    let model = train_vae::<TrainBackend>(
        &config,
        &videos,
        &options,
        7,
        &Default::default(),
        &mut |p| {
            window.push(p.loss);
            if p.step % 50 == 0 || p.step == p.steps {
                let mean = window.iter().sum::<f32>() / window.len() as f32;
                println!(
                    "step {:5}/{} loss {mean:.4} ({:.0} s)",
                    p.step,
                    p.steps,
                    started.elapsed().as_secs_f64()
                );
                window.clear();
            }
        },
    )
    .unwrap();
    let vae_dir = out.join("vae");
    helios_model::save::save_vae(&model, &vae_dir).unwrap();
    let mut saved = serde_json::to_value(&config).unwrap();
    saved["_class_name"] = serde_json::json!("AutoencoderKLWan");
    helios_train::config::write_json(&vae_dir, "config.json", &saved).unwrap();
    let vae = WanVae::from_parts(model, config);
    let tests: Vec<_> = training_clip(42).chunks;
    helios_train::preview::reconstructions(&vae, &tests[..2], &out).unwrap();
}
