//! Shared helpers of the golden tests: the fixture folder and a runner that asserts every line.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use helios_conformance::{Outcome, run_case};

/// `../shared/fixtures/tiny-helios` next to the checkout.
pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/tiny-helios")
}

/// Runs `case` on `B` and asserts that it ran and that every check is within tolerance.
pub fn assert_case<B: Backend>(case: &str, device: &B::Device) {
    match run_case::<B>(&fixture(), case, device) {
        Ok(Outcome::Checked(lines)) => {
            assert!(!lines.is_empty(), "{case}: no checks");
            let failed: Vec<String> = lines.iter().filter(|l| !l.ok).map(|l| l.to_string()).collect();
            for line in &lines {
                println!("{line}");
            }
            assert!(failed.is_empty(), "{case}: failed checks:\n{}", failed.join("\n"));
        }
        Ok(Outcome::Skipped(why)) => panic!("{case} was skipped: {why}"),
        Err(e) => panic!("{case}: {e}"),
    }
}
