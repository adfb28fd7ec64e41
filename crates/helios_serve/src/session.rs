//! One WebSocket connection: the `hello`, then a reader and a writer running side by side until
//! either ends, then the session's streams are stopped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::ServeConfig;
use crate::encode::encode_frames;
use crate::hub::{HubCommand, HubHandle, Outgoing, SessionId};
use crate::protocol::{
    ClientBinary, ClientMessage, ErrorCode, FrameHeader, MAX_VIDEO_FRAMES, PROTOCOL_VERSION,
    ServerMessage, decode_binary, encode_binary,
};
use crate::stats::Counters;

type Socket = WebSocketStream<TcpStream>;

/// What every session shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ServeConfig,
    pub hub: HubHandle,
    pub counters: Arc<Counters>,
    pub next_session: std::sync::atomic::AtomicU64,
    pub shutdown: watch::Receiver<bool>,
}

/// Serves one connection to its end.
pub(crate) async fn run(tcp: TcpStream, shared: Arc<Shared>) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(shared.config.max_message_bytes))
        .max_frame_size(Some(shared.config.max_message_bytes));
    let handshake = tokio_tungstenite::accept_async_with_config(tcp, Some(config));
    let Ok(Ok(mut socket)) = tokio::time::timeout(shared.config.hello_timeout, handshake).await
    else {
        return; // not a WebSocket client, or too slow to become one
    };
    if let Err((code, message)) = hello(&mut socket, &shared).await {
        Counters::bump(&shared.counters.refused);
        let _ = send_text(&mut socket, &ServerMessage::error(None, code, message)).await;
        let _ = socket.close(None).await;
        return;
    }
    // A place is taken only after the hello, so a silent connection never holds one.
    let max = shared.config.max_sessions;
    let taken = shared
        .counters
        .sessions
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        });
    if taken.is_err() {
        Counters::bump(&shared.counters.refused);
        let message = format!("the server serves {max} sessions at once; try again later");
        let _ = send_text(
            &mut socket,
            &ServerMessage::error(None, ErrorCode::Busy, message),
        )
        .await;
        let _ = socket.close(None).await;
        return;
    }
    let session = shared.next_session.fetch_add(1, Ordering::AcqRel);
    serve(socket, session, &shared).await;
    shared.hub.send(HubCommand::Unregister { session });
    shared.counters.sessions.fetch_sub(1, Ordering::AcqRel);
}

/// Reads the `hello` and answers it.
async fn hello(socket: &mut Socket, shared: &Shared) -> Result<(), (ErrorCode, String)> {
    let first = tokio::time::timeout(shared.config.hello_timeout, socket.next()).await;
    let text = match first {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(Some(Ok(_))) => {
            return Err((
                ErrorCode::HelloExpected,
                "the first message must be a hello".into(),
            ));
        }
        _ => return Err((ErrorCode::HelloExpected, "no hello arrived in time".into())),
    };
    let (version, token) = match serde_json::from_str::<ClientMessage>(&text) {
        Ok(ClientMessage::Hello { version, token }) => (version, token),
        Ok(_) => {
            return Err((
                ErrorCode::HelloExpected,
                "the first message must be a hello".into(),
            ));
        }
        Err(e) => return Err((ErrorCode::Malformed, format!("hello: {e}"))),
    };
    if version != PROTOCOL_VERSION {
        let message =
            format!("this server speaks protocol version {PROTOCOL_VERSION}, not {version}");
        return Err((ErrorCode::UnsupportedVersion, message));
    }
    if let Some(expected) = &shared.config.token
        && !token.is_some_and(|t| same_secret(t.as_bytes(), expected.as_bytes()))
    {
        return Err((ErrorCode::Unauthorized, "missing or wrong token".into()));
    }
    Ok(())
}

/// Compares two secrets in a time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session proper: welcome, then reader and writer until one ends (or the server stops).
async fn serve(mut socket: Socket, session: SessionId, shared: &Arc<Shared>) {
    let config = &shared.config;
    let welcome = ServerMessage::Welcome {
        version: PROTOCOL_VERSION,
        session,
        max_streams: config.max_streams_per_session,
        max_pixels: config.max_pixels,
    };
    if send_text(&mut socket, &welcome).await.is_err() {
        return;
    }
    // Room for every chunk the session's streams can have in flight, and their notices.
    let capacity = config.max_streams_per_session * (config.chunks_ahead as usize + 4) + 32;
    let (tx, rx) = mpsc::channel(capacity);
    if !shared.hub.send(HubCommand::Register {
        session,
        outgoing: tx.clone(),
    }) {
        let message = "the server is shutting down".to_string();
        let _ = send_text(
            &mut socket,
            &ServerMessage::error(None, ErrorCode::Unavailable, message),
        )
        .await;
        return;
    }
    let (sink, source) = socket.split();
    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        () = read(source, tx, session, shared) => {}
        () = write(sink, rx, session, shared) => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}

