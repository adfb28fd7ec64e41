//! `helios`: generation, checkpoint info, benchmarks and conformance checks of the burn port of
//! Helios.

mod backend;
mod bench;
mod check;
mod common;
mod demo;
mod generate;
mod info;
mod input;
mod output;
mod serve;
mod train;

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
    /// Generate a video from a prompt (and an image or video) into an .mp4, a .gif or a folder of PNGs.
    Generate(Box<generate::GenerateArgs>),
    /// Animate an NPC of the embedded demo model: its portrait, then an emotion per chunk.
    Demo(Box<demo::DemoArgs>),
    /// Show what a checkpoint holds: classes, configs, parameters, dtypes, bytes on disk.
    Info {
        /// Diffusers-layout Helios folder [default: the embedded demo model]
        dir: Option<PathBuf>,
    },
    /// Time the whole pipeline (text, denoising, VAE decode) over several runs.
    Bench(Box<bench::BenchArgs>),
    /// Serve the model to game clients over WebSocket (streams, prompt updates, conditioning images).
    Serve(Box<serve::ServeArgs>),
    /// Train the demo face model (a small VAE and DiT on procedural NPC face clips) on the CPU.
    TrainDemo(Box<train::TrainArgs>),
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

/// Log lines go to stderr. `RUST_LOG` replaces the default filter: warnings, and `helios*`'s info.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,helios=info"));
    // Fails only if a subscriber is already installed, which then keeps receiving the events.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Generate(args) => generate::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Info { dir } => dir
            .map_or_else(common::default_model_dir, Ok)
            .and_then(|dir| info::run(&dir))
            .map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::run(&args).map(|()| ExitCode::SUCCESS),
        Command::TrainDemo(args) => train::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Check {
            fixture_dir,
            backend,
            cases,
        } => check::run(&fixture_dir, backend, &cases),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
