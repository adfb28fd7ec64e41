//! The worker on the real embedded tiny model, and its scheduling.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::thread::{Slot, pick_next};
use super::*;
use crate::error::HeliosError;

fn slot(priority: Option<f32>, credits: u32, last_served: u64) -> Slot {
    Slot {
        priority,
        credits,
        last_served,
    }
}

#[test]
fn priority_nearest_first_then_round_robin_paused_skipped() {
    let mut s = HashMap::new();
    s.insert(1, slot(Some(5.0), 1, 0));
    s.insert(2, slot(Some(2.0), 1, 0));
    s.insert(3, slot(None, 3, 0));
    s.insert(4, slot(Some(1.0), 0, 0));
    assert_eq!(
        pick_next(&s),
        Some(2),
        "nearest with a grant; paused and grant-less skipped"
    );
    s.insert(1, slot(Some(2.0), 1, 0));
    s.insert(2, slot(Some(2.0), 1, 7));
    assert_eq!(pick_next(&s), Some(1), "tie: least recently served");
    s.clear();
    s.insert(3, slot(None, 3, 0));
    assert_eq!(pick_next(&s), None);
}

/// A stream on the embedded tiny model (the settings' defaults) at frame width `width`.
fn request(width: usize) -> Box<StreamRequest> {
    let mut params = crate::settings::HeliosSettings::default().generation;
    params.width = Some(width);
    params.seed = 7;
    Box::new(StreamRequest::with_params(
        "a lighthouse keeper, calm expression",
        params,
    ))
}

fn tiny() -> EngineConfig {
    EngineConfig {
        model_dir: None,
        backend: crate::settings::HeliosBackend::NdArray,
        shared_wgpu: None,
        gpu_frames: false,
        precision: Default::default(),
    }
}

/// Waits for the next event (a watchdog, not a timing check: the tiny model on a slow CI
/// machine takes seconds per chunk, the deadline is minutes).
fn next_event(w: &Worker) -> WorkerEvent {
    let t = Instant::now();
    loop {
        if let Ok(e) = w.try_recv() {
            return e;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "no event");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn real_model_streams_a_bad_request_drops_one_stream_and_another_runs() {
    let mut w = Worker::spawn(tiny(), 8, 2).unwrap();
    assert!(matches!(next_event(&w), WorkerEvent::Loaded));
    // 100 is not a multiple of the tiny model's 64: the stream fails, the worker goes on.
    w.try_send(WorkerCommand::Start {
        id: 1,
        request: request(100),
    })
    .unwrap();
    match next_event(&w) {
        WorkerEvent::Error {
            id: Some(1),
            error: HeliosError::Model(e),
        } => {
            assert!(matches!(*e, helios_model::Error::InvalidRequest(_)), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let (width, height) = crate::settings::HeliosSettings::default().frame_size();
    let (width, height) = (width as usize, height as usize);
    w.try_send(WorkerCommand::Start {
        id: 2,
        request: request(width),
    })
    .unwrap();
    w.try_send(WorkerCommand::Grant { id: 2, chunks: 2 })
        .unwrap();
    assert!(matches!(next_event(&w), WorkerEvent::Started { id: 2 }));
    let mut chunks = Vec::new();
    while chunks.len() < 2 {
        if let WorkerEvent::Chunk {
            id: 2,
            index,
            frames,
            ..
        } = next_event(&w)
        {
            assert_eq!(frames[0].pixels.len(), width * height * 4, "RGBA8 frames");
            assert_eq!(frames.len(), 33, "Helios makes 33 frames per chunk");
            chunks.push((index, frames));
        }
    }
    assert_eq!((chunks[0].0, chunks[1].0), (0, 1));
    assert_ne!(
        chunks[0].1[0].pixels, chunks[0].1[32].pixels,
        "frames move within a chunk"
    );
    assert_ne!(
        chunks[0].1[0].pixels, chunks[1].1[0].pixels,
        "chunks differ"
    );
    // An unknown stream is an error event, not a panic.
    w.try_send(WorkerCommand::SetPrompt {
        id: 9,
        prompt: "x".into(),
        over_chunks: 0,
    })
    .unwrap();
    assert!(matches!(
        next_event(&w),
        WorkerEvent::Error {
            id: Some(9),
            error: HeliosError::UnknownStream(9)
        }
    ));
    assert!(w.is_alive());
    assert!(w.shutdown(), "joined cleanly");
    assert!(!w.is_alive());
}

#[test]
fn a_panic_while_loading_is_an_error_event() {
    let mut w = Worker::spawn_with(|| panic!("loader exploded"), 4, 4).unwrap();
    match next_event(&w) {
        WorkerEvent::Error {
            id: None,
            error: HeliosError::WorkerPanicked(m),
        } => {
            assert!(m.contains("loader exploded"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(w.shutdown());
}

#[test]
fn load_error_is_reported_and_thread_ends() {
    let cfg = EngineConfig {
        model_dir: Some("/nonexistent/helios".into()),
        backend: crate::settings::HeliosBackend::NdArray,
        shared_wgpu: None,
        gpu_frames: false,
        precision: Default::default(),
    };
    let mut w = Worker::spawn(cfg, 4, 4).unwrap();
    assert!(matches!(
        next_event(&w),
        WorkerEvent::Error {
            id: None,
            error: HeliosError::Model(_)
        }
    ));
    assert!(w.shutdown());
}