/// Reads the client's messages and passes them to the hub.
async fn read(
    mut source: SplitStream<Socket>,
    replies: mpsc::Sender<Outgoing>,
    session: SessionId,
    shared: &Shared,
) {
    while let Some(Ok(message)) = source.next().await {
        let reply = match message {
            Message::Text(text) => on_text(&text, session, shared),
            Message::Binary(bytes) => on_binary(bytes.to_vec(), session, shared).await,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        };
        if let Some(reply) = reply
            && replies.send(Outgoing::Message(reply)).await.is_err()
        {
            break;
        }
    }
}

/// A text message; returns the error to answer with, if any.
fn on_text(text: &str, session: SessionId, shared: &Shared) -> Option<ServerMessage> {
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        Err(e) => return Some(malformed(shared, e)),
    };
    let command = match message {
        ClientMessage::Hello { .. } => {
            let message = "hello was already received".to_string();
            return Some(ServerMessage::error(None, ErrorCode::Malformed, message));
        }
        ClientMessage::Start {
            stream,
            prompt,
            params,
            format,
            priority,
            chunks,
            paced,
        } => {
            if !priority.is_finite() {
                let message = "priority must be a finite number".to_string();
                return Some(ServerMessage::error(
                    Some(stream),
                    ErrorCode::Malformed,
                    message,
                ));
            }
            let request = helios_model::pipeline::StreamRequest::with_params(prompt, params);
            HubCommand::Start {
                session,
                stream,
                request: Box::new(request),
                format,
                priority,
                chunks,
                paced,
            }
        }
        ClientMessage::Grant { stream, chunks } => HubCommand::Grant {
            session,
            stream,
            chunks,
        },
        ClientMessage::Prompt {
            stream,
            prompt,
            over_chunks,
        } => HubCommand::Prompt {
            session,
            stream,
            prompt,
            over_chunks,
        },
        ClientMessage::Priority { stream, priority } => {
            if priority.is_some_and(|p| !p.is_finite()) {
                let message = "priority must be a finite number or null".to_string();
                return Some(ServerMessage::error(
                    Some(stream),
                    ErrorCode::Malformed,
                    message,
                ));
            }
            HubCommand::Priority {
                session,
                stream,
                priority,
            }
        }
        ClientMessage::Stop { stream } => HubCommand::Stop { session, stream },
    };
    to_hub(shared, command)
}

/// A binary message: a conditioning image, or live video frames.
async fn on_binary(bytes: Vec<u8>, session: SessionId, shared: &Shared) -> Option<ServerMessage> {
    let (header, payload_at) = match decode_binary::<ClientBinary>(&bytes) {
        Ok((header, payload)) => (header, bytes.len() - payload.len()),
        Err(e) => return Some(malformed(shared, e)),
    };
    let stream = header.stream();
    if let ClientBinary::Video {
        width,
        height,
        frames,
        ..
    } = header
    {
        return match video_frames(&bytes[payload_at..], width, height, frames) {
            Ok(frames) => to_hub(
                shared,
                HubCommand::Video {
                    session,
                    stream,
                    frames,
                },
            ),
            Err(e) => Some(ServerMessage::error(Some(stream), ErrorCode::BadImage, e)),
        };
    }
    let decoded = tokio::task::spawn_blocking(move || {
        image::load_from_memory(&bytes[payload_at..])
            .map(|image| image.to_rgb8())
            .map_err(|e| e.to_string())
    })
    .await;
    let image = match decoded {
        Ok(Ok(image)) => image,
        Ok(Err(e)) => return Some(ServerMessage::error(Some(stream), ErrorCode::BadImage, e)),
        Err(e) => {
            return Some(ServerMessage::error(
                Some(stream),
                ErrorCode::BadImage,
                e.to_string(),
            ));
        }
    };
    let command = HubCommand::Image {
        session,
        stream,
        image: Box::new(image),
    };
    to_hub(shared, command)
}

/// Splits a [`ClientBinary::Video`] payload into its frames.
fn video_frames(
    payload: &[u8],
    width: u32,
    height: u32,
    frames: usize,
) -> Result<Vec<image::RgbImage>, String> {
    if !(1..=MAX_VIDEO_FRAMES).contains(&frames) || width == 0 || height == 0 {
        return Err(format!(
            "a video message carries 1 to {MAX_VIDEO_FRAMES} frames of at least 1x1 pixels \
             (got {frames} of {width}x{height})"
        ));
    }
    let frame_len = (width as usize)
        .saturating_mul(height as usize)
        .saturating_mul(3);
    if frame_len.saturating_mul(frames) != payload.len() {
        return Err(format!(
            "{frames} RGB8 frames of {width}x{height} are {} bytes; the payload has {}",
            frame_len.saturating_mul(frames),
            payload.len()
        ));
    }
    payload
        .chunks_exact(frame_len)
        .map(|rows| {
            image::RgbImage::from_raw(width, height, rows.to_vec())
                .ok_or_else(|| "a video frame does not fit its size".to_string())
        })
        .collect()
}

