//! The `vae` golden case on NdArray and on wgpu (lavapipe in CI).

use std::path::PathBuf;

use helios_conformance::{Outcome, run_case};

/// `HELIOS_FIXTURES`, or `../shared/fixtures/tiny-helios` next to the repository.
fn fixture_dir() -> PathBuf {
    std::env::var_os("HELIOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/tiny-helios")
        })
}

fn assert_all_ok(outcome: Outcome) {
    let Outcome::Checked(lines) = outcome else {
        panic!("the vae case was skipped: {outcome:?}")
    };
    for line in &lines {
        println!("{line}");
    }
    assert!(lines.len() >= 3, "too few checks: {}", lines.len());
    let failed: Vec<_> = lines.iter().filter(|l| !l.ok).collect();
    assert!(
        failed.is_empty(),
        "{} check(s) failed: {failed:#?}",
        failed.len()
    );
}

#[test]
fn vae_case_ndarray() {
    let device = Default::default();
    let outcome = run_case::<burn::backend::NdArray<f32>>(&fixture_dir(), "vae", &device)
        .expect("vae case runs");
    assert_all_ok(outcome);
}

#[test]
fn vae_case_wgpu() {
    let device = burn::backend::wgpu::WgpuDevice::default();
    let outcome =
        run_case::<burn::backend::Wgpu>(&fixture_dir(), "vae", &device).expect("vae case runs");
    assert_all_ok(outcome);
}
