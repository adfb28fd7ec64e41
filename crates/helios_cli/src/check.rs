//! `helios check`: runs golden cases and prints one line per compared tensor, then
//! `N passed, N failed[, N skipped]`.

use std::path::Path;
use std::process::ExitCode;

use burn::tensor::backend::Backend;
use helios_conformance::{Outcome, case_names, run_case};

use crate::backend::BackendChoice;
use crate::with_backend;

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

fn run_all<B: Backend>(fixture_dir: &Path, names: &[String], device: &B::Device) -> Tally {
    let mut tally = Tally::default();
    for name in names {
        match run_case::<B>(fixture_dir, name, device) {
            Ok(Outcome::Checked(lines)) => {
                for line in lines {
                    println!("{line}");
                    if line.ok {
                        tally.passed += 1;
                    } else {
                        tally.failed += 1;
                    }
                }
            }
            Ok(Outcome::Skipped(why)) => {
                println!("{name:<26} SKIPPED ({why})");
                tally.skipped += 1;
            }
            Err(e) => {
                println!("{name:<26} ERROR: {e}");
                tally.failed += 1;
            }
        }
    }
    tally
}

/// Runs the cases (all of them when `cases` is empty).
pub fn run(
    fixture_dir: &Path,
    backend: BackendChoice,
    cases: &[String],
) -> anyhow::Result<ExitCode> {
    let names = if cases.is_empty() {
        case_names(fixture_dir)?
    } else {
        cases.to_vec()
    };
    let tally = with_backend!(backend, |device: B| run_all::<B>(
        fixture_dir,
        &names,
        &device
    ));
    if tally.skipped > 0 {
        println!(
            "{} passed, {} failed, {} skipped",
            tally.passed, tally.failed, tally.skipped
        );
    } else {
        println!("{} passed, {} failed", tally.passed, tally.failed);
    }
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
