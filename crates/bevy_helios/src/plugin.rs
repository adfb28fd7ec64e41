//! [`HeliosPlugin`], the [`HeliosSystems`] sets and the systems in them.

use std::collections::{HashMap, VecDeque};

use bevy::camera::visibility::ViewVisibility;
use bevy::ecs::schedule::ScheduleConfigs;
use bevy::ecs::system::ScheduleSystem;
use bevy::prelude::*;
use crossbeam_channel::TrySendError;

use crate::error::HeliosError;
use crate::light::{HeliosLight, HeliosLightState, drive_lights};
use crate::messages::*;
use crate::prompt::{SceneContext, compact_prompt};
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream, HeliosStreamStatus};
use crate::settings::{
    GpuSharing, HeliosBackend, HeliosSettings, HeliosSettingsAsset, HeliosSettingsLoader,
    UploadPath,
};
use crate::worker::{EngineConfig, StreamId, StreamSpec, Worker, WorkerCommand, WorkerEvent};

/// The plugin's phases, chained in this order in `Update`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeliosSystems {
    /// Reads the game state: applies a (re)loaded settings asset, compacts changed
    /// [`SceneContext`]s into prompts (debounced), computes each stream's priority (distance to
    /// the nearest camera; `None` when hidden). Run your systems that change `SceneContext`
    /// before this set.
    CollectContext,
    /// Talks to the worker (never blocking): (re)spawns it when needed, starts / stops streams
    /// (including [`StartStream`] / [`StopStream`]), sends prompts, priorities, conditioning
    /// images and chunk grants.
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
/// in `Last` a system that cancels and joins the worker on `AppExit`. Registers the messages of
/// [`crate::messages`], the `*.helios.ron` settings loader, and (when the app renders) the
/// render-world GPU upload.
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
    /// The plugin with the model in `model_dir` (a diffusers-layout Helios checkpoint folder).
    pub fn new(model_dir: impl Into<std::path::PathBuf>) -> Self {
        Self::default().with_model_dir(model_dir)
    }

    /// Uses the checkpoint in `model_dir` instead of the embedded tiny model.
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
                collect_scene_context,
                collect_priorities,
            )
                .chain()
                .into_configs(),
            HeliosSystems::Submit => (submit_requests, crate::capture::request_portrait_captures)
                .chain()
                .into_configs(),
            HeliosSystems::Receive => drain_worker.into_configs(),
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
            .register_type::<HeliosLightState>()
            .init_resource::<HeliosWorker>()
            .init_resource::<HeliosWorkerStatus>()
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

/// Where the worker stands.
#[derive(Clone, Debug, Default, PartialEq, Reflect)]
pub enum HeliosWorkerState {
    /// No worker yet.
    #[default]
    NotStarted,
    /// The model is loading.
    Loading,
    /// The model is loaded; streams run.
    Ready,
    /// The model failed (message); change the settings or send a `StartStream` to retry.
    Failed(String),
    /// Shut down (on `AppExit`).
    ShutDown,
}

/// The worker's state and counters.
#[derive(Resource, Clone, Debug, Default, Reflect)]
#[reflect(Resource)]
pub struct HeliosWorkerStatus {
    /// Where the worker stands.
    pub state: HeliosWorkerState,
    /// Times the worker was (re)spawned.
    pub spawns: u64,
    /// Chunks received from the worker.
    pub chunks: u64,
    /// Commands dropped because the command queue and its overflow were full.
    pub dropped_commands: u64,
    /// Errors reported.
    pub errors: u64,
}

/// Run condition: the model is loaded and streams can run.
pub fn helios_ready() -> impl FnMut(Option<Res<HeliosWorkerStatus>>) -> bool + Clone {
    |status| status.is_some_and(|s| s.state == HeliosWorkerState::Ready)
}

/// The worker handle (a crossbeam `Sender`/`Receiver` pair and the thread's `JoinHandle`, inside
/// [`Worker`]) plus the game-side bookkeeping. Dropping it cancels and joins the thread.
#[derive(Resource, Default)]
pub struct HeliosWorker {
    worker: Option<Worker>,
    /// Commands that did not fit the channel yet (bounded by the settings' `command_queue`).
    overflow: VecDeque<WorkerCommand>,
    streams: HashMap<StreamId, Entity>,
    settings: Option<HeliosSettings>,
    next_seed: u64,
}

impl HeliosWorker {
    /// Cancels the current chunk, ends the worker thread and joins it; `true` when it was joined
    /// cleanly (`false` when there was no worker).
    pub fn shutdown(&mut self) -> bool {
        self.overflow.clear();
        self.worker.take().is_some_and(|mut w| w.shutdown())
    }

    /// Whether a worker thread is running.
    pub fn is_running(&self) -> bool {
        self.worker.as_ref().is_some_and(Worker::is_alive)
    }

