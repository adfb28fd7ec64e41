//! The DiT forward on NdArray at the `transformer_full` fixture shape: current chunk
//! `[1, 16, 9, 16, 16]`, history short `[1, 16, 2, 16, 16]`, mid `[1, 16, 2, 16, 16]`, long
//! `[1, 16, 16, 16, 16]`, text `[1, 16, 32]`; random inputs, the embedded tiny model's weights.

// Benchmark code: a failed setup step ends the benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use helios_model::dit::{DitInput, HeliosTransformer3DModel, History, HistoryTerm};
use helios_model::pipeline::HistoryLayout;

type B = NdArray<f32>;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/helios_model/embedded/tiny-helios"
);

fn input(device: &NdArrayDevice) -> DitInput<B> {
    let normal =
        |shape: [usize; 5]| Tensor::<B, 5>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let indices = HistoryLayout::default().indices();
    DitInput {
        hidden_states: normal([1, 16, 9, 16, 16]),
        timesteps: vec![385.0],
        encoder_hidden_states: Tensor::random([1, 16, 32], Distribution::Normal(0.0, 1.0), device),
        indices: indices.current,
        history: Some(History {
            short: HistoryTerm {
                latents: normal([1, 16, 2, 16, 16]),
                indices: indices.short,
            },
            mid: Some(HistoryTerm {
                latents: normal([1, 16, 2, 16, 16]),
                indices: indices.mid,
            }),
            long: Some(HistoryTerm {
                latents: normal([1, 16, 16, 16, 16]),
                indices: indices.long,
            }),
        }),
    }
}

fn dit_forward(c: &mut Criterion) {
    let device = Default::default();
    let dit = HeliosTransformer3DModel::<B>::load(
        &Path::new(MODEL).join("transformer"),
        &device,
        &mut |_| {},
    )
    .expect("the embedded model's transformer loads");
    let input = input(&device);
    c.bench_function("dit_forward_transformer_full_shape", |b| {
        b.iter(|| {
            dit.forward(input.clone())
                .expect("forward runs")
                .into_data()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = dit_forward
}
criterion_main!(benches);
