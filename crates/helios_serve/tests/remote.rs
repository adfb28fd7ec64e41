//! [`RemoteWorker`] against a real `helios serve` on loopback: the same commands and events as a
//! local worker, paced by grants, and a reconnection that resumes the stream when the server
//! comes back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use helios_model::pipeline::{GenerationParams, StreamRequest};
use helios_serve::client::{Connection, RemoteConfig, RemoteWorker};
use helios_serve::{ServeConfig, Server, ServerHandle};
use helios_worker::{EngineBackend, EngineConfig, WorkerCommand, WorkerEvent};

const PATIENCE: Duration = Duration::from_secs(240);

fn config(addr: std::net::SocketAddr) -> ServeConfig {
    let engine = EngineConfig {
        // The random-weights tiny checkpoint: these tests are about the machinery, and it is fast.
        model_dir: Some(std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../helios_model/embedded/tiny-helios"
        ))),
        backend: EngineBackend::NdArray,
        ..EngineConfig::default()
    };
    ServeConfig::new(addr, engine).with_token("t0ken")
}

/// Runs a server on its own runtime thread; returns its address and handle.
fn serve(
    addr: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    ServerHandle,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let server = Server::bind(config(addr)).await.unwrap();
            tx.send((server.local_addr(), server.handle())).unwrap();
            server.run().await.unwrap();
        });
    });
    let (addr, handle) = rx.recv().unwrap();
    (addr, handle, thread)
}

fn request() -> Box<StreamRequest> {
    let params = GenerationParams {
        width: Some(64),
        height: Some(64),
        steps: Some(vec![1, 1, 1]),
        seed: 5,
        max_sequence_length: Some(32),
        ..GenerationParams::default()
    };
    Box::new(StreamRequest::with_params(
        "a lighthouse keeper, calm expression",
        params,
    ))
}

/// The next event that `keep` accepts (others are skipped), within the watchdog.
fn wait_event(
    worker: &RemoteWorker,
    what: &str,
    keep: impl Fn(&WorkerEvent) -> bool,
) -> WorkerEvent {
    let start = Instant::now();
    loop {
        let left = PATIENCE.saturating_sub(start.elapsed());
        match worker.events().recv_timeout(left) {
            Ok(WorkerEvent::Error { error, .. }) => {
                panic!("error while waiting for {what}: {error}")
            }
            Ok(event) if keep(&event) => return event,
            Ok(_) => {}
            Err(e) => panic!("no {what}: {e}"),
        }
    }
}

