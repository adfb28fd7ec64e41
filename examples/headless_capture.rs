//! No window: renders the `npc_face` scene through the GPU (lavapipe on a server) for `--ticks N`
//! ticks, one video frame per tick, writes `frame_0000.png`, ... and the playback counters
//! (`playback.txt`) to `--out DIR`, then exits 0.
//!
//! `cargo run --release --example headless_capture -- --ticks 24 --out captures`

use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;
use clap::Parser;
use helios_examples::DemoArgs;
use helios_examples::headless::{CaptureConfig, PLAYBACK_FILE, headless_app};

#[derive(Parser, Debug)]
struct Args {
    /// Screenshots to take.
    #[arg(long, default_value_t = 24)]
    ticks: usize,
    /// Output folder.
    #[arg(long, default_value = "captures")]
    out: PathBuf,
    /// Capture width.
    #[arg(long, default_value_t = 320)]
    capture_width: u32,
    /// Capture height.
    #[arg(long, default_value_t = 240)]
    capture_height: u32,
    #[command(flatten)]
    demo: DemoArgs,
}

fn main() -> AppExit {
    let args = Args::parse();
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("cannot create {}: {e}", args.out.display());
        return AppExit::error();
    }
    let config = CaptureConfig {
        out: args.out.clone(),
        ticks: args.ticks,
        width: args.capture_width,
        height: args.capture_height,
        timeout: Duration::from_secs(600),
    };
    let exit = headless_app(config, args.demo.settings()).run();
    if exit.is_success() {
        println!("wrote {} frames to {}", args.ticks, args.out.display());
        if let Ok(counters) = std::fs::read_to_string(args.out.join(PLAYBACK_FILE)) {
            print!("{counters}");
        }
    }
    exit
}
