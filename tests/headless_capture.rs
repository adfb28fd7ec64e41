//! The headless capture of the `npc_face` scene (real renderer on lavapipe / any Vulkan device,
//! real worker on the random-weights tiny checkpoint): the face region changes between captured ticks, with both
//! upload paths, and with the model itself on burn's wgpu backend running on Bevy's own wgpu
//! device (`GpuSharing::SharedDevice`), its frames going buffer-to-texture without a readback.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bevy::prelude::*;
use bevy_helios::prelude::*;
use helios_examples::headless::{CaptureConfig, FACE_REGION, PLAYBACK_FILE, headless_app};
use helios_examples::tiny_model_settings;

fn face_mean(path: &std::path::Path) -> Vec<f32> {
    let img = image::open(path).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let (x0, y0) = (
        (FACE_REGION.min.x * w as f32) as u32,
        (FACE_REGION.min.y * h as f32) as u32,
    );
    let (x1, y1) = (
        (FACE_REGION.max.x * w as f32) as u32,
        (FACE_REGION.max.y * h as f32) as u32,
    );
    let mut out = Vec::new();
    for y in y0..y1 {
        for x in x0..x1 {
            out.extend(img.get_pixel(x, y).0.iter().map(|&v| f32::from(v)));
        }
    }
    out
}

/// The `key=value` counters the capture writes next to its screenshots.
fn counter(dir: &std::path::Path, key: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join(PLAYBACK_FILE)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {text}"))
}

/// Captures the scene; returns how many frames went to the texture straight from the model's
/// GPU buffer.
fn capture(settings: HeliosSettings) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let ticks = 6;
    let config = CaptureConfig {
        out: dir.path().into(),
        ticks,
        width: 320,
        height: 240,
        timeout: Duration::from_secs(900), // a watchdog for a hung run, not a speed check
    };
    let exit = headless_app(config, settings).run();
    assert!(exit.is_success(), "{exit:?}");
    let first = face_mean(&dir.path().join("frame_0000.png"));
    let last = face_mean(&dir.path().join(format!("frame_{:04}.png", ticks - 1)));
    let diff: f32 = first
        .iter()
        .zip(&last)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / first.len() as f32;
    let mean: f32 = first.iter().sum::<f32>() / first.len() as f32;
    assert!(
        mean > 2.0,
        "the face region shows video, not black (mean {mean})"
    );
    assert!(
        diff > 1.0,
        "the face region changes between ticks (mean abs diff {diff})"
    );
    assert!(counter(dir.path(), "frames_shown") >= ticks as u64);
    counter(dir.path(), "frames_from_gpu")
}

/// One test (renderers in parallel threads of one process would only slow lavapipe down).
#[test]
fn headless_capture_face_changes_with_both_upload_paths_and_the_shared_device() {
    let cpu = capture(HeliosSettings {
        upload: UploadPath::Cpu,
        ..tiny_model_settings()
    });
    assert_eq!(cpu, 0);
    // NdArray frames through a staging buffer into the texture.
    let staged = capture(HeliosSettings {
        upload: UploadPath::GpuResident,
        ..tiny_model_settings()
    });
    assert_eq!(staged, 0);
    // The whole GPU path: burn Wgpu on Bevy's RenderDevice, each frame packed to RGBA8 on that
    // device and copied buffer-to-texture in the render world, never read back.
    let resident = capture(HeliosSettings {
        backend: HeliosBackend::Wgpu,
        gpu_sharing: GpuSharing::SharedDevice,
        upload: UploadPath::GpuResident,
        ..tiny_model_settings()
    });
    assert!(resident >= 6, "frames came from the GPU buffer: {resident}");
}