/// Hands a client's request to the hub; the error to answer with when it cannot take it.
fn to_hub(shared: &Shared, command: HubCommand) -> Option<ServerMessage> {
    (!shared.hub.send(command)).then(|| {
        let message = "the server is shutting down or overwhelmed";
        ServerMessage::error(None, ErrorCode::Unavailable, message)
    })
}

/// Counts a message that could not be read and makes its answer.
fn malformed(shared: &Shared, error: impl std::fmt::Display) -> ServerMessage {
    Counters::bump(&shared.counters.malformed);
    ServerMessage::error(None, ErrorCode::Malformed, error.to_string())
}

/// Why the writer stopped.
enum Ended {
    /// The socket failed or was closed.
    Socket,
    /// The client did not read in time.
    Stalled,
}

/// Writes what the hub and the reader queue, each message within the stall timeout.
async fn write(
    mut sink: SplitSink<Socket, Message>,
    mut queue: mpsc::Receiver<Outgoing>,
    session: SessionId,
    shared: &Shared,
) {
    while let Some(outgoing) = queue.recv().await {
        match deliver(&mut sink, outgoing, session, shared).await {
            Ok(true) => {}
            Ok(false) | Err(Ended::Socket) => break,
            Err(Ended::Stalled) => {
                Counters::bump(&shared.counters.slow_clients);
                tracing::warn!("helios serve: session {session} stopped reading; closing it");
                // The client may still be able to read this one (the stall may have been a
                // single large frame); it is the best way to say why.
                let message = format!(
                    "a message waited more than {:?} for the client to read it",
                    shared.config.stall_timeout
                );
                let notice = text(&ServerMessage::error(None, ErrorCode::SlowClient, message));
                let _ = tokio::time::timeout(shared.config.stall_timeout, sink.send(notice)).await;
                break;
            }
        }
    }
    let _ = tokio::time::timeout(shared.config.stall_timeout, sink.close()).await;
}

/// Sends one queued item; `Ok(false)` when it ends the session (an error that closes it).
async fn deliver(
    sink: &mut SplitSink<Socket, Message>,
    outgoing: Outgoing,
    session: SessionId,
    shared: &Shared,
) -> Result<bool, Ended> {
    let stall = shared.config.stall_timeout;
    match outgoing {
        Outgoing::Message(message) => {
            let closes =
                matches!(&message, ServerMessage::Error { code, .. } if code.closes_session());
            send(sink, text(&message), stall).await?;
            Ok(!closes)
        }
        Outgoing::Chunk {
            stream,
            index,
            frames,
            seconds,
            format,
        } => {
            let count = frames.len();
            let (width, height) = frames.first().map_or((0, 0), |f| (f.width, f.height));
            let payloads = tokio::task::spawn_blocking(move || encode_frames(&frames, format))
                .await
                .map_err(|_| Ended::Socket)?;
            for (frame, payload) in payloads.into_iter().enumerate() {
                let header = FrameHeader {
                    stream,
                    chunk: index,
                    frame,
                    frames: count,
                    width,
                    height,
                    format,
                };
                let message = Message::binary(encode_binary(&header, &payload));
                send(sink, message, stall).await?;
                Counters::bump(&shared.counters.frames_sent);
            }
            let done = ServerMessage::Chunk {
                stream,
                index,
                frames: count,
                width,
                height,
                seconds,
            };
            send(sink, text(&done), stall).await?;
            Counters::bump(&shared.counters.chunks_sent);
            shared.hub.send(HubCommand::Sent { session, stream });
            Ok(true)
        }
    }
}

async fn send(
    sink: &mut SplitSink<Socket, Message>,
    message: Message,
    stall: std::time::Duration,
) -> Result<(), Ended> {
    match tokio::time::timeout(stall, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ended::Socket),
        Err(_) => Err(Ended::Stalled),
    }
}

async fn send_text(socket: &mut Socket, message: &ServerMessage) -> Result<(), ()> {
    socket.send(text(message)).await.map_err(|_| ())
}

fn text(message: &ServerMessage) -> Message {
    // Serialising these plain enums cannot fail.
    Message::text(serde_json::to_string(message).unwrap_or_default())
}
