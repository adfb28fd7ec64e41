//! The DiT loaded straight at the half precision of a GPU backend (wgpu; lavapipe without a GPU)
//! equals the float32 model cast on the device: same dtypes per parameter, same velocity.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use burn::backend::Wgpu;
use burn::tensor::{DType, Distribution, Tensor};
use helios_model::dit::{DitInput, HeliosTransformer3DModel, Precision};

type B = Wgpu;

fn transformer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("embedded/tiny-helios/transformer")
}

#[test]
fn half_loading_converts_on_the_host_and_matches_the_cast_model() {
    let device = Default::default();
    let precision = Precision::half_for::<B>(&device);
    let Precision::Native(half) = precision else {
        panic!("wgpu has a native half type, got {precision:?}")
    };
    let (direct, report) =
        HeliosTransformer3DModel::<B>::load_at(&transformer_dir(), &device, precision, &mut |_| {})
            .expect("the tiny transformer loads at half precision");
    let cast = HeliosTransformer3DModel::<B>::load(&transformer_dir(), &device, &mut |_| {})
        .expect("the tiny transformer loads")
        .with_precision(precision);

    let block = &direct.blocks[0];
    assert_eq!(block.attn1.to_q.weight.val().dtype(), half);
    assert_eq!(block.ffn.proj_in.weight.val().dtype(), half);
    assert_eq!(direct.patch_embedding.weight.val().dtype(), half);
    assert_eq!(block.scale_shift_table.val().dtype(), DType::F32);
    assert_eq!(
        direct
            .condition_embedder
            .time_embedder
            .linear_1
            .weight
            .val()
            .dtype(),
        DType::F32
    );
    // The tiny checkpoint is bf16: most tensors go straight to the half type, the float32 modules
    // are widened, and nothing near a float32 copy of the whole model is made.
    assert!(
        report
            .conversions
            .get(&format!("BF16 -> {half:?}"))
            .is_some_and(|n| *n > 0),
        "{report}"
    );
    assert!(
        report
            .conversions
            .get("BF16 -> F32")
            .is_some_and(|n| *n > 0),
        "{report}"
    );
    assert!(report.bytes_stored < 2 * report.bytes_read, "{report}");

    let input = || {
        let normal = |shape: [usize; 5]| {
            Tensor::<B, 5>::random(shape, Distribution::Normal(0.0, 1.0), &device)
        };
        DitInput {
            hidden_states: normal([1, 16, 2, 8, 8]),
            timesteps: vec![500.0],
            encoder_hidden_states: Tensor::random(
                [1, 8, 32],
                Distribution::Normal(0.0, 1.0),
                &device,
            ),
            indices: vec![0, 1],
            history: None,
        }
    };
    let x = input();
    let a: Vec<f32> = direct
        .forward(x.clone())
        .expect("forward")
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32");
    let b: Vec<f32> = cast
        .forward(x)
        .expect("forward")
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32");
    assert!(a.iter().all(|v| v.is_finite()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-3, "max abs diff {worst}");
}
