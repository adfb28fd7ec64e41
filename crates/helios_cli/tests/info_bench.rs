//! `helios info` and `helios bench` through the real binary on the embedded demo model.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn helios(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn info_describes_the_embedded_model() {
    let out = helios(&["info"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "pipeline: HeliosPyramidPipeline (pyramid, 1 stage)",
        "distilled: yes",
        "cfg-zero*: no",
        "text_encoder: UMT5EncoderModel",
        "transformer: HeliosTransformer3DModel",
        "vae: AutoencoderKLWan",
        "tokenizer: T5TokenizerFast",
        "scheduler: HeliosDMDScheduler",
        "dtype BF16: 129 tensors",
        "\"num_layers\": 4",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
    // The per-part counts add up to the total.
    let counts: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("parameters: "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(counts.len(), 3);
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("total: "))
        .unwrap();
    assert!(
        total.starts_with(&format!("{} parameters", counts.iter().sum::<u64>())),
        "{total}"
    );
}

#[test]
fn info_rejects_a_folder_that_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = helios(&["info", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a Helios checkpoint"));
}

#[test]
fn bench_ends_with_a_parsable_summary_line() {
    let out = helios(&[
        "bench", "--height", "64", "--width", "64", "--frames", "33", "--steps", "1", "--runs",
        "2", "--warmup", "0",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("run ")).count(), 2);
    let last = stdout.lines().last().unwrap();
    let field = |name: &str| -> f64 {
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap()
    };
    let (median, fps, frames) = (field("median_s"), field("frames_per_s"), field("frames"));
    assert!(median > 0.0 && fps > 0.0, "{last}");
    assert_eq!(frames, 33.0);
    assert!((fps * median - frames).abs() < 0.01 * frames, "{last}");
}

/// The configs of Helios-Distilled shipped with the repository (no weights).
const DISTILLED_CONFIGS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/configs/helios-distilled"
);

/// `key=value` fields of a line.
fn fields(line: &str) -> std::collections::BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

#[test]
fn random_weight_bench_prints_a_parsable_line_per_part() {
    // The shipped Distilled configs at their real widths (one block of the DiT and of UMT5), except
    // the VAE: the real Wan VAE decodes a 9-latent chunk in minutes on a CPU, so the tiny model's VAE
    // config stands in for it here. A short prompt keeps the 14B-wide text projections quick.
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("helios-distilled");
    copy_dir(std::path::Path::new(DISTILLED_CONFIGS), &configs).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../helios_model/embedded/tiny-helios/vae/config.json"
        ),
        configs.join("vae/config.json"),
    )
    .unwrap();
    let out = helios(&[
        "bench",
        "--random-weights",
        "--config",
        configs.to_str().unwrap(),
        "--layers",
        "1",
        "--height",
        "64",
        "--width",
        "64",
        "--max-sequence-length",
        "64",
        "--runs",
        "1",
        "--warmup",
        "0",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("random weights from ")
            && stdout.contains("DiT 1/40 blocks at F32, text encoder 1/24 layers"),
        "{stdout}"
    );
    let parts: Vec<_> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("bench "))
        .map(fields)
        .collect();
    let names: Vec<String> = parts
        .iter()
        .map(|f| {
            format!(
                "{}{}",
                f["part"],
                f.get("stage").map_or(String::new(), |s| format!("/{s}"))
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "text",
            "dit/0",
            "dit/1",
            "dit/2",
            "vae_decode",
            "chunk",
            "memory"
        ],
        "{stdout}"
    );
    for f in &parts[..6] {
        let (median, min): (f64, f64) =
            (f["median_s"].parse().unwrap(), f["min_s"].parse().unwrap());
        assert!(median > 0.0 && min > 0.0 && min <= median, "{f:?}");
        assert_eq!(f["runs"], "1");
    }
    assert_eq!((parts[0]["tokens"], parts[0]["layers"]), ("64", "1"));
    // 64x64: latents 8x8, the pyramid stages at 2x2, 4x4, 8x8; the history (2 short frames at 1x2x2,
    // 2 mid at 2x4x4, 16 long at 4x8x8, padded) adds 32 + 4 + 4 tokens to each.
    for (f, (latents, tokens)) in
        parts[1..4]
            .iter()
            .zip([("9x2x2", "49"), ("9x4x4", "76"), ("9x8x8", "184")])
    {
        assert_eq!((f["latents"], f["tokens"]), (latents, tokens), "{f:?}");
    }
    assert_eq!((parts[4]["latents"], parts[4]["frames"]), ("9x8x8", "33"));
    let chunk = &parts[5];
    assert_eq!((chunk["dit_calls"], chunk["frames"]), ("6", "33"));
    let (median, fps): (f64, f64) = (
        chunk["median_s"].parse().unwrap(),
        chunk["frames_per_s"].parse().unwrap(),
    );
    assert!((fps * median - 33.0).abs() < 0.01 * 33.0, "{chunk:?}");
    // No device memory pools on the CPU backend.
    for key in ["weights_bytes", "peak_in_use_bytes", "peak_reserved_bytes"] {
        assert_eq!(parts[6][key], "n/a");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("summary: one chunk of 33 frames")),
        "{stdout}"
    );
    let last = fields(stdout.lines().last().unwrap());
    assert!(
        (last["median_s"].parse::<f64>().unwrap() - median).abs() < 1e-3,
        "{last:?}"
    );
    assert_eq!(last["frames"], "33");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[test]
fn random_weight_bench_rejects_missing_and_malformed_configs() {
    let bench = |config: &str, extra: &[&str]| {
        let mut args = vec!["bench", "--random-weights", "--config", config];
        args.extend(extra);
        let out = helios(&args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let err = bench(missing.to_str().unwrap(), &[]);
    assert!(
        err.contains("cannot read the configs in") && err.contains("model_index.json"),
        "{err}"
    );

    let broken = dir.path().join("broken");
    copy_dir(std::path::Path::new(DISTILLED_CONFIGS), &broken).unwrap();
    std::fs::write(broken.join("transformer/config.json"), "{ \"num_layers\": ").unwrap();
    let err = bench(broken.to_str().unwrap(), &[]);
    assert!(
        err.contains("invalid JSON in") && err.contains("transformer/config.json"),
        "{err}"
    );

    let err = bench(DISTILLED_CONFIGS, &["--layers", "41"]);
    assert!(
        err.contains("41 layers asked; the config has 1 to 40"),
        "{err}"
    );
    let err = bench(DISTILLED_CONFIGS, &["--width", "100"]);
    assert!(
        err.contains("--width 100 must be a positive multiple of 64"),
        "{err}"
    );

    // --random-weights needs --config, and --config only goes with it.
    for (args, needed) in [
        (&["bench", "--random-weights"][..], "--config <DIR>"),
        (
            &["bench", "--config", DISTILLED_CONFIGS][..],
            "--random-weights",
        ),
    ] {
        let out = helios(args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("required arguments were not provided") && err.contains(needed),
            "{err}"
        );
    }
}