fn wait_connection(worker: &RemoteWorker, want: Connection) {
    let start = Instant::now();
    while worker.connection() != want {
        assert!(
            start.elapsed() < PATIENCE,
            "still {:?}, not {want:?}",
            worker.connection()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_remote_worker_streams_by_grants_and_resumes_after_the_server_comes_back() {
    let (addr, handle, thread) = serve("127.0.0.1:0".parse().unwrap());
    let mut remote = RemoteConfig::new(format!("ws://{addr}"));
    remote.token = Some("t0ken".into());
    remote.retry_min = Duration::from_millis(100);
    remote.retry_max = Duration::from_millis(400);
    let worker = RemoteWorker::connect(remote, 64, 8).unwrap();

    assert!(matches!(
        wait_event(&worker, "loaded", |e| matches!(e, WorkerEvent::Loaded)),
        WorkerEvent::Loaded
    ));
    assert_eq!(worker.connection(), Connection::Connected);
    worker
        .try_send(WorkerCommand::Start {
            id: 77,
            request: request(),
            quality: None,
        })
        .unwrap();
    worker
        .try_send(WorkerCommand::Grant { id: 77, chunks: 1 })
        .unwrap();
    let chunk = wait_event(&worker, "a chunk", |e| {
        matches!(e, WorkerEvent::Chunk { .. })
    });
    let WorkerEvent::Chunk {
        id, index, frames, ..
    } = chunk
    else {
        unreachable!()
    };
    assert_eq!((id, index), (77, 0));
    assert!(frames.len() > 1);
    assert_eq!((frames[0].width, frames[0].height), (64, 64));
    assert_eq!(frames[0].pixels.len(), 64 * 64 * 4);

    // The server goes away: the worker says so and keeps trying.
    handle.shutdown();
    thread.join().unwrap();
    wait_connection(&worker, Connection::Retrying);
    // A prompt change while disconnected is remembered...
    worker
        .try_send(WorkerCommand::SetPrompt {
            id: 77,
            prompt: "a lighthouse keeper, laughing".into(),
            over_chunks: 1,
        })
        .unwrap();
    worker
        .try_send(WorkerCommand::Grant { id: 77, chunks: 1 })
        .unwrap();
    // ... and the stream resumes on the new server, with its grant.
    let (_, handle, thread) = serve(addr);
    wait_connection(&worker, Connection::Connected);
    let chunk = wait_event(&worker, "a chunk after reconnecting", |e| {
        matches!(e, WorkerEvent::Chunk { .. })
    });
    assert!(matches!(chunk, WorkerEvent::Chunk { id: 77, .. }));
    drop(worker);
    handle.shutdown();
    thread.join().unwrap();
}

#[test]
fn a_wrong_token_is_a_final_error() {
    let (addr, handle, thread) = serve("127.0.0.1:0".parse().unwrap());
    let mut remote = RemoteConfig::new(format!("ws://{addr}"));
    remote.token = Some("guess".into());
    let worker = RemoteWorker::connect(remote, 8, 8).unwrap();
    match worker.events().recv_timeout(PATIENCE).unwrap() {
        WorkerEvent::Error { id: None, error } => {
            assert!(error.to_string().contains("refused"), "{error}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(worker.connection(), Connection::Closed);
    drop(worker);
    handle.shutdown();
    thread.join().unwrap();
}

/// `PushVideo` through a remote worker reaches the server's model: of two streams with the same
/// seed, the one fed frames (of two sizes: the client sends them at the first one's) makes a
/// different next chunk.
#[test]
fn video_frames_sent_through_a_remote_worker_condition_the_stream() {
    let (addr, handle, thread) = serve("127.0.0.1:0".parse().unwrap());
    let mut remote = RemoteConfig::new(format!("ws://{addr}"));
    remote.token = Some("t0ken".into());
    let worker = RemoteWorker::connect(remote, 64, 8).unwrap();
    wait_event(&worker, "loaded", |e| matches!(e, WorkerEvent::Loaded));
    for id in [1, 2] {
        let start = WorkerCommand::Start {
            id,
            request: request(),
            quality: None,
        };
        worker.try_send(start).unwrap();
    }
    let next_chunks = |worker: &RemoteWorker| {
        for id in [1, 2] {
            worker
                .try_send(WorkerCommand::Grant { id, chunks: 1 })
                .unwrap();
        }
        let mut got = [None, None];
        while got.iter().any(Option::is_none) {
            if let WorkerEvent::Chunk { id, frames, .. } = wait_event(worker, "a chunk", |e| {
                matches!(e, WorkerEvent::Chunk { .. })
            }) {
                got[(id - 1) as usize] = Some(frames[0].pixels.clone());
            }
        }
        got.map(Option::unwrap)
    };
    let [a0, b0] = next_chunks(&worker);
    assert_eq!(a0, b0, "same seed, same first chunk");
    let mut frames = vec![image::RgbImage::from_pixel(48, 48, image::Rgb([220, 30, 30])); 8];
    frames.push(image::RgbImage::from_pixel(
        32,
        32,
        image::Rgb([30, 30, 220]),
    ));
    worker
        .try_send(WorkerCommand::PushVideo { id: 1, frames })
        .unwrap();
    let [a1, b1] = next_chunks(&worker);
    assert_ne!(a1, b1, "the frames reach the server's model");
    drop(worker);
    handle.shutdown();
    thread.join().unwrap();
}
