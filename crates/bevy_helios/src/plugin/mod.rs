//! [`HeliosPlugin`] and the [`HeliosSystems`] sets; the systems live in the submodules, one per
//! phase: `context` (CollectContext), `spawn` and `submit` (Submit), `receive` (Receive),
//! `upload` (Upload and the shutdown on exit); `state` holds the worker resource and status.

mod context;
mod link;
mod receive;
mod spawn;
mod state;
mod submit;
mod upload;

use bevy::ecs::schedule::ScheduleConfigs;
use bevy::ecs::system::ScheduleSystem;
use bevy::prelude::*;

use crate::light::{HeliosLight, HeliosLightState, drive_lights};
use crate::messages::*;
use crate::prompt::SceneContext;
use crate::screen::{HeliosScreen, HeliosStream};
use crate::settings::{
    HeliosBackend, HeliosSettings, HeliosSettingsAsset, HeliosSettingsLoader, UploadPath,
};

use context::{apply_settings_asset, collect_priorities, collect_scene_context, validate_settings};
use receive::{
    WorkerInbox, apply_stream_events, detect_lost_worker, queue_chunks, receive_worker_events,
    report_worker_errors, track_connection,
};
use spawn::{read_stream_requests, spawn_worker};
pub use state::{HeliosWorker, HeliosWorkerState, HeliosWorkerStatus, helios_ready};
use submit::{
    flush_commands, grant_chunks, send_conditioning_images, send_priorities, send_prompts,
    start_streams, streams_can_run,
};
use upload::{shutdown_on_exit, upload_frames};

/// The plugin's phases, chained in this order in `Update`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeliosSystems {
    /// Reads the game state: applies a (re)loaded settings asset and checks changed settings
    /// (an invalid value is a [`HeliosWorkerError`] and holds back new streams), compacts changed
    /// [`SceneContext`]s into prompts (debounced), computes each stream's priority (distance to
    /// the nearest camera; `None` when hidden). Run your systems that change `SceneContext`
    /// before this set.
    CollectContext,
    /// Talks to the worker (never blocking): (re)spawns it when needed, starts / stops streams
    /// (including [`StartStream`] / [`StopStream`]), sends prompts, priorities, conditioning
    /// images, the game frames of [`HeliosVideoContext`](crate::HeliosVideoContext)s and chunk
    /// grants; asks for the next readbacks of those contexts.
    Submit,
    /// Drains the worker's results with `try_recv` into the screens' frame rings and writes the
    /// outbound messages ([`ChunkReady`], [`StreamStarted`], [`HeliosWorkerError`], ...). Read
    /// those messages after this set.
    Receive,
    /// Advances playback at the video's fps and puts the current frame into each screen's
    /// `Image` (CPU) or queues its GPU copy; then drives the [`HeliosLight`]s. Runs before
    /// `PostUpdate`, so the frame is rendered this tick.
    Upload,
}

/// The Bevy plugin: a background Helios worker, scene context in, frames out as textures and lights.
///
/// Adds, in `Update`, the chained sets [`HeliosSystems`] (see each variant for its systems), and
/// in `Last` a system that cancels and joins the worker on `AppExit`. Registers the plugin's
/// messages ([`StartStream`], [`ChunkReady`], ...), the `*.helios.ron` settings loader, and (when
/// the app renders) the render-world GPU upload.
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_helios::prelude::*;
/// App::new()
///     .add_plugins(DefaultPlugins)
///     .add_plugins(HeliosPlugin::default().with_settings(HeliosSettings { fps: 24.0, ..default() }))
///     .run();
/// ```
#[derive(Clone, Debug)]
pub struct HeliosPlugin {
    settings: HeliosSettings,
    settings_asset: Option<String>,
    default_systems: bool,
}

impl Default for HeliosPlugin {
    fn default() -> Self {
        Self {
            settings: HeliosSettings::default(),
            settings_asset: None,
            default_systems: true,
        }
    }
}

impl HeliosPlugin {
    /// The plugin with the model in `model_dir` (a diffusers-layout Helios checkpoint folder),
    /// generating with that checkpoint's defaults ([`HeliosSettings::real_checkpoint`]).
    pub fn new(model_dir: impl Into<std::path::PathBuf>) -> Self {
        Self::default().with_settings(HeliosSettings::real_checkpoint(model_dir))
    }

    /// Uses the checkpoint in `model_dir` instead of the embedded demo model, keeping the other
    /// settings (the defaults are sized for the demo model: see [`HeliosPlugin::new`]).
    #[must_use]
    pub fn with_model_dir(mut self, model_dir: impl Into<std::path::PathBuf>) -> Self {
        self.settings.model_dir = Some(model_dir.into());
        self
    }

