//! [`HeliosSystems::Submit`](super::HeliosSystems::Submit): (re)spawns the worker and sends it what the screens need.

use bevy::prelude::*;

use super::state::{HeliosWorker, HeliosWorkerState, HeliosWorkerStatus};
use crate::messages::{HeliosWorkerError, SetConditioningImage, StartStream, StopStream};
use crate::screen::{HeliosPlayback, HeliosScreen, HeliosStream, HeliosStreamStatus};
use crate::settings::{GpuSharing, HeliosBackend, HeliosSettings, UploadPath};
use crate::worker::{EngineConfig, StreamSpec, Worker, WorkerCommand};

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
        precision: settings.precision,
        gpu_frames: settings.upload == UploadPath::GpuResident && shared_wgpu.is_some(),
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
