//! [`HeliosSystems::CollectContext`](super::HeliosSystems::CollectContext): settings asset, scene context to prompts, priorities.

use bevy::camera::visibility::ViewVisibility;
use bevy::prelude::*;

use super::SettingsAssetHandle;
use super::state::{HeliosWorker, HeliosWorkerStatus};
use crate::messages::HeliosWorkerError;
use crate::prompt::{SceneContext, compact_prompt};
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream, StreamState};
use crate::settings::{HeliosSettings, HeliosSettingsAsset};

/// Applies a (re)loaded settings asset to the [`HeliosSettings`] resource.
pub(super) fn apply_settings_asset(
    handle: Option<Res<SettingsAssetHandle>>,
    mut events: MessageReader<AssetEvent<HeliosSettingsAsset>>,
    assets: Option<Res<Assets<HeliosSettingsAsset>>>,
    mut settings: ResMut<HeliosSettings>,
) {
    let (Some(handle), Some(assets)) = (handle, assets) else {
        events.clear();
        return;
    };
    for event in events.read() {
        if (event.is_loaded_with_dependencies(&handle.0) || event.is_modified(&handle.0))
            && let Some(asset) = assets.get(&handle.0)
            && *settings != asset.0
        {
            info!("bevy_helios: settings (re)loaded from the asset");
            *settings = asset.0.clone();
        }
    }
}

/// Checks the settings whenever they change. An invalid value is reported once (a
/// [`HeliosWorkerError`] carrying [`HeliosError::Settings`](crate::HeliosError::Settings)) and
/// holds back new workers and streams until the settings are fixed.
pub(super) fn validate_settings(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    mut errors: MessageWriter<HeliosWorkerError>,
) {
    if !settings.is_changed() {
        return;
    }
    match settings.validate() {
        Ok(()) => worker.invalid_settings = None,
        Err(error) => {
            warn!("bevy_helios: {error}");
            status.errors += 1;
            worker.invalid_settings = Some(error.clone());
            errors.write(HeliosWorkerError {
                entity: None,
                error,
            });
        }
    }
}

/// Compacts each screen's [`SceneContext`] (or its plain prompt) into the prompt to send, debounced.
pub(super) fn collect_scene_context(
    time: Res<Time>,
    settings: Res<HeliosSettings>,
    mut screens: Query<(
        &HeliosScreen,
        Option<Ref<SceneContext>>,
        &mut HeliosPlayback,
    )>,
) {
    let now = time.elapsed_secs_f64();
    let debounce = f64::from(settings.prompt_debounce_secs);
    for (screen, ctx, mut playback) in &mut screens {
        let playback = playback.as_mut();
        let changed = ctx.as_ref().is_none_or(|c| c.is_changed()) || settings.is_changed();
        if changed {
            playback.wanted_prompt = match &ctx {
                Some(ctx) => compact_prompt(ctx, &settings.template),
                None => screen.prompt.clone(),
            };
        }
        if !matches!(playback.state, StreamState::Running { .. }) {
            continue;
        }
        let out = if changed {
            playback
                .tracker
                .offer(&playback.wanted_prompt, now, debounce)
        } else {
            playback.tracker.poll(now, debounce)
        };
        if out.is_some() {
            playback.outgoing_prompt = out;
        }
    }
}

/// Sets each stream's priority: distance to the nearest camera, `None` (paused) when hidden.
pub(super) fn collect_priorities(
    cameras: Query<&GlobalTransform, With<Camera>>,
    mut screens: Query<(
        &HeliosScreen,
        Option<&GlobalTransform>,
        Option<&ViewVisibility>,
        &mut HeliosStream,
    )>,
) {
    for (screen, transform, visibility, mut stream) in &mut screens {
        let hidden = screen.pause_when_hidden && visibility.is_some_and(|v| !v.get());
        let priority = if hidden {
            None
        } else {
            let at = transform
                .map(GlobalTransform::translation)
                .unwrap_or(Vec3::ZERO);
            let d = cameras
                .iter()
                .map(|c| c.translation().distance(at))
                .fold(f32::INFINITY, f32::min);
            Some(if d.is_finite() { d } else { 0.0 })
        };
        if stream.priority != priority {
            stream.priority = priority;
        }
    }
}
