//! The `text_encoder` golden case on NdArray and on wgpu (lavapipe in CI).

use burn::tensor::backend::Backend;
use helios_conformance::{Outcome, run_case};

fn check<B: Backend>(device: &B::Device) {
    let outcome = run_case::<B>(&crate::common::fixture(), "text_encoder", device)
        .unwrap_or_else(|e| panic!("case failed to run: {e}"));
    let Outcome::Checked(lines) = outcome else {
        panic!("case skipped: {outcome:?}")
    };
    for line in &lines {
        println!("{line}");
    }
    let names: Vec<&str> = lines.iter().map(|l| l.tensor.as_str()).collect();
    assert_eq!(
        names,
        [
            "input_ids",
            "attention_mask",
            "seq_lens",
            "last_hidden_state",
            "prompt_embeds"
        ]
    );
    assert!(lines.iter().all(|l| l.ok), "some checks failed");
}

#[test]
fn text_encoder_case_passes_on_ndarray() {
    check::<burn::backend::NdArray<f32>>(&Default::default());
}

#[test]
fn text_encoder_case_passes_on_wgpu() {
    check::<burn::backend::Wgpu>(&burn::backend::wgpu::WgpuDevice::default());
}
