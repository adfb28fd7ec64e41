//! The VAE decode on NdArray of one 9-latent chunk at 128x128: latents `[1, 16, 9, 16, 16]` to
//! 33 frames `[1, 3, 33, 128, 128]`; random latents, the embedded tiny model's weights.

// Benchmark code: a failed setup step ends the benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use burn::backend::NdArray;
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use helios_model::vae::WanVae;

type B = NdArray<f32>;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/helios_model/embedded/tiny-helios"
);

fn vae_decode(c: &mut Criterion) {
    let device = Default::default();
    let vae = WanVae::<B>::load(&Path::new(MODEL).join("vae"), &device)
        .expect("the embedded model's VAE loads");
    let latents =
        Tensor::<B, 5>::random([1, 16, 9, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    c.bench_function("vae_decode_chunk_128x128", |b| {
        b.iter(|| {
            vae.decode(latents.clone())
                .expect("decode runs")
                .into_data()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = vae_decode
}
criterion_main!(benches);
