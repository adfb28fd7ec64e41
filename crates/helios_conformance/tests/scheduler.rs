//! The golden cases `scheduler_steps` and `scheduler_tables` against `../shared/fixtures/tiny-helios`
//! (or `$HELIOS_FIXTURES`), on NdArray and on wgpu (lavapipe in CI): every check line must be OK.

use std::path::PathBuf;

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};
use burn::tensor::backend::Backend;
use helios_conformance::{Outcome, run_case};

fn fixture_dir() -> PathBuf {
    std::env::var_os("HELIOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/tiny-helios")
        })
}

fn assert_all_ok<B: Backend>(name: &str, device: &B::Device) {
    let outcome =
        run_case::<B>(&fixture_dir(), name, device).unwrap_or_else(|e| panic!("case {name}: {e}"));
    let Outcome::Checked(lines) = outcome else {
        panic!("case {name} was skipped: {outcome:?}")
    };
    assert!(!lines.is_empty(), "case {name} checked nothing");
    for line in &lines {
        println!("{line}");
    }
    let failed: Vec<String> = lines
        .iter()
        .filter(|l| !l.ok)
        .map(|l| l.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} checks failed:\n{}",
        failed.len(),
        lines.len(),
        failed.join("\n")
    );
}

#[test]
fn scheduler_steps_ndarray() {
    assert_all_ok::<NdArray<f32>>("scheduler_steps", &Default::default());
}

#[test]
fn scheduler_tables_ndarray() {
    assert_all_ok::<NdArray<f32>>("scheduler_tables", &Default::default());
}

#[test]
fn scheduler_steps_wgpu() {
    assert_all_ok::<Wgpu>("scheduler_steps", &WgpuDevice::default());
}

#[test]
fn scheduler_tables_wgpu() {
    assert_all_ok::<Wgpu>("scheduler_tables", &WgpuDevice::default());
}
