//! Shared helpers of the golden tests: the fixture folder and a runner that asserts every line.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use helios_conformance::{Outcome, run_case};

/// The fixture set the golden tests run: `fixtures/tiny-helios` of this crate (kept in the
/// repository), or the set named by `HELIOS_FIXTURE_DIR` (any set with other sizes, layer counts,
/// prompts and lengths must pass the same way).
pub fn fixture() -> PathBuf {
    std::env::var_os("HELIOS_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-helios"))
}

/// Runs `case` on `B` and asserts that it ran and that every check is within tolerance.
#[allow(dead_code, reason = "text_encoder.rs checks its lines itself")]
pub fn assert_case<B: Backend>(case: &str, device: &B::Device) {
    match run_case::<B>(&fixture(), case, device) {
        Ok(Outcome::Checked(lines)) => {
            assert!(!lines.is_empty(), "{case}: no checks");
            let failed: Vec<String> = lines
                .iter()
                .filter(|l| !l.ok)
                .map(|l| l.to_string())
                .collect();
            for line in &lines {
                println!("{line}");
            }
            assert!(
                failed.is_empty(),
                "{case}: failed checks:\n{}",
                failed.join("\n")
            );
        }
        Ok(Outcome::Skipped(why)) => panic!("{case} was skipped: {why}"),
        Err(e) => panic!("{case}: {e}"),
    }
}
