//! `helios serve` on loopback, driven by real WebSocket clients, on the embedded demo model
//! (NdArray). Every wait has a watchdog; none measures speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use helios_model::pipeline::GenerationParams;
use helios_serve::protocol::{decode_binary, encode_binary};
use helios_serve::{
    ClientBinary, ClientMessage, ErrorCode, FrameFormat, FrameHeader, PROTOCOL_VERSION,
    ServeConfig, Server, ServerHandle, ServerMessage, ServerStats,
};
use helios_worker::{EngineBackend, EngineConfig};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A watchdog for anything the tiny model does on a slow 2-core machine.
const PATIENCE: Duration = Duration::from_secs(240);
/// Frame side of the streams here.
const SIDE: usize = 64;

fn config() -> ServeConfig {
    let engine = EngineConfig {
        // The random-weights tiny checkpoint: these tests are about the machinery, and it is fast.
        model_dir: Some(std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../helios_model/embedded/tiny-helios"
        ))),
        backend: EngineBackend::NdArray,
        ..EngineConfig::default()
    };
    ServeConfig::new("127.0.0.1:0".parse().unwrap(), engine)
}

async fn start(config: ServeConfig) -> (SocketAddr, ServerHandle, tokio::task::JoinHandle<()>) {
    let server = Server::bind(config).await.unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let task = tokio::spawn(async move { server.run().await.unwrap() });
    (addr, handle, task)
}

fn params(seed: u64) -> GenerationParams {
    GenerationParams {
        width: Some(SIDE),
        height: Some(SIDE),
        steps: Some(vec![1, 1, 1]),
        seed,
        max_sequence_length: Some(32),
        ..GenerationParams::default()
    }
}

fn start_message(
    stream: u32,
    seed: u64,
    format: FrameFormat,
    chunks: Option<u32>,
) -> ClientMessage {
    ClientMessage::Start {
        stream,
        prompt: "a lighthouse keeper, calm expression".into(),
        params: params(seed),
        format,
        priority: 0.0,
        chunks,
        paced: false,
    }
}

async fn send(client: &mut Client, message: &ClientMessage) {
    let text = serde_json::to_string(message).unwrap();
    client.send(Message::text(text)).await.unwrap();
}

async fn hello_on(mut client: Client, token: Option<&str>) -> (Client, ServerMessage) {
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        token: token.map(str::to_string),
    };
    send(&mut client, &hello).await;
    let reply = next_text(&mut client).await;
    (client, reply)
}

async fn connect(addr: SocketAddr, token: Option<&str>) -> (Client, ServerMessage) {
    let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
        .await
        .unwrap();
    hello_on(client, token).await
}

async fn session(addr: SocketAddr) -> Client {
    let (client, welcome) = connect(addr, None).await;
    assert!(
        matches!(
            welcome,
            ServerMessage::Welcome {
                version: PROTOCOL_VERSION,
                ..
            }
        ),
        "{welcome:?}"
    );
    client
}

/// Something that arrived on a client.
#[derive(Debug)]
enum Got {
    Text(ServerMessage),
    Frame(FrameHeader, Vec<u8>),
    Closed,
}

async fn next(client: &mut Client) -> Got {
    loop {
        let message = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("the server went quiet");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Got::Text(serde_json::from_str(&text).unwrap());
            }
            Some(Ok(Message::Binary(bytes))) => {
                let (header, payload) = decode_binary::<FrameHeader>(&bytes).unwrap();
                return Got::Frame(header, payload.to_vec());
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Got::Closed,
            Some(Ok(_)) => {}
        }
    }
}