    fn send(&mut self, command: WorkerCommand, capacity: usize, status: &mut HeliosWorkerStatus) {
        let Some(worker) = &self.worker else { return };
        if !self.overflow.is_empty() {
            self.push_overflow(command, capacity, status);
            return;
        }
        match worker.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(command)) => self.push_overflow(command, capacity, status),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn push_overflow(
        &mut self,
        command: WorkerCommand,
        capacity: usize,
        status: &mut HeliosWorkerStatus,
    ) {
        if self.overflow.len() >= capacity.max(1) {
            // Keep the newest: drop the oldest command that is not a start/stop.
            let victim = self
                .overflow
                .iter()
                .position(|c| {
                    !matches!(c, WorkerCommand::Start { .. } | WorkerCommand::Stop { .. })
                })
                .unwrap_or(0);
            self.overflow.remove(victim);
            status.dropped_commands += 1;
        }
        self.overflow.push_back(command);
    }

    fn flush(&mut self) {
        let Some(worker) = &self.worker else { return };
        while let Some(command) = self.overflow.pop_front() {
            if let Err(TrySendError::Full(command)) = worker.try_send(command) {
                self.overflow.push_front(command);
                break;
            }
        }
    }
}

fn apply_settings_asset(
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
        if event.is_loaded_with_dependencies(&handle.0) || event.is_modified(&handle.0) {
            if let Some(asset) = assets.get(&handle.0)
                && *settings != asset.0
            {
                info!("bevy_helios: settings (re)loaded from the asset");
                *settings = asset.0.clone();
            }
        }
    }
}

