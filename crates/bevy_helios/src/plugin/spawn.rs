//! The first systems of [`HeliosSystems::Submit`](super::HeliosSystems::Submit): the screens'
//! start / stop requests, then (re)spawning the worker when a screen needs one.

use bevy::prelude::*;
use helios_serve::client::{RemoteConfig, RemoteWorker};
use helios_worker::{EngineConfig, Worker, WorkerCommand};

use super::link::WorkerLink;

use super::state::{HeliosWorker, HeliosWorkerState, HeliosWorkerStatus};
use crate::gpu::SharedWgpuDevice;
use crate::messages::{HeliosWorkerError, StartStream, StopStream};
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream, HeliosStreamStatus, StreamState};
use crate::settings::{GpuSharing, HeliosBackend, HeliosSettings, UploadPath};

/// Applies [`StopStream`] and [`StartStream`]: a stop cancels and drops the running stream; a
/// start (or restart) marks the stream to be started as soon as a worker runs.
pub(super) fn read_stream_requests(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut starts: MessageReader<StartStream>,
    mut stops: MessageReader<StopStream>,
    mut screens: Query<(&mut HeliosPlayback, &mut HeliosStream)>,
) {
    let capacity = settings.command_queue;
    for StopStream(entity) in stops.read() {
        let Ok((mut playback, mut stream)) = screens.get_mut(*entity) else {
            continue;
        };
        if let Some(id) = playback.state.running_id() {
            if let Some(w) = &worker.worker {
                w.cancel_if_generating(id);
            }
            worker.send(WorkerCommand::Stop { id }, capacity);
        }
        playback.state = StreamState::Halted;
        stream.status = HeliosStreamStatus::Stopped;
    }
    for StartStream(entity) in starts.read() {
        worker.start_requested = true;
        let Ok((mut playback, mut stream)) = screens.get_mut(*entity) else {
            continue;
        };
        if let Some(id) = playback.state.running_id() {
            // Restart: drop the old stream first.
            worker.send(WorkerCommand::Stop { id }, capacity);
        }
        playback.reset(StreamState::StartWanted);
        playback.ring.reset_counts();
        stream.restart();
    }
}

/// What the worker is spawned with.
fn engine_config(settings: &HeliosSettings, shared: Option<&SharedWgpuDevice>) -> EngineConfig {
    let shared_wgpu = match (settings.backend, settings.gpu_sharing, shared) {
        (HeliosBackend::Wgpu, GpuSharing::SharedDevice, Some(shared)) => shared.device(),
        _ => None,
    };
    EngineConfig {
        model_dir: settings.model_dir.clone(),
        backend: settings.backend.into(),
        precision: settings.precision.into(),
        quantization: settings.quantization,
        offload_blocks: settings.offload_blocks,
        gpu_frames: settings.upload == UploadPath::GpuResident && shared_wgpu.is_some(),
        shared_wgpu,
    }
}

/// Whether a new worker is needed now: some screen wants to run and there is no worker, its
/// settings are stale, or it failed / died and a [`StartStream`] asks to retry.
fn needs_spawn(
    worker: &HeliosWorker,
    status: &HeliosWorkerStatus,
    settings: &HeliosSettings,
    screens: &Query<(&HeliosScreen, &mut HeliosPlayback, &mut HeliosStream)>,
) -> bool {
    let wants_any = screens
        .iter()
        .any(|(screen, playback, _)| playback.wants_running(screen.autostart));
    let stale = worker
        .settings
        .as_ref()
        .is_some_and(|old| old.engine_differs(settings));
    let dead = worker.worker.is_some() && !worker.is_running();
    let failed = matches!(status.state, HeliosWorkerState::Failed(_));
    wants_any && (worker.worker.is_none() || stale || (dead || failed) && worker.start_requested)
}

/// (Re)spawns the worker when a screen needs one (not while the settings are invalid, nor while
/// a shared GPU device is still being made); running streams are started again on the new one.
pub(super) fn spawn_worker(
    settings: Res<HeliosSettings>,
    mut worker: ResMut<HeliosWorker>,
    mut status: ResMut<HeliosWorkerStatus>,
    shared: Option<Res<SharedWgpuDevice>>,
    mut screens: Query<(&HeliosScreen, &mut HeliosPlayback, &mut HeliosStream)>,
    mut errors: MessageWriter<HeliosWorkerError>,
) {
    let spawn =
        worker.invalid_settings.is_none() && needs_spawn(&worker, &status, &settings, &screens);
    worker.start_requested = false;
    let shares_device =
        settings.backend == HeliosBackend::Wgpu && settings.gpu_sharing == GpuSharing::SharedDevice;
    let waiting_for_gpu = shares_device
        && crate::gpu::renders(shared.as_deref())
        && shared.as_deref().is_none_or(|s| !s.ready());
    if !spawn || waiting_for_gpu {
        return;
    }
    worker.shutdown();
    let config = engine_config(&settings, shared.as_deref());
    if shares_device && config.shared_wgpu.is_none() {
        warn!("bevy_helios: no render device to share; the wgpu backend creates its own device");
    }
    let (commands, events) = (settings.command_queue, settings.result_queue);
    let spawned = match &settings.remote {
        Some(remote) => {
            let mut config = RemoteConfig::new(remote.url.clone());
            config.token = remote.token.clone();
            RemoteWorker::connect(config, commands, events).map(WorkerLink::Remote)
        }
        None => Worker::spawn(config, commands, events).map(WorkerLink::Local),
    };
    match spawned {
        Ok(w) => {
            worker.worker = Some(w);
            status.state = HeliosWorkerState::Loading;
            status.spawns += 1;
        }
        Err(error) => {
            warn!("bevy_helios: {error}");
            status.state = HeliosWorkerState::Failed(error.to_string());
            status.errors += 1;
            errors.write(HeliosWorkerError {
                entity: None,
                error: error.into(),
            });
        }
    }
    worker.settings = Some(settings.clone());
    worker.streams.clear();
    for (_, mut playback, mut stream) in &mut screens {
        if matches!(playback.state, StreamState::Running { .. }) {
            playback.reset(StreamState::StartWanted);
            stream.status = HeliosStreamStatus::Idle;
        }
    }
}
