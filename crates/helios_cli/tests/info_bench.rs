//! `helios info` and `helios bench` through the real binary on the embedded tiny model.

use std::process::{Command, Output};

fn helios(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helios")).args(args).output().unwrap()
}

#[test]
fn info_describes_the_embedded_model() {
    let out = helios(&["info"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "pipeline: HeliosPyramidPipeline (pyramid, 3 stages)",
        "distilled: yes",
        "cfg-zero*: no",
        "text_encoder: UMT5EncoderModel",
        "transformer: HeliosTransformer3DModel",
        "vae: AutoencoderKLWan",
        "tokenizer: T5TokenizerFast",
        "scheduler: HeliosDMDScheduler",
        "dtype BF16: 75 tensors",
        "\"num_layers\": 2",
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
    let total = text.lines().find_map(|l| l.strip_prefix("total: ")).unwrap();
    assert!(total.starts_with(&format!("{} parameters", counts.iter().sum::<u64>())), "{total}");
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
    let out = helios(&["bench", "--height", "64", "--width", "64", "--frames", "33", "--steps", "1,1,1", "--runs", "2", "--warmup", "0"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.starts_with("run ")).count(), 2);
    let last = stdout.lines().last().unwrap();
    let field = |name: &str| -> f64 {
        last.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok()).unwrap()
    };
    let (median, fps, frames) = (field("median_s"), field("frames_per_s"), field("frames"));
    assert!(median > 0.0 && fps > 0.0, "{last}");
    assert_eq!(frames, 33.0);
    assert!((fps * median - frames).abs() < 0.01 * frames, "{last}");
}
