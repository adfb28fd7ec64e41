//! [`HeliosSystems::Upload`](super::HeliosSystems::Upload) (paced playback into the `Image`s) and
//! the shutdown on `AppExit`.

use bevy::prelude::*;

use super::state::{HeliosWorker, HeliosWorkerState, HeliosWorkerStatus};
use crate::gpu::FrameSource;
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream};
use crate::settings::{HeliosSettings, UploadPath};

/// Counts a frame that does not have the settings' size, logging the 1st, 2nd, 4th, 8th, ... of
/// each stream (a stream started before the size changed sends a chunk of them).
fn reject_frame(entity: Entity, stream: &mut HeliosStream, got: &str, want: (u32, u32)) {
    stream.wrong_size_frames += 1;
    if stream.wrong_size_frames.is_power_of_two() {
        warn!(
            "bevy_helios: {entity}: a frame of {got} is not of the settings' size {}x{}; not shown ({} so far)",
            want.0, want.1, stream.wrong_size_frames
        );
    }
}

/// Advances each screen's playback and shows the current frame (CPU write or GPU copy), within
/// the settings' per-tick upload budget (nearest screens first).
pub(super) fn upload_frames(
    time: Res<Time>,
    settings: Res<HeliosSettings>,
    mut images: ResMut<Assets<Image>>,
    mut gpu: Option<ResMut<crate::gpu::HeliosGpuUploads>>,
    mut screens: Query<(
        Entity,
        &HeliosScreen,
        &mut HeliosPlayback,
        &mut HeliosStream,
    )>,
    mut order: Local<Vec<(f32, Entity)>>,
) {
    let dt = f64::from(time.delta_secs());
    let fps = f64::from(settings.fps);
    if !(fps.is_finite() && fps > 0.0) {
        return; // reported by `validate_settings`
    }
    order.clear();
    for (entity, _, mut playback, mut stream) in &mut screens {
        let playback = playback.as_mut();
        if let Some(frame) = playback.ring.advance(dt, fps) {
            playback.held = Some(frame);
        }
        stream.buffered = playback.ring.len();
        stream.underruns = playback.ring.underruns();
        stream.dropped_frames = playback.ring.dropped();
        stream.frames_shown = playback.ring.shown();
        if playback.held.is_some() {
            order.push((stream.priority.unwrap_or(f32::INFINITY), entity));
        }
    }
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let use_gpu = settings.upload == UploadPath::GpuResident && gpu.is_some();
    for &(_, entity) in order.iter().take(settings.max_uploads_per_tick.max(1)) {
        let Ok((_, screen, mut playback, mut stream)) = screens.get_mut(entity) else {
            continue;
        };
        let Some(frame) = playback.held.take() else {
            continue;
        };
        stream.frame_stats = Some(frame.stats);
        let (w, h) = settings.frame_size();
        // A frame left on the GPU goes to the texture on the GPU.
        if let Some(gpu_frame) = frame.gpu {
            let got = (gpu_frame.buffer.width(), gpu_frame.buffer.height());
            if got != (w, h) {
                let got = format!("{}x{}", got.0, got.1);
                reject_frame(entity, &mut stream, &got, (w, h));
            } else if let Some(gpu) = gpu.as_deref_mut() {
                gpu.push(screen.image.id(), w, h, FrameSource::Gpu(gpu_frame));
                stream.frames_from_gpu += 1;
            }
            continue;
        }
        if frame.pixels.len() != (w as usize) * (h as usize) * 4 {
            let got = format!("{} RGBA bytes", frame.pixels.len());
            reject_frame(entity, &mut stream, &got, (w, h));
            continue;
        }
        if use_gpu && let Some(gpu) = gpu.as_deref_mut() {
            gpu.push(screen.image.id(), w, h, FrameSource::Bytes(frame.pixels));
            continue;
        }
        let Some(mut image) = images.get_mut(&screen.image) else {
            continue;
        };
        if image.width() != w || image.height() != h {
            *image = HeliosScreen::blank_image(w, h);
        }
        image.data = Some(frame.pixels);
    }
}

/// Cancels and joins the worker when the app exits.
pub(super) fn shutdown_on_exit(
    mut exits: MessageReader<AppExit>,
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
) {
    if exits.read().next().is_some() && worker.worker.is_some() {
        let clean = worker.shutdown();
        status.state = HeliosWorkerState::ShutDown;
        info!("bevy_helios: worker shut down (joined cleanly: {clean})");
    }
}
