//! `helios generate` end to end through the real binary on the embedded demo model: bad inputs fail
//! before any work with a clear message and leave nothing behind; good ones write the frames.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::AnimationDecoder;
use image::codecs::gif::GifDecoder;

/// The random-weights tiny checkpoint: these tests are about the command's machinery (and it is
/// fast); `demo_writes_a_gif_of_the_embedded_model` runs the embedded demo model.
const TINY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../helios_model/embedded/tiny-helios"
);

fn helios(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(args)
        .env("HELIOS_MODEL_DIR", TINY)
        .output()
        .unwrap()
}

/// A fast generation into `out` with the options of `extra` (each a flag and its value, or a
/// lone switch), the others at fast test values.
fn generate(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["generate", "--out", out.to_str().unwrap()];
    let defaults = [
        ("--prompt", "a red fox in the snow"),
        ("--height", "64"),
        ("--width", "64"),
        ("--steps", "1,1,1"),
        ("--frames", "33"),
    ];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend(extra);
    helios(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `extra` into `dir/out.gif`, expects a failure whose message contains `needle`, and that
/// `dir` holds exactly `keep` afterwards (no output, no partial file).
fn fails(dir: &Path, extra: &[&str], needle: &str, keep: &[&str]) {
    let out = generate(&dir.join("out.gif"), extra);
    assert!(!out.status.success(), "{extra:?} should fail");
    let err = stderr(&out);
    assert!(
        err.contains(needle),
        "{extra:?}: expected `{needle}` in: {err}"
    );
    assert_eq!(names(dir), keep, "{extra:?} left files behind");
}

fn write_png(path: &Path, w: u32, h: u32, shade: u8) {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([shade, (x * 4) as u8, (y * 4) as u8])
    })
    .save(path)
    .unwrap();
}

#[test]
fn bad_requests_fail_early_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails(d, &["--height", "96"], "height 96 is not usable", &[]);
    fails(d, &["--width", "0"], "is empty", &[]);
    fails(d, &["--frames", "0"], "at least 1 frame", &[]);
    fails(d, &["--steps", "2,2"], "2 step counts given", &[]);
    fails(d, &["--steps", "2,0,2"], "0 steps in a stage", &[]);
    fails(
        d,
        &["--max-sequence-length", "0"],
        "max_sequence_length 0",
        &[],
    );
    fails(d, &["--guidance=-1"], "guidance scale -1", &[]);
    let out = helios(&[
        "generate",
        "--prompt",
        "   ",
        "--out",
        d.join("a.gif").to_str().unwrap(),
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("prompt is empty"),
        "{}",
        stderr(&out)
    );
    let huge = "fox ".repeat(5000);
    let out = helios(&[
        "generate",
        "--prompt",
        &huge,
        "--out",
        d.join("a.gif").to_str().unwrap(),
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("the limit is"),
        "{}",
        stderr(&out)
    );
    assert_eq!(names(d), Vec::<String>::new());
}

#[test]
fn unreadable_conditioning_fails_early() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("bad.png"), b"not a png at all").unwrap();
    let bad = d.join("bad.png");
    fails(
        d,
        &["--image", bad.to_str().unwrap()],
        "cannot decode",
        &["bad.png"],
    );
    let missing = d.join("missing.png");
    fails(
        d,
        &["--image", missing.to_str().unwrap()],
        "cannot open the image",
        &["bad.png"],
    );
    fs::create_dir(d.join("empty")).unwrap();
    let empty = d.join("empty");
    fails(
        d,
        &["--video", empty.to_str().unwrap()],
        "holds no .png",
        &["bad.png", "empty"],
    );
    fs::write(d.join("bad.mp4"), b"garbage").unwrap();
    let bad_video = d.join("bad.mp4");
    let needle = if ffmpeg() {
        "ffmpeg cannot decode"
    } else {
        "needs `ffmpeg`"
    };
    fails(
        d,
        &["--video", bad_video.to_str().unwrap()],
        needle,
        &["bad.mp4", "bad.png", "empty"],
    );
    // A readable video that is too short fails once the model is loaded, still before any output.
    fs::create_dir(d.join("short")).unwrap();
    for i in 0..5 {
        write_png(&d.join("short").join(format!("{i:03}.png")), 64, 64, 10 * i);
    }
    let short = d.join("short");
    fails(
        d,
        &["--video", short.to_str().unwrap()],
        "it needs at least 33",
        &["bad.mp4", "bad.png", "empty", "short"],
    );
}

#[test]
fn unwritable_outputs_fail_early() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |out: PathBuf, needle: &str| {
        let o = generate(&out, &[]);
        assert!(!o.status.success(), "{} should fail", out.display());
        assert!(
            stderr(&o).contains(needle),
            "expected `{needle}` in: {}",
            stderr(&o)
        );
    };
    check(d.join("no/such/folder/out.gif"), "does not exist");
    fs::write(d.join("file"), b"x").unwrap();
    check(d.join("file/out.gif"), "does not exist");
    check(d.join("file"), "is not a folder");
    check(d.join("out.avi"), "cannot write `.avi`");
    fs::create_dir(d.join("used")).unwrap();
    fs::write(d.join("used/frame_00000.png"), b"x").unwrap();
    check(d.join("used"), "already holds frame_");
    // .mp4 without ffmpeg on PATH: a clear error before loading anything.
    let o = Command::new(env!("CARGO_BIN_EXE_helios"))
        .args([
            "generate",
            "--prompt",
            "fox",
            "--out",
            d.join("a.mp4").to_str().unwrap(),
        ])
        .env("PATH", d.join("empty-path"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("needs `ffmpeg`") && stderr(&o).contains(".gif"),
        "{}",
        stderr(&o)
    );
    assert_eq!(names(d), ["file", "used"]);
    assert_eq!(names(&d.join("used")), ["frame_00000.png"]);
}

