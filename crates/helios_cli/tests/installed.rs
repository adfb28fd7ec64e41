//! The `helios` binary on its own, as `cargo install` leaves it: copied out of the build tree, run
//! from another folder with a fresh home, it still finds its embedded model (compiled into the
//! binary, not read from this checkout) and writes a video.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use image::AnimationDecoder;
use image::codecs::gif::GifDecoder;

/// Copies the binary into `bin/` of a fresh folder and runs it from `work/` with `HOME` and the
/// cache folder inside that folder, so nothing of this checkout or this user's cache is visible.
fn installed_helios(root: &Path, args: &[&str]) -> std::process::Output {
    let bin = root.join("bin");
    let work = root.join("work");
    let home = root.join("home");
    for dir in [&bin, &work, &home] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let exe = bin.join("helios");
    std::fs::copy(env!("CARGO_BIN_EXE_helios"), &exe).unwrap();
    // A test thread that forks while another one is still writing its copy makes the child hold
    // that file open for a moment, and exec of a file open for writing fails (ETXTBSY): retry.
    for _ in 0..50 {
        let run = Command::new(&exe)
            .args(args)
            .current_dir(&work)
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env_remove("HELIOS_MODEL_DIR")
            .output();
        match run {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed busy", exe.display());
}

#[test]
fn an_installed_binary_generates_with_its_embedded_model_from_any_folder() {
    let root = tempfile::tempdir().unwrap();
    let args = [
        "generate",
        "--prompt",
        "a lighthouse",
        "--height",
        "64",
        "--width",
        "64",
        "--steps",
        "1",
    ];
    let out = installed_helios(
        root.path(),
        &[&args[..], &["--frames", "33", "--out", "out.gif"]].concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gif = std::fs::File::open(root.path().join("work/out.gif")).unwrap();
    let frames = GifDecoder::new(std::io::BufReader::new(gif))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 33);
    assert_eq!(frames[0].buffer().dimensions(), (64, 64));
    // The model was written into the fresh cache folder, once, complete.
    let cache = root.path().join("home/.cache/helios");
    let folders: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert!(folders[0].join("model_index.json").is_file());
    assert!(folders[0].join(".complete").is_file());
}

#[test]
fn helios_model_dir_overrides_the_embedded_model() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("no-such-model");
    let exe_dir = root.path().join("bin");
    std::fs::create_dir_all(&exe_dir).unwrap();
    let exe = exe_dir.join("helios");
    std::fs::copy(env!("CARGO_BIN_EXE_helios"), &exe).unwrap();
    let out = Command::new(&exe)
        .args(["info"])
        .current_dir(root.path())
        .env("HELIOS_MODEL_DIR", &missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-model"), "{err}");
}