async fn next_text(client: &mut Client) -> ServerMessage {
    match next(client).await {
        Got::Text(message) => message,
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The frames of one chunk of `stream`, and its `chunk` message; other streams' messages are
/// skipped, notices (started, prompt_applied) are returned in `notices`.
struct Chunk {
    frames: Vec<(FrameHeader, Vec<u8>)>,
    done: ServerMessage,
}

async fn read_chunk(client: &mut Client, stream: u32, notices: &mut Vec<ServerMessage>) -> Chunk {
    let mut frames = Vec::new();
    loop {
        match next(client).await {
            Got::Frame(header, payload) if header.stream == stream => {
                frames.push((header, payload))
            }
            Got::Frame(..) => {}
            Got::Text(done @ ServerMessage::Chunk { stream: s, .. }) if s == stream => {
                return Chunk { frames, done };
            }
            Got::Text(ServerMessage::Error { code, message, .. }) => {
                panic!("server error {code:?}: {message}")
            }
            Got::Text(notice) => notices.push(notice),
            Got::Closed => panic!("the server closed the session"),
        }
    }
}

async fn wait_for(handle: &ServerHandle, what: &str, done: impl Fn(&ServerStats) -> bool) {
    let start = Instant::now();
    while !done(&handle.stats()) {
        assert!(
            start.elapsed() < PATIENCE,
            "waited too long for {what}: {:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two sessions at once, each with its own stream, seed and frame format; a prompt update on an
/// endless stream; streams that end by themselves after their chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_stream_at_once_and_a_prompt_update_applies() {
    let (addr, handle, _server) = start(config()).await;
    let mut a = session(addr).await;
    let mut b = session(addr).await;
    send(&mut a, &start_message(0, 1, FrameFormat::Rgba8, Some(2))).await;
    send(&mut b, &start_message(5, 2, FrameFormat::Png, Some(1))).await;

    let (mut notices_a, mut notices_b) = (Vec::new(), Vec::new());
    let a0 = read_chunk(&mut a, 0, &mut notices_a).await;
    let b0 = read_chunk(&mut b, 5, &mut notices_b).await;
    let a1 = read_chunk(&mut a, 0, &mut notices_a).await;
    assert!(notices_a.contains(&ServerMessage::Started { stream: 0 }));
    assert!(notices_b.contains(&ServerMessage::Started { stream: 5 }));

    for chunk in [&a0, &a1, &b0] {
        let ServerMessage::Chunk {
            frames,
            width,
            height,
            ..
        } = chunk.done
        else {
            unreachable!()
        };
        assert_eq!((width, height), (SIDE as u32, SIDE as u32));
        assert_eq!(
            chunk.frames.len(),
            frames,
            "every frame arrives before its chunk message"
        );
        assert!(frames > 1);
        for (i, (header, _)) in chunk.frames.iter().enumerate() {
            assert_eq!((header.frame, header.frames), (i, frames));
        }
    }
    assert!(matches!(a1.done, ServerMessage::Chunk { index: 1, .. }));
    // Raw frames are RGBA8 rows; PNG frames decode to the same size.
    assert_eq!(a0.frames[0].1.len(), SIDE * SIDE * 4);
    assert_eq!(b0.frames[0].0.format, FrameFormat::Png);
    let png = image::load_from_memory(&b0.frames[0].1).unwrap().to_rgba8();
    assert_eq!(png.dimensions(), (SIDE as u32, SIDE as u32));
    assert_ne!(png.into_raw(), a0.frames[0].1, "other seed, other video");

    // Both limited streams stop by themselves.
    assert_eq!(
        next_text(&mut b).await,
        ServerMessage::Stopped { stream: 5 }
    );
    assert_eq!(
        next_text(&mut a).await,
        ServerMessage::Stopped { stream: 0 }
    );

    // An endless stream: its prompt switches, then it is stopped.
    send(&mut a, &start_message(1, 3, FrameFormat::Jpeg, None)).await;
    let mut notices = Vec::new();
    let first = read_chunk(&mut a, 1, &mut notices).await;
    assert_eq!(first.frames[0].0.format, FrameFormat::Jpeg);
    let update = ClientMessage::Prompt {
        stream: 1,
        prompt: "a lighthouse keeper, furious".into(),
        over_chunks: 1,
    };
    send(&mut a, &update).await;
    let start = Instant::now();
    while !notices.iter().any(|n| matches!(n, ServerMessage::PromptApplied { stream: 1, prompt } if prompt.contains("furious"))) {
        assert!(start.elapsed() < PATIENCE, "no prompt_applied: {notices:?}");
        read_chunk(&mut a, 1, &mut notices).await;
    }
    send(&mut a, &ClientMessage::Stop { stream: 1 }).await;
    loop {
        match next(&mut a).await {
            Got::Text(ServerMessage::Stopped { stream: 1 }) => break,
            Got::Closed => panic!("closed before stopped"),
            _ => {}
        }
    }
    wait_for(&handle, "no streams", |s| s.streams == 0).await;
    let stats = handle.stats();
    assert!(stats.model_loaded);
    assert_eq!(stats.sessions, 2);
    assert!(stats.chunks_sent >= 4, "{stats:?}");
    handle.shutdown();
}

/// Every malformed message is answered with its error code and the session goes on; a wrong
/// token, a wrong version and a session too many are turned away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_errors_and_the_session_goes_on() {
    let mut config = config().with_token("s3cret");
    config.max_sessions = 1;
    config.max_pixels = SIDE * SIDE;
    let (addr, handle, _server) = start(config).await;

    let (mut intruder, reply) = connect(addr, Some("guess")).await;
    assert!(
        matches!(
            reply,
            ServerMessage::Error {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{reply:?}"
    );
    assert!(matches!(next(&mut intruder).await, Got::Closed));
    let (mut anonymous, reply) = connect(addr, None).await;
    assert!(
        matches!(
            reply,
            ServerMessage::Error {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{reply:?}"
    );
    assert!(matches!(next(&mut anonymous).await, Got::Closed));
    let (old, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
        .await
        .unwrap();
    let mut old = old;
    old.send(Message::text(
        r#"{"type":"hello","version":0,"token":"s3cret"}"#,
    ))
    .await
    .unwrap();
    let reply = next_text(&mut old).await;
    assert!(
        matches!(
            reply,
            ServerMessage::Error {
                code: ErrorCode::UnsupportedVersion,
                ..
            }
        ),
        "{reply:?}"
    );

    let (mut client, welcome) = connect(addr, Some("s3cret")).await;
    assert!(
        matches!(welcome, ServerMessage::Welcome { max_pixels, .. } if max_pixels == SIDE * SIDE)
    );
    let (_, busy) = connect(addr, Some("s3cret")).await;
    assert!(
        matches!(
            busy,
            ServerMessage::Error {
                code: ErrorCode::Busy,
                ..
            }
        ),
        "{busy:?}"
    );

    let mut too_big = start_message(0, 1, FrameFormat::Rgba8, Some(1));
    if let ClientMessage::Start { params, .. } = &mut too_big {
        params.width = Some(SIDE * 2);
    }
    let bad: Vec<(Message, ErrorCode)> = vec![
        (Message::text("not json"), ErrorCode::Malformed),
        (
            Message::text(r#"{"type":"launch","stream":1}"#),
            ErrorCode::Malformed,
        ),
        (
            Message::text(r#"{"type":"start","prompt":"no stream number"}"#),
            ErrorCode::Malformed,
        ),
        (Message::binary(vec![9u8, 0, 0]), ErrorCode::Malformed),
        (
            Message::binary(encode_binary(
                &ClientBinary::Image { stream: 0 },
                b"not an image",
            )),
            ErrorCode::BadImage,
        ),
        (
            Message::text(r#"{"type":"prompt","stream":7,"prompt":"who?"}"#),
            ErrorCode::UnknownStream,
        ),
        (
            Message::text(serde_json::to_string(&too_big).unwrap()),
            ErrorCode::Limit,
        ),
        (
            Message::text(
                serde_json::to_string(&start_message(0, 1, FrameFormat::Rgba8, Some(0))).unwrap(),
            ),
            ErrorCode::Malformed,
        ),
    ];
    for (message, code) in bad {
        let shown = format!("{message:?}");
        client.send(message).await.unwrap();
        let reply = next_text(&mut client).await;
        assert!(
            matches!(&reply, ServerMessage::Error { code: c, message, .. } if *c == code && !message.is_empty()),
            "{shown} → {reply:?}"
        );
    }
    // Still served.
    send(
        &mut client,
        &start_message(0, 1, FrameFormat::Rgba8, Some(1)),
    )
    .await;
    let chunk = read_chunk(&mut client, 0, &mut Vec::new()).await;
    assert!(!chunk.frames.is_empty());
    let stats = handle.stats();
    assert!(stats.malformed >= 4, "{stats:?}");
    assert!(stats.refused >= 4, "{stats:?}");
    handle.shutdown();
}

/// A client that stops reading holds at most `chunks_ahead` chunks of model time, is closed
/// after the stall timeout, and the other session keeps getting frames meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_others_keep_being_served() {
    let mut config = config();
    config.chunks_ahead = 1;
    config.stall_timeout = Duration::from_secs(2);
    let (addr, handle, _server) = start(config).await;

    // A tiny receive buffer, so the server feels it at once when this client stops reading.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (slow, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}"), MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
    let (mut slow, welcome) = hello_on(slow, None).await;
    assert!(matches!(welcome, ServerMessage::Welcome { .. }));
    send(&mut slow, &start_message(0, 1, FrameFormat::Rgba8, None)).await;
    // ... and never reads again.

    let mut good = session(addr).await;
    send(&mut good, &start_message(0, 2, FrameFormat::Rgba8, Some(3))).await;
    for _ in 0..3 {
        let chunk = read_chunk(&mut good, 0, &mut Vec::new()).await;
        assert!(!chunk.frames.is_empty());
    }
    wait_for(&handle, "the slow client to be closed", |s| {
        s.slow_clients == 1
    })
    .await;
    wait_for(&handle, "its session and stream to go", |s| {
        s.sessions == 1 && s.streams == 0
    })
    .await;
    drop(slow);
    handle.shutdown();
}

/// A client that disconnects in the middle of a chunk leaves no session and no stream behind,
/// and the server goes on serving new sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_chunk_leaves_nothing_behind() {
    let (addr, handle, _server) = start(config()).await;
    let mut client = session(addr).await;
    send(&mut client, &start_message(0, 1, FrameFormat::Rgba8, None)).await;
    loop {
        if let Got::Frame(header, _) = next(&mut client).await {
            assert_eq!(header.frame, 0);
            break;
        }
    }
    drop(client); // mid-chunk: one frame read, the others in flight
    wait_for(&handle, "nothing left", |s| {
        s.sessions == 0 && s.streams == 0
    })
    .await;

    let mut next_client = session(addr).await;
    send(
        &mut next_client,
        &start_message(3, 4, FrameFormat::Png, Some(1)),
    )
    .await;
    let chunk = read_chunk(&mut next_client, 3, &mut Vec::new()).await;
    assert!(!chunk.frames.is_empty());
    handle.shutdown();
}

/// A paced stream makes only the chunks its client grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_stream_makes_only_the_chunks_its_client_grants() {
    let (addr, handle, _server) = start(config()).await;
    let mut client = session(addr).await;
    let mut paced = start_message(0, 1, FrameFormat::Rgba8, None);
    if let ClientMessage::Start { paced: p, .. } = &mut paced {
        *p = true;
    }
    send(&mut client, &paced).await;
    assert_eq!(
        next_text(&mut client).await,
        ServerMessage::Started { stream: 0 }
    );
    wait_for(&handle, "the model", |s| s.model_loaded).await;
    // Without a grant nothing is made, however long one waits (a second is plenty for a chunk
    // to be started; none may be).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(handle.stats().chunks_sent, 0);
    send(
        &mut client,
        &ClientMessage::Grant {
            stream: 0,
            chunks: 1,
        },
    )
    .await;
    let chunk = read_chunk(&mut client, 0, &mut Vec::new()).await;
    assert!(matches!(chunk.done, ServerMessage::Chunk { index: 0, .. }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(handle.stats().chunks_sent, 1, "one grant, one chunk");
    send(
        &mut client,
        &ClientMessage::Grant {
            stream: 0,
            chunks: 1,
        },
    )
    .await;
    let chunk = read_chunk(&mut client, 0, &mut Vec::new()).await;
    assert!(matches!(chunk.done, ServerMessage::Chunk { index: 1, .. }));
    handle.shutdown();
}

/// Live video frames sent as a binary `video` message condition the stream they name: two paced
/// streams with the same seed make the same first chunk; after frames go to one of them, their
/// next chunks differ. Frames whose payload does not match their header are a `bad_image` error
/// and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_frames_from_a_client_condition_its_stream() {
    let (addr, handle, _server) = start(config()).await;
    let mut client = session(addr).await;
    for stream in [0, 1] {
        let mut paced = start_message(stream, 3, FrameFormat::Rgba8, None);
        if let ClientMessage::Start { paced: p, .. } = &mut paced {
            *p = true;
        }
        send(&mut client, &paced).await;
        assert_eq!(
            next_text(&mut client).await,
            ServerMessage::Started { stream }
        );
    }
    let grant_both = async |client: &mut Client| {
        for stream in [0, 1] {
            send(client, &ClientMessage::Grant { stream, chunks: 1 }).await;
        }
        let a = read_chunk(client, 0, &mut Vec::new()).await;
        let b = read_chunk(client, 1, &mut Vec::new()).await;
        (a, b)
    };
    let (a0, b0) = grant_both(&mut client).await;
    assert_eq!(
        a0.frames[0].1, b0.frames[0].1,
        "same seed, same first chunk"
    );

    let (w, h, n) = (32u32, 32u32, 9usize);
    let wrong = ClientBinary::Video {
        stream: 0,
        width: w,
        height: h,
        frames: n,
    };
    client
        .send(Message::binary(encode_binary(&wrong, &[0u8; 10])))
        .await
        .unwrap();
    let reply = next_text(&mut client).await;
    assert!(
        matches!(
            reply,
            ServerMessage::Error {
                code: ErrorCode::BadImage,
                stream: Some(0),
                ..
            }
        ),
        "{reply:?}"
    );
    let red: Vec<u8> = [220u8, 30, 30].repeat(w as usize * h as usize * n);
    let video = ClientBinary::Video {
        stream: 0,
        width: w,
        height: h,
        frames: n,
    };
    client
        .send(Message::binary(encode_binary(&video, &red)))
        .await
        .unwrap();
    let (a1, b1) = grant_both(&mut client).await;
    assert_ne!(a1.frames[0].1, b1.frames[0].1, "the frames reach the model");
    handle.shutdown();
}
