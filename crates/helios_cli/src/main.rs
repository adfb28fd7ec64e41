//! `helios`: conformance checks of the burn port of Helios against golden fixtures (and, as the
//! port grows, generation, checkpoint info and benchmarks).

mod backend;
mod check;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use backend::BackendChoice;

/// The Helios video model in burn.
#[derive(Parser, Debug)]
#[command(name = "helios", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the golden conformance cases of a fixture set (checkpoint + `cases/`).
    Check {
        /// The fixture folder: a diffusers-layout checkpoint with a `cases/` folder.
        fixture_dir: PathBuf,
        /// Backend to run on.
        #[arg(long, value_enum, default_value_t = BackendChoice::Ndarray)]
        backend: BackendChoice,
        /// Case to run (the case file's stem); repeat for several; all cases when absent.
        #[arg(long = "case")]
        cases: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { fixture_dir, backend, cases } => check::run(&fixture_dir, backend, &cases),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