    /// Selects the burn backend.
    #[must_use]
    pub fn with_backend(mut self, backend: HeliosBackend) -> Self {
        self.settings.backend = backend;
        self
    }

    /// Selects the upload path.
    #[must_use]
    pub fn with_upload(mut self, upload: UploadPath) -> Self {
        self.settings.upload = upload;
        self
    }

    /// Replaces all settings (used only if the app has no [`HeliosSettings`] resource yet).
    #[must_use]
    pub fn with_settings(mut self, settings: HeliosSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Loads the settings from a `*.helios.ron` asset (path relative to the asset folder); each
    /// (re)load replaces the [`HeliosSettings`] resource. Needs `AssetPlugin`.
    #[must_use]
    pub fn with_settings_asset(mut self, path: impl Into<String>) -> Self {
        self.settings_asset = Some(path.into());
        self
    }

    /// With `false`, the plugin adds no systems; schedule [`HeliosPlugin::systems`] yourself.
    #[must_use]
    pub fn with_default_systems(mut self, enabled: bool) -> Self {
        self.default_systems = enabled;
        self
    }

    /// The systems of one set, chained, for custom scheduling.
    pub fn systems(set: HeliosSystems) -> ScheduleConfigs<ScheduleSystem> {
        match set {
            HeliosSystems::CollectContext => (
                apply_settings_asset,
                validate_settings,
                collect_scene_context,
                collect_priorities,
            )
                .chain()
                .into_configs(),
            HeliosSystems::Submit => (
                read_stream_requests,
                spawn_worker,
                (
                    start_streams,
                    send_prompts,
                    send_priorities,
                    crate::video::hand_over_video_frames,
                    grant_chunks,
                    send_conditioning_images,
                )
                    .chain()
                    .run_if(streams_can_run),
                flush_commands,
                crate::capture::request_portrait_captures,
                crate::video::capture_video_frames,
            )
                .chain()
                .into_configs(),
            HeliosSystems::Receive => (
                receive_worker_events,
                report_worker_errors,
                queue_chunks,
                apply_stream_events,
                detect_lost_worker,
                track_connection,
            )
                .chain()
                .into_configs(),
            HeliosSystems::Upload => (upload_frames, drive_lights).chain().into_configs(),
        }
    }
}

impl Plugin for HeliosPlugin {
    fn build(&self, app: &mut App) {
        if app.world().contains_resource::<HeliosSettings>() {
            warn!(
                "HeliosSettings already present: HeliosPlugin keeps it and ignores its own settings"
            );
        } else {
            app.insert_resource(self.settings.clone());
        }
        app.register_type::<HeliosSettings>()
            .register_type::<HeliosScreen>()
            .register_type::<HeliosStream>()
            .register_type::<SceneContext>()
            .register_type::<HeliosLight>()
            .register_type::<crate::video::HeliosVideoContext>()
            .register_type::<HeliosLightState>()
            .init_resource::<HeliosWorker>()
            .init_resource::<HeliosWorkerStatus>()
            .init_resource::<WorkerInbox>()
            .init_resource::<crate::capture::PendingConditioning>()
            .add_message::<StartStream>()
            .add_message::<StopStream>()
            .add_message::<SetConditioningImage>()
            .add_message::<RequestPortraitCapture>()
            .add_message::<StreamStarted>()
            .add_message::<StreamStopped>()
            .add_message::<ChunkReady>()
            .add_message::<PromptApplied>()
            .add_message::<HeliosWorkerError>();
        if app.world().contains_resource::<AssetServer>() {
            app.init_asset::<HeliosSettingsAsset>()
                .init_asset_loader::<HeliosSettingsLoader>();
            if let Some(path) = &self.settings_asset {
                let handle: Handle<HeliosSettingsAsset> =
                    app.world().resource::<AssetServer>().load(path.clone());
                app.insert_resource(SettingsAssetHandle(handle));
            }
        } else if self.settings_asset.is_some() {
            warn!(
                "HeliosPlugin: a settings asset was given but the app has no AssetPlugin; using code settings"
            );
        }
        app.configure_sets(
            Update,
            (
                HeliosSystems::CollectContext,
                HeliosSystems::Submit,
                HeliosSystems::Receive,
                HeliosSystems::Upload,
            )
                .chain(),
        );
        if self.default_systems {
            for set in [
                HeliosSystems::CollectContext,
                HeliosSystems::Submit,
                HeliosSystems::Receive,
                HeliosSystems::Upload,
            ] {
                app.add_systems(Update, Self::systems(set).in_set(set));
            }
        }
        app.add_systems(Last, shutdown_on_exit);
        crate::gpu::build(app);
    }
}

/// Handle of the settings asset given to [`HeliosPlugin::with_settings_asset`].
#[derive(Resource)]
struct SettingsAssetHandle(Handle<HeliosSettingsAsset>);
