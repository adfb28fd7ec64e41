//! The worker on the real (random-weights) tiny checkpoint, and its scheduling.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::thread::{Slot, pick_next};
use super::*;
use helios_model::pipeline::GenerationParams;

use crate::error::WorkerError;
use crate::frame::Frame;
use crate::options::EngineBackend;

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

/// Frame side of the tiny-model streams here.
const SIDE: usize = 128;

/// A stream on the tiny checkpoint at frame width `width` (height [`SIDE`]): one step per
/// pyramid stage, 32 prompt tokens.
fn request(width: usize) -> Box<StreamRequest> {
    let params = GenerationParams {
        width: Some(width),
        height: Some(SIDE),
        steps: Some(vec![1, 1, 1]),
        seed: 7,
        max_sequence_length: Some(32),
        ..GenerationParams::default()
    };
    Box::new(StreamRequest::with_params(
        "a lighthouse keeper, calm expression",
        params,
    ))
}

fn tiny() -> EngineConfig {
    EngineConfig {
        // The random-weights tiny checkpoint: these tests are about the machinery, and it is fast.
        model_dir: Some(std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../helios_model/embedded/tiny-helios"
        ))),
        backend: EngineBackend::NdArray,
        ..EngineConfig::default()
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
        quality: None,
    })
    .unwrap();
    match next_event(&w) {
        WorkerEvent::Error {
            id: Some(1),
            error: WorkerError::Model(e),
        } => {
            assert!(matches!(*e, helios_model::Error::InvalidRequest(_)), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let (width, height) = (SIDE, SIDE);
    w.try_send(WorkerCommand::Start {
        id: 2,
        request: request(width),
        quality: None,
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
            assert_eq!(
                (frames[0].width as usize, frames[0].height as usize),
                (width, height),
                "frames carry their size"
            );
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
            error: WorkerError::UnknownStream(9)
        }
    ));
    assert!(w.is_alive());
    assert!(w.shutdown(), "joined cleanly");
    assert!(!w.is_alive());
}

/// Video frames pushed into a running stream reach the model (the next chunk differs from the
/// same stream's without them); frames the model cannot take are an error event about that
/// stream, and the worker goes on.
#[test]
fn pushed_video_frames_condition_the_next_chunk() {
    let second_chunk = |frames: Option<Vec<image::RgbImage>>| {
        let mut w = Worker::spawn(tiny(), 8, 4).unwrap();
        assert!(matches!(next_event(&w), WorkerEvent::Loaded));
        let start = WorkerCommand::Start {
            id: 1,
            request: request(SIDE),
            quality: None,
        };
        w.try_send(start).unwrap();
        w.try_send(WorkerCommand::Grant { id: 1, chunks: 1 })
            .unwrap();
        let mut chunks = Vec::new();
        let mut errors = Vec::new();
        while chunks.len() < 2 {
            match next_event(&w) {
                WorkerEvent::Chunk { frames: f, .. } => {
                    chunks.push(f);
                    if chunks.len() == 1 {
                        if let Some(frames) = &frames {
                            let bad = vec![image::RgbImage::new(0, 0)];
                            w.try_send(WorkerCommand::PushVideo { id: 1, frames: bad })
                                .unwrap();
                            let good = frames.clone();
                            w.try_send(WorkerCommand::PushVideo {
                                id: 1,
                                frames: good,
                            })
                            .unwrap();
                        }
                        w.try_send(WorkerCommand::Grant { id: 1, chunks: 1 })
                            .unwrap();
                    }
                }
                WorkerEvent::Error { id, error } => errors.push((id, error)),
                _ => {}
            }
        }
        assert!(w.shutdown());
        (chunks.pop().unwrap(), errors)
    };
    let (plain, no_errors) = second_chunk(None);
    assert!(no_errors.is_empty(), "{no_errors:?}");
    let red = vec![image::RgbImage::from_pixel(64, 64, image::Rgb([230, 30, 30])); 9];
    let (conditioned, errors) = second_chunk(Some(red));
    assert_ne!(
        plain[0].pixels, conditioned[0].pixels,
        "the frames reach the model"
    );
    match errors.as_slice() {
        [(Some(1), WorkerError::Model(e))] => {
            assert!(matches!(**e, helios_model::Error::InvalidRequest(_)), "{e}");
        }
        other => panic!("one error about the empty frame expected: {other:?}"),
    }
}

#[test]
fn a_panic_while_loading_is_an_error_event() {
    let mut w = Worker::spawn_with(|| panic!("loader exploded"), 4, 4).unwrap();
    match next_event(&w) {
        WorkerEvent::Error {
            id: None,
            error: WorkerError::WorkerPanicked(m),
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
        ..tiny()
    };
    let mut w = Worker::spawn(cfg, 4, 4).unwrap();
    assert!(matches!(
        next_event(&w),
        WorkerEvent::Error {
            id: None,
            error: WorkerError::Model(_)
        }
    ));
    assert!(w.shutdown());
}

/// An engine whose chunks take `ms_per_cost` milliseconds per unit of
/// [`quality::relative_cost`] of their steps at 128x128 (and in proportion to the pixels at other
/// sizes): a GPU too slow for the stream's full quality.
struct SlowEngine {
    ms_per_cost: f32,
    streams: HashMap<StreamId, SlowStream>,
}

/// A [`SlowEngine`] stream.
struct SlowStream {
    steps: Vec<usize>,
    size: (usize, usize),
    index: usize,
}

impl SlowEngine {
    fn slot(&mut self, id: StreamId) -> WorkerResult<&mut SlowStream> {
        self.streams
            .get_mut(&id)
            .ok_or(WorkerError::UnknownStream(id))
    }
}

impl ChunkEngine for SlowEngine {
    fn start(&mut self, id: StreamId, request: StreamRequest) -> WorkerResult<()> {
        let (height, width) = request.params.size();
        let stream = SlowStream {
            steps: vec![2, 2, 2],
            size: (width, height),
            index: 0,
        };
        self.streams.insert(id, stream);
        Ok(())
    }

    fn next_chunk(
        &mut self,
        id: StreamId,
        _cancel: &std::sync::atomic::AtomicBool,
    ) -> WorkerResult<engine::EngineChunk> {
        let ms_per_cost = self.ms_per_cost;
        let s = self.slot(id)?;
        let pixels = (s.size.0 * s.size.1) as f32 / (128.0 * 128.0);
        let ms = ms_per_cost * quality::relative_cost(&s.steps) * pixels;
        std::thread::sleep(Duration::from_secs_f32(ms / 1000.0));
        s.index += 1;
        Ok(engine::EngineChunk {
            index: s.index - 1,
            frames: vec![Frame::from_rgba(vec![0; 4 * 4 * 4], 4, 4); 33],
        })
    }

    fn set_prompt(&mut self, _id: StreamId, _prompt: &str, _over: usize) -> WorkerResult<()> {
        Ok(())
    }

    fn steps(&self, id: StreamId) -> WorkerResult<Vec<usize>> {
        self.streams
            .get(&id)
            .map(|s| s.steps.clone())
            .ok_or(WorkerError::UnknownStream(id))
    }

    fn set_steps(&mut self, id: StreamId, steps: Vec<usize>) -> WorkerResult<()> {
        self.slot(id)?.steps = steps;
        Ok(())
    }

    fn size(&self, id: StreamId) -> WorkerResult<(usize, usize)> {
        self.streams
            .get(&id)
            .map(|s| s.size)
            .ok_or(WorkerError::UnknownStream(id))
    }

    fn set_size(&mut self, id: StreamId, width: usize, height: usize) -> WorkerResult<()> {
        self.slot(id)?.size = (width, height);
        Ok(())
    }

    fn size_multiple(&self) -> usize {
        64
    }

    fn set_image(&mut self, _id: StreamId, _image: image::RgbImage) -> WorkerResult<()> {
        Ok(())
    }

    fn push_video(&mut self, _id: StreamId, _frames: &[image::RgbImage]) -> WorkerResult<()> {
        Ok(())
    }

    fn stop(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }
}

/// Chunks of 33 frames played at 330 fps have 0.1 s each; the engine needs ~0.1 s for the full
/// [2, 2, 2] steps and about half for [2, 1, 1]. With adaptive quality the worker lowers the
/// steps after the first slow chunk and reports the steps of each chunk; without, it does not.
#[test]
fn adaptive_quality_lowers_the_steps_of_a_slow_stream() {
    let run = |quality: Option<QualityPolicy>| {
        let w = Worker::spawn_with(
            || {
                Ok(Box::new(SlowEngine {
                    ms_per_cost: 40.0,
                    streams: HashMap::new(),
                }) as Box<dyn ChunkEngine>)
            },
            8,
            8,
        )
        .unwrap();
        assert!(matches!(next_event(&w), WorkerEvent::Loaded));
        w.try_send(WorkerCommand::Start {
            id: 1,
            request: request(128),
            quality,
        })
        .unwrap();
        w.try_send(WorkerCommand::Grant { id: 1, chunks: 4 })
            .unwrap();
        let mut steps = Vec::new();
        while steps.len() < 4 {
            if let WorkerEvent::Chunk { steps: s, .. } = next_event(&w) {
                steps.push(s);
            }
        }
        steps
    };
    let adaptive = run(Some(QualityPolicy::at_fps(330.0)));
    assert_eq!(
        adaptive[0].as_deref(),
        Some(&[2, 2, 2][..]),
        "starts at full"
    );
    for later in &adaptive[1..] {
        let later = later.as_deref().unwrap();
        assert!(
            quality::relative_cost(later) < quality::relative_cost(&[2, 2, 2]),
            "fewer steps after a slow chunk: {adaptive:?}"
        );
    }
    assert_eq!(
        run(None),
        vec![None; 4],
        "no adaptive quality, no steps reported"
    );
}

/// A host that may block (a server thread) sends with a time limit and waits on the event
/// channel itself; with a one-command queue the second send waits for the worker to take the
/// first. After shutdown a send is refused, not lost.
#[test]
fn blocking_sends_and_the_event_channel() {
    let mut w = Worker::spawn_with(
        || {
            Ok(Box::new(SlowEngine {
                ms_per_cost: 0.0,
                streams: HashMap::new(),
            }) as Box<dyn ChunkEngine>)
        },
        1,
        1,
    )
    .unwrap();
    let limit = Duration::from_secs(600);
    assert!(matches!(
        w.events().recv_timeout(limit),
        Ok(WorkerEvent::Loaded)
    ));
    let start = WorkerCommand::Start {
        id: 3,
        request: request(SIDE),
        quality: None,
    };
    w.send_timeout(start, limit).unwrap();
    w.send_timeout(WorkerCommand::Grant { id: 3, chunks: 1 }, limit)
        .unwrap();
    assert!(matches!(
        w.events().recv_timeout(limit),
        Ok(WorkerEvent::Started { id: 3 })
    ));
    match w.events().recv_timeout(limit) {
        Ok(WorkerEvent::Chunk { id: 3, frames, .. }) => {
            assert_eq!((frames[0].width, frames[0].height), (4, 4));
        }
        other => panic!("{other:?}"),
    }
    assert!(w.shutdown());
    assert!(matches!(
        w.send_timeout(WorkerCommand::Stop { id: 3 }, limit),
        Err(crossbeam_channel::SendTimeoutError::Disconnected(
            WorkerCommand::Stop { id: 3 }
        ))
    ));
}

/// A GPU too slow for even one step per stage at the stream's size: the worker lowers the steps
/// and then the size the model generates at (within the model's multiple), and reports both with
/// each chunk.
#[test]
fn adaptive_quality_lowers_the_size_when_the_steps_are_not_enough() {
    let w = Worker::spawn_with(
        || {
            Ok(Box::new(SlowEngine {
                ms_per_cost: 120.0,
                streams: HashMap::new(),
            }) as Box<dyn ChunkEngine>)
        },
        8,
        8,
    )
    .unwrap();
    assert!(matches!(next_event(&w), WorkerEvent::Loaded));
    w.try_send(WorkerCommand::Start {
        id: 1,
        request: request(128),
        quality: Some(QualityPolicy::at_fps(330.0)),
    })
    .unwrap();
    w.try_send(WorkerCommand::Grant { id: 1, chunks: 3 })
        .unwrap();
    let mut levels = Vec::new();
    while levels.len() < 3 {
        if let WorkerEvent::Chunk { steps, size, .. } = next_event(&w) {
            levels.push((steps, size));
        }
    }
    assert_eq!(
        levels[0],
        (Some(vec![2, 2, 2]), Some((128, 128))),
        "starts at full"
    );
    for later in &levels[1..] {
        assert_eq!(
            later,
            &(Some(vec![1, 1, 1]), Some((64, 64))),
            "one step per stage at the smaller size: {levels:?}"
        );
    }
}