fn ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fails the test unless `tool` runs: the MP4 path needs ffmpeg (and ffprobe to read the result back).
fn require(tool: &str) {
    let runs = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "`{tool}` is not installed: install ffmpeg (e.g. `apt-get install ffmpeg`) to run this test"
    );
}

#[test]
fn writes_gif_and_png_folder_with_the_planned_frames() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gif = d.join("fox.gif");
    let out = generate(&gif, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 33 frames (64x64)"));
    let decoder = GifDecoder::new(std::io::BufReader::new(fs::File::open(&gif).unwrap())).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 33);
    assert!(frames.iter().all(|f| f.buffer().dimensions() == (64, 64)));
    // The frames move: the video is not one still picture.
    assert_ne!(frames[0].buffer(), frames[32].buffer());

    let folder = d.join("frames");
    let out = generate(&folder, &["--seed", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = names(&folder);
    assert_eq!(files.len(), 33);
    assert_eq!(files[0], "frame_00000.png");
    assert_eq!(files[32], "frame_00032.png");
    for f in &files {
        assert_eq!(image::image_dimensions(folder.join(f)).unwrap(), (64, 64));
    }
    assert_eq!(names(d), ["fox.gif", "frames"], "no staging files left");

    // Image-to-video from a PNG, into an existing empty folder.
    write_png(&d.join("start.png"), 80, 48, 200);
    fs::create_dir(d.join("i2v")).unwrap();
    let out = generate(
        &d.join("i2v"),
        &["--image", d.join("start.png").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&d.join("i2v")).len(), 33);

    // Video-to-video from the folder written above.
    let out = generate(&d.join("v2v.gif"), &["--video", folder.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.join("v2v.gif").is_file());
}

/// `--quantize int8` loads the DiT's block weights as int8 (the load report says how many) and
/// still makes the planned frames, close to the unquantised ones.
#[test]
fn int8_weights_generate_nearly_the_same_video() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = generate(&d.join("plain"), &["--frames", "9"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let int8 = generate(&d.join("int8"), &["--frames", "9", "--quantize", "int8"]);
    assert!(int8.status.success(), "{}", stderr(&int8));
    // The tiny DiT's 2 blocks have 10 linear weights each (attention, cross-attention, FFN).
    let report = stderr(&int8);
    let quantised: usize = report
        .split(" quantised")
        .next()
        .and_then(|s| s.rsplit(", ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(quantised, 20, "{report}");
    assert!(!stderr(&plain).contains("quantised"), "{}", stderr(&plain));
    let pixels = |name: &str| -> Vec<u8> {
        let mut all = Vec::new();
        for f in names(&d.join(name)) {
            all.extend(
                image::open(d.join(name).join(f))
                    .unwrap()
                    .to_rgb8()
                    .into_raw(),
            );
        }
        all
    };
    let (a, b) = (pixels("plain"), pixels("int8"));
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "int8 weights change the numbers");
    let mean_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64;
    assert!(mean_diff < 8.0, "mean pixel difference {mean_diff} of 255");
}

#[test]
fn writes_mp4_with_ffmpeg() {
    require("ffmpeg");
    require("ffprobe");
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("fox.mp4");
    let out = generate(&mp4, &["--frames", "66"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 65 frames (64x64)"));
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&mp4)
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "64,64,65");
    assert_eq!(names(dir.path()), ["fox.mp4"]);
}

/// Ctrl-C (SIGINT) while frames are being made: the command stops, says so, and leaves neither the
/// output nor its hidden partial file.
#[cfg(unix)]
#[test]
fn interrupt_leaves_nothing_behind() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gif");
    let mut child = Command::new(env!("CARGO_BIN_EXE_helios"))
        .args([
            "generate",
            "--prompt",
            "a lighthouse at dusk",
            "--height",
            "64",
            "--width",
            "64",
        ])
        .args([
            "--steps",
            "2,2,2",
            "--frames",
            "330",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("HELIOS_MODEL_DIR", TINY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The hidden partial output appears once the model is loaded and the first chunk is under way.
    let watchdog = Instant::now() + Duration::from_secs(600);
    while names(dir.path()).is_empty() {
        assert!(Instant::now() < watchdog, "no partial output appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "generate ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        names(dir.path())[0].starts_with(".out.gif.part-"),
        "{:?}",
        names(dir.path())
    );
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("interrupted: nothing was written"), "{err}");
    assert_eq!(
        names(dir.path()),
        Vec::<String>::new(),
        "partial output left behind"
    );
}

#[test]
fn demo_writes_a_gif_of_the_embedded_model() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("face.gif");
    let out = Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(["demo", "--emotions", "neutral,happy", "--out"])
        .arg(&gif)
        .env_remove("HELIOS_MODEL_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("chunk 2: ") && stdout.contains("happy expression"),
        "{stdout}"
    );
    assert!(stdout.contains("wrote 65 frames (128x128)"), "{stdout}");
    let decoder = GifDecoder::new(std::io::BufReader::new(fs::File::open(&gif).unwrap())).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 65);
    // A bad emotion is a clear error before any work.
    let out = helios(&["demo", "--emotions", "bored", "--out", "x.gif"]);
    assert!(
        !out.status.success() && stderr(&out).contains("unknown emotion \"bored\""),
        "{}",
        stderr(&out)
    );
}
