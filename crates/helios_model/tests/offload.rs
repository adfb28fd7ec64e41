//! Layer offload on the tiny checkpoint: blocks kept in host memory give the same video as blocks
//! kept on the device, quantised or not, and the load report says where the bytes are.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::NdArray;
use helios_model::Error;
use helios_model::dit::{Precision, WeightQuantization};
use helios_model::pipeline::{
    ChunkStream, GenerationParams, HeliosPipeline, LoadOptions, StreamRequest,
};

type B = NdArray<f32>;

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("embedded/tiny-helios")
}

fn first_chunk(options: LoadOptions) -> (Vec<f32>, Arc<HeliosPipeline<B>>) {
    let pipeline = Arc::new(
        HeliosPipeline::<B>::load_with(&model_dir(), &Default::default(), options).unwrap(),
    );
    let params = GenerationParams {
        height: Some(64),
        width: Some(64),
        steps: Some(vec![1, 1, 1]),
        seed: 4,
        max_sequence_length: Some(16),
        ..GenerationParams::default()
    };
    let request = StreamRequest::with_params("a lighthouse keeper smiles", params);
    let mut stream = ChunkStream::new(pipeline.clone(), request).unwrap();
    let cancel = AtomicBool::new(false);
    stream.next_chunk(&cancel).unwrap();
    // The second chunk runs with history, through every block again.
    let chunk = stream.next_chunk(&cancel).unwrap();
    let values = chunk.latents.into_data().to_vec::<f32>().unwrap();
    (values, pipeline)
}

#[test]
fn offloaded_blocks_give_the_same_video() {
    for quantization in [WeightQuantization::None, WeightQuantization::Int8] {
        let options = LoadOptions::at(Precision::F32).quantized(quantization);
        let (resident, p0) = first_chunk(options);
        assert_eq!(p0.transformer().offloaded_blocks(), 0);
        assert_eq!(p0.transformer_load_report().bytes_offloaded, 0);
        for blocks in [1, 2] {
            let (offloaded, p) = first_chunk(options.offloaded(blocks));
            assert_eq!(p.transformer().offloaded_blocks(), blocks);
            assert_eq!(
                resident, offloaded,
                "{quantization:?}, {blocks} block(s) offloaded"
            );
            let report = p.transformer_load_report();
            let full = p0.transformer_load_report();
            assert!(report.bytes_offloaded > 0);
            assert_eq!(
                report.bytes_stored + report.bytes_offloaded,
                full.bytes_stored
            );
            assert_eq!(report.applied.len(), full.applied.len());
            assert_eq!(report.quantized, full.quantized);
        }
    }
}

#[test]
fn offloading_more_blocks_than_the_model_has_is_an_error() {
    let options = LoadOptions::at(Precision::F32).offloaded(3);
    match HeliosPipeline::<B>::load_with(&model_dir(), &Default::default(), options) {
        Err(Error::InvalidRequest(message)) => {
            assert!(message.contains("3 DiT blocks"), "{message}")
        }
        other => panic!("expected an invalid request, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn load_progress_counts_on_through_the_offloaded_blocks() {
    use helios_model::pipeline::Part;

    let options = LoadOptions::at(Precision::F32).offloaded(2);
    let mut seen = Vec::new();
    HeliosPipeline::<B>::load_with_options_progress(
        &model_dir(),
        &Default::default(),
        options,
        &mut |part, p| {
            if part == Part::Transformer {
                seen.push((p.loaded, p.total));
            }
        },
    )
    .unwrap();
    assert!(seen.windows(2).all(|w| w[1].0 > w[0].0), "{seen:?}");
    let &(last, total) = seen.last().unwrap();
    assert_eq!(last, total, "every tensor counted once");
}
