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
