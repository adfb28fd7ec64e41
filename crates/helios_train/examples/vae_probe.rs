//! Trains only the demo VAE, prints its loss every 50 steps, saves it as `OUT/vae` (a diffusers
//! `vae` folder, with unit latent statistics; `vae_emotions OUT` reads it) and writes
//! reconstructions of a clip it has not seen (`OUT/vae_0.png`, `OUT/vae_1.png`: input above,
//! reconstruction below): a quick way to try VAE settings.
//!
//! ```sh
//! cargo run --release -p helios_train --example vae_probe -- \
//!     OUT [image_steps] [image_batch] [crop] [video_steps] [learning_rate] [base_dim] [dim_mult]
//! ```

use std::time::Instant;

use helios_model::config::VaeConfig;
use helios_model::vae::WanVae;
use helios_train::TrainBackend;
use helios_train::data::training_clip;
use helios_train::vae::{VaeTraining, train_vae};

/// Argument `i` parsed, or `default`; a bad one is an error naming it.
fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match args.get(i) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|e| format!("argument {} ({text:?}): {e}", i + 1)),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let defaults = VaeTraining::default();
    let out = std::path::PathBuf::from(arg(&args, 0, String::from("vae-probe"))?);
    let options = VaeTraining {
        image_steps: arg(&args, 1, defaults.image_steps)?,
        image_batch: arg(&args, 2, defaults.image_batch)?,
        crop: arg(&args, 3, defaults.crop)?,
        video_steps: arg(&args, 4, defaults.video_steps)?,
        learning_rate: arg(&args, 5, defaults.learning_rate)?,
        ..defaults
    };
    let mut config = helios_train::config::vae_untrained();
    config["base_dim"] = serde_json::json!(arg(&args, 6, 8usize)?);
    let dim_mult = arg(&args, 7, String::from("1,1,1,1"))?
        .split(',')
        .map(|m| m.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("argument 8 (dim_mult): {e}"))?;
    config["dim_mult"] = serde_json::json!(dim_mult);
    let config: VaeConfig = serde_json::from_value(config)?;
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
    )?;
    let vae_dir = out.join("vae");
    helios_model::save::save_vae(&model, &vae_dir)?;
    let mut saved = serde_json::to_value(&config)?;
    saved["_class_name"] = serde_json::json!("AutoencoderKLWan");
    helios_train::config::write_json(&vae_dir, "config.json", &saved)?;
    let vae = WanVae::from_parts(model, config);
    let tests: Vec<_> = training_clip(42).chunks;
    helios_train::preview::reconstructions(&vae, tests.get(..2).unwrap_or(&tests), &out)?;
    Ok(())
}
