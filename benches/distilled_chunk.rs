//! One whole Distilled chunk on NdArray at 128x128: `ChunkStream::next_chunk` on the embedded tiny
//! model with steps `[2, 2, 2]` and the amplified first chunk (12 DiT calls, then the VAE decode).
//! A fresh stream per iteration (prompt encoding included in the setup, outside the timing).

// Benchmark code: a failed setup step ends the benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::NdArray;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use helios_model::pipeline::{ChunkStream, GenerationParams, HeliosPipeline, StreamRequest};

type B = NdArray<f32>;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/helios_model/embedded/tiny-helios"
);

fn distilled_chunk(c: &mut Criterion) {
    let device = Default::default();
    let pipeline = Arc::new(
        HeliosPipeline::<B>::load(MODEL.as_ref(), &device).expect("the embedded model loads"),
    );
    let params = GenerationParams {
        height: Some(128),
        width: Some(128),
        steps: Some(vec![2, 2, 2]),
        amplify_first_chunk: true,
        max_sequence_length: Some(16),
        ..GenerationParams::default()
    };
    let request = StreamRequest::with_params("A cat and a dog baking a cake in a kitchen.", params);
    let cancel = AtomicBool::new(false);
    c.bench_function("distilled_first_chunk_128x128", |b| {
        b.iter_batched(
            || ChunkStream::new(pipeline.clone(), request.clone()).expect("the request is valid"),
            |mut stream| {
                stream
                    .next_chunk(&cancel)
                    .expect("the chunk runs")
                    .frames
                    .tensor()
                    .clone()
                    .into_data()
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = distilled_chunk
}
criterion_main!(benches);
