//! The `text_encoder` golden case on NdArray and on wgpu (lavapipe in CI).

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use helios_conformance::{Outcome, run_case};

/// `../shared/fixtures/tiny-helios`, or the fixture set named by `HELIOS_FIXTURE_DIR` (any set with
/// other dimensions, prompts and lengths must pass the same way).
fn fixture_dir() -> PathBuf {
    std::env::var_os("HELIOS_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/tiny-helios"))
}

fn check<B: Backend>(device: &B::Device) {
    let outcome = run_case::<B>(&fixture_dir(), "text_encoder", device)
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
