//! `helios serve` through the real binary: it listens, admits only clients with its token, and
//! streams frames of the embedded demo model to a real WebSocket client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use helios_model::pipeline::GenerationParams;
use helios_serve::protocol::decode_binary;
use helios_serve::{
    ClientMessage, ErrorCode, FrameFormat, FrameHeader, PROTOCOL_VERSION, ServerMessage,
};
use tokio_tungstenite::tungstenite::Message;

/// Kills the server when the test ends, however it ends.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `helios serve` on a free loopback port; returns the process and its address.
fn serve() -> (Served, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_helios"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--token-from-env",
            "--max-frame",
            "64x64",
            "--model",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../helios_model/embedded/tiny-helios"
            ),
        ])
        .env("HELIOS_SERVE_TOKEN", "let-me-in")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let served = Served(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server ended before listening")
            .unwrap();
        if let Some(addr) = line.split("listening on ws://").nth(1) {
            break addr.trim().to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (served, addr)
}

async fn hello(
    addr: &str,
    token: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    ServerMessage,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
        .await
        .unwrap();
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        token: Some(token.into()),
    };
    ws.send(Message::text(serde_json::to_string(&hello).unwrap()))
        .await
        .unwrap();
    let reply = match ws.next().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("no reply to hello: {other:?}"),
    };
    (ws, reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_streams_a_chunk_to_a_client_with_the_token() {
    let (_server, addr) = serve();

    let (_, refused) = hello(&addr, "wrong").await;
    assert!(
        matches!(
            refused,
            ServerMessage::Error {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{refused:?}"
    );

    let (mut ws, welcome) = hello(&addr, "let-me-in").await;
    assert!(
        matches!(
            welcome,
            ServerMessage::Welcome {
                max_pixels: 4096,
                ..
            }
        ),
        "{welcome:?}"
    );
    let start = ClientMessage::Start {
        stream: 0,
        prompt: "a red fox in the snow".into(),
        params: GenerationParams {
            width: Some(64),
            height: Some(64),
            steps: Some(vec![1, 1, 1]),
            max_sequence_length: Some(32),
            ..GenerationParams::default()
        },
        format: FrameFormat::Png,
        priority: 0.0,
        chunks: Some(1),
        paced: false,
    };
    ws.send(Message::text(serde_json::to_string(&start).unwrap()))
        .await
        .unwrap();
    let mut frames = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(240), ws.next())
            .await
            .expect("no chunk in time");
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                let (header, png) = decode_binary::<FrameHeader>(&bytes).unwrap();
                assert_eq!(
                    (header.width, header.height, header.frame),
                    (64, 64, frames)
                );
                let image = image::load_from_memory(png).unwrap();
                assert_eq!((image.width(), image.height()), (64, 64));
                frames += 1;
            }
            Some(Ok(Message::Text(text))) => match serde_json::from_str(&text).unwrap() {
                ServerMessage::Chunk { frames: n, .. } => {
                    assert_eq!(n, frames);
                    break;
                }
                ServerMessage::Started { stream: 0 } => {}
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(frames > 1);
}