/// Compacts each screen's [`SceneContext`] (or its plain prompt) into the prompt to send, debounced.
pub fn collect_scene_context(
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
        if !playback.started {
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
pub fn collect_priorities(
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

fn engine_config(
    settings: &HeliosSettings,
    shared: Option<&crate::gpu::SharedWgpuDevice>,
) -> EngineConfig {
    let shared_wgpu = match (settings.backend, settings.gpu_sharing, shared) {
        (HeliosBackend::Wgpu, GpuSharing::SharedDevice, Some(shared)) => shared.device(),
        _ => None,
    };
    EngineConfig {
        model_dir: settings.resolved_model_dir(),
        backend: settings.backend,
        shared_wgpu,
    }
}

/// Spawns / respawns the worker and sends it what the screens need.
#[allow(clippy::too_many_arguments)]
pub fn submit_requests(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    shared: Option<Res<crate::gpu::SharedWgpuDevice>>,
    mut starts: MessageReader<StartStream>,
    mut stops: MessageReader<StopStream>,
    mut images: MessageReader<SetConditioningImage>,
    mut pending_images: ResMut<crate::capture::PendingConditioning>,
    mut screens: Query<(
        Entity,
        &HeliosScreen,
        &mut HeliosPlayback,
        &mut HeliosStream,
    )>,
    mut errors: MessageWriter<HeliosWorkerError>,
) {
    let worker = worker.as_mut();
    let mut start_requested: Vec<Entity> = starts.read().map(|m| m.0).collect();
    let stop_requested: Vec<Entity> = stops.read().map(|m| m.0).collect();

    // A worker is needed when some screen wants to run.
    let wants_any = screens
        .iter()
        .any(|(e, s, p, _)| p.want_running.unwrap_or(s.autostart) || start_requested.contains(&e));
    let stale = worker
        .settings
        .as_ref()
        .is_some_and(|old| old.engine_differs(&settings));
    let dead = worker.worker.is_some() && !worker.is_running();
    let failed = matches!(status.state, HeliosWorkerState::Failed(_));
    let needs_spawn = wants_any
        && (worker.worker.is_none() || stale || (dead || failed) && !start_requested.is_empty());
    let waiting_for_gpu = settings.backend == HeliosBackend::Wgpu
        && settings.gpu_sharing == GpuSharing::SharedDevice
        && crate::gpu::renders(shared.as_deref())
        && shared.as_deref().is_none_or(|s| !s.ready());
    if needs_spawn && !waiting_for_gpu {
        worker.shutdown();
        let config = engine_config(&settings, shared.as_deref());
        if settings.backend == HeliosBackend::Wgpu
            && settings.gpu_sharing == GpuSharing::SharedDevice
            && config.shared_wgpu.is_none()
        {
            warn!(
                "bevy_helios: no render device to share; the wgpu backend creates its own device"
            );
        }
        match Worker::spawn(config, settings.command_queue, settings.result_queue) {
            Ok(w) => {
                worker.worker = Some(w);
                status.state = HeliosWorkerState::Loading;
                status.spawns += 1;
            }
            Err(error) => {
                status.state = HeliosWorkerState::Failed(error.to_string());
                status.errors += 1;
                errors.write(HeliosWorkerError {
                    entity: None,
                    error,
                });
            }
        }
        worker.settings = Some(settings.clone());
        worker.streams.clear();
        for (_, _, mut playback, mut stream) in &mut screens {
            if playback.started {
                playback.reset();
                stream.status = HeliosStreamStatus::Idle;
            }
        }
    }
    if worker.worker.is_none() || !worker.is_running() {
        // Keep the start requests for when a worker runs.
        for (entity, _, mut playback, _) in &mut screens {
            if start_requested.contains(&entity) {
                playback.want_running = Some(true);
            }
        }
        return;
    }
    let capacity = settings.command_queue;
    let status_ref = status.into_inner();
    for (entity, screen, mut playback, mut stream) in &mut screens {
        let playback = playback.as_mut();
        playback.ring.set_capacity(settings.ring_capacity);
        let id = entity.to_bits();
        if stop_requested.contains(&entity) {
            playback.want_running = Some(false);
            if playback.started {
                worker
                    .worker
                    .as_ref()
                    .inspect(|w| w.cancel_if_generating(id));
                worker.send(WorkerCommand::Stop { id }, capacity, status_ref);
                playback.started = false;
                playback.grant_outstanding = false;
            }
            stream.status = HeliosStreamStatus::Stopped;
            continue;
        }
        if let Some(i) = start_requested.iter().position(|e| *e == entity) {
            start_requested.swap_remove(i);
            playback.want_running = Some(true);
            if playback.started {
                // Restart: drop the old stream first.
                worker.send(WorkerCommand::Stop { id }, capacity, status_ref);
                playback.reset();
            }
        }
        if !playback.want_running.unwrap_or(screen.autostart) {
            continue;
        }
        if !playback.started {
            if matches!(stream.status, HeliosStreamStatus::Failed(_))
                && playback.want_running != Some(true)
            {
                continue;
            }
            playback.reset();
            let prompt = playback.wanted_prompt.clone();
            playback.tracker.offer(&prompt, 0.0, 0.0);
            let seed = settings.seed.wrapping_add(worker.next_seed);
            worker.next_seed += 1;
            let spec = StreamSpec {
                prompt: prompt.clone(),
                negative_prompt: settings.negative_prompt.clone(),
                height: settings.height as usize,
                width: settings.width as usize,
                steps: settings.steps.clone(),
                guidance_scale: settings.guidance_scale,
                seed,
                amplify_first_chunk: settings.amplify_first_chunk,
                max_sequence_length: settings.max_sequence_length,
                image: None,
            };
            worker.send(
                WorkerCommand::Start {
                    id,
                    spec: Box::new(spec),
                },
                capacity,
                status_ref,
            );
            worker.streams.insert(id, entity);
            playback.id = Some(id);
            playback.started = true;
            playback.want_running = Some(true);
            stream.prompt = Some(prompt);
            stream.status = HeliosStreamStatus::Starting;
        }
        if let Some(prompt) = playback.outgoing_prompt.take() {
            stream.prompt = Some(prompt.clone());
            let over_chunks = settings.prompt_interpolation_chunks;
            worker.send(
                WorkerCommand::SetPrompt {
                    id,
                    prompt,
                    over_chunks,
                },
                capacity,
                status_ref,
            );
        }
        if playback.sent_priority != Some(stream.priority) {
            playback.sent_priority = Some(stream.priority);
            worker.send(
                WorkerCommand::SetPriority {
                    id,
                    priority: stream.priority,
                },
                capacity,
                status_ref,
            );
            match (&stream.status, stream.priority) {
                (HeliosStreamStatus::Streaming, None) => stream.status = HeliosStreamStatus::Paused,
                (HeliosStreamStatus::Paused, Some(_)) => {
                    stream.status = HeliosStreamStatus::Streaming
                }
                _ => {}
            }
        }
        if !playback.grant_outstanding
            && stream.priority.is_some()
            && playback.ring.len() <= settings.low_water_frames
        {
            playback.grant_outstanding = true;
            worker.send(WorkerCommand::Grant { id, chunks: 1 }, capacity, status_ref);
        }
    }
    for (entity, image) in images
        .read()
        .map(|m| (m.entity, m.image.clone()))
        .chain(pending_images.0.drain(..))
    {
        let id = entity.to_bits();
        if worker.streams.contains_key(&id) {
            let image = Box::new((*image).clone());
            worker.send(WorkerCommand::SetImage { id, image }, capacity, status_ref);
        }
    }
    worker.flush();
}

/// At most this many worker events are handled per tick (the rest wait in the bounded channel).
const MAX_EVENTS_PER_TICK: usize = 64;

/// Drains the worker's results (non-blocking) into the screens and writes the outbound messages.
#[allow(clippy::too_many_arguments)]
pub fn drain_worker(
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    mut screens: Query<(&mut HeliosPlayback, &mut HeliosStream)>,
    mut started: MessageWriter<StreamStarted>,
    mut stopped: MessageWriter<StreamStopped>,
    mut ready: MessageWriter<ChunkReady>,
    mut applied: MessageWriter<PromptApplied>,
    mut errors: MessageWriter<HeliosWorkerError>,
) {
    let worker = worker.as_mut();
    let mut drained = false;
    for _ in 0..MAX_EVENTS_PER_TICK {
        let Some(event) = worker.worker.as_ref().and_then(|w| w.try_recv().ok()) else {
            drained = true;
            break;
        };
        let entity_of = |id: &StreamId| worker.streams.get(id).copied();
        match event {
            WorkerEvent::Loaded => status.state = HeliosWorkerState::Ready,
            WorkerEvent::Started { id } => {
                if let Some(entity) = entity_of(&id)
                    && let Ok((_, mut stream)) = screens.get_mut(entity)
                {
                    stream.status = if stream.priority.is_some() {
                        HeliosStreamStatus::Streaming
                    } else {
                        HeliosStreamStatus::Paused
                    };
                    started.write(StreamStarted(entity));
                }
            }
            WorkerEvent::Generating { .. } => {}
            WorkerEvent::Chunk {
                id,
                index,
                frames,
                seconds,
                ..
            } => {
                status.chunks += 1;
                if let Some(entity) = entity_of(&id)
                    && let Ok((mut playback, mut stream)) = screens.get_mut(entity)
                    && playback.started
                {
                    let n = frames.len();
                    playback.grant_outstanding = false;
                    playback.ring.push(frames);
                    stream.chunks += 1;
                    stream.last_chunk_seconds = seconds;
                    stream.buffered = playback.ring.len();
                    ready.write(ChunkReady {
                        entity,
                        index,
                        frames: n,
                        seconds,
                    });
                }
            }
            WorkerEvent::PromptApplied { id, prompt } => {
                if let Some(entity) = entity_of(&id)
                    && let Ok((_, mut stream)) = screens.get_mut(entity)
                {
                    stream.applied_prompt = Some(prompt.clone());
                    applied.write(PromptApplied { entity, prompt });
                }
            }
            WorkerEvent::Stopped { id } => {
                if let Some(entity) = worker.streams.remove(&id) {
                    if let Ok((mut playback, mut stream)) = screens.get_mut(entity) {
                        playback.started = false;
                        playback.grant_outstanding = false;
                        if !matches!(stream.status, HeliosStreamStatus::Failed(_)) {
                            stream.status = HeliosStreamStatus::Stopped;
                        }
                    }
                    stopped.write(StreamStopped(entity));
                }
            }
            WorkerEvent::Error { id, error } => {
                status.errors += 1;
                let message = error.to_string();
                warn!("bevy_helios: {message}");
                match id.and_then(|id| entity_of(&id)) {
                    Some(entity) => {
                        if let Ok((mut playback, mut stream)) = screens.get_mut(entity) {
                            playback.want_running = Some(false);
                            stream.status = HeliosStreamStatus::Failed(message);
                        }
                        errors.write(HeliosWorkerError {
                            entity: Some(entity),
                            error,
                        });
                    }
                    None => {
                        status.state = HeliosWorkerState::Failed(message.clone());
                        for (mut playback, mut stream) in &mut screens {
                            if playback.started || playback.want_running != Some(false) {
                                playback.started = false;
                                playback.want_running = Some(false);
                                stream.status = HeliosStreamStatus::Failed(message.clone());
                            }
                        }
                        worker.streams.clear();
                        errors.write(HeliosWorkerError {
                            entity: None,
                            error,
                        });
                    }
                }
            }
        }
    }
    // A thread that ended without saying why (all its events are read by now).
    let gone = drained && worker.worker.as_ref().is_some_and(|w| !w.is_alive());
    if gone
        && !matches!(
            status.state,
            HeliosWorkerState::Failed(_) | HeliosWorkerState::ShutDown
        )
    {
        status.state = HeliosWorkerState::Failed(HeliosError::WorkerGone.to_string());
        status.errors += 1;
        errors.write(HeliosWorkerError {
            entity: None,
            error: HeliosError::WorkerGone,
        });
    }
}

/// Advances each screen's playback and shows the current frame (CPU write or GPU copy), within
/// the settings' per-tick upload budget (nearest screens first).
pub fn upload_frames(
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
        let (w, h) = (settings.width, settings.height);
        if frame.pixels.len() != (w * h * 4) as usize {
            continue;
        }
        if use_gpu && let Some(gpu) = gpu.as_deref_mut() {
            gpu.push(screen.image.id(), w, h, frame.pixels);
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
pub fn shutdown_on_exit(
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
