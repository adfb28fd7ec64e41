//! Times the Wan VAE decode of one Helios chunk (9 latent frames) on NdArray.
//!
//! `cargo run --release -p helios_model --example vae_decode_timing -- [VAE_DIR] [LATENT_HW] [RUNS]`
//! (defaults: `../shared/fixtures/tiny-helios/vae`, 16 = 128x128 pixels, 5 runs after one warm-up).

use std::path::PathBuf;
use std::time::Instant;

use burn::backend::NdArray;
use burn::tensor::{Distribution, Tensor};
use helios_model::vae::WanVae;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/fixtures/tiny-helios/vae"));
    let hw: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let device = Default::default();
    let vae = WanVae::<NdArray<f32>>::load(&dir, &device)?;
    let z = Tensor::<NdArray<f32>, 5>::random(
        [1, vae.config().z_dim, 9, hw, hw],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut times = Vec::new();
    for run in 0..=runs {
        let t0 = Instant::now();
        let video = vae.decode(z.clone())?;
        let _ = video.into_data();
        let dt = t0.elapsed().as_secs_f64();
        if run > 0 {
            times.push(dt);
        }
        println!("run {run}: {dt:.3} s");
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "vae decode 9 latents {hw}x{hw} -> 33 frames {}x{}: median_s={median:.3} min_s={:.3}",
        hw * 8,
        hw * 8,
        times.first().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
