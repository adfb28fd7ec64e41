//! The DiT golden cases on NdArray and on wgpu (lavapipe where there is no GPU).

use crate::common::assert_case;
use burn::backend::{NdArray, Wgpu};

const CASES: [&str; 3] = [
    "transformer_full",
    "transformer_intermediates",
    "transformer_pyramid_odd",
];

#[test]
fn transformer_cases_ndarray() {
    for case in CASES {
        assert_case::<NdArray<f32>>(case, &Default::default());
    }
}

#[test]
fn transformer_cases_wgpu() {
    for case in CASES {
        assert_case::<Wgpu>(case, &Default::default());
    }
}

/// int8 block weights against the reference's float32 velocity, at this port's own bound (the
/// reference has no quantised path); the figures are the README's.
#[test]
fn transformer_int8_weights_ndarray() {
    let line = helios_conformance::check_quantized_transformer::<NdArray<f32>>(
        &crate::common::fixture(),
        helios_model::dit::WeightQuantization::Int8,
        &Default::default(),
    )
    .unwrap();
    println!("{line}");
    assert!(line.ok, "{line}");
    assert!(line.rel_l2 > 0.0, "the weights were quantised: {line}");
}
