//! The connection thread of a [`RemoteWorker`](super::RemoteWorker): connecting, saying hello,
//! relaying commands as protocol messages and messages as events, and reconnecting with back-off.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use futures_util::{SinkExt, StreamExt};
use helios_model::pipeline::{Conditioning, StreamRequest};
use helios_worker::{Frame, StreamId, WorkerCommand, WorkerError, WorkerEvent};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Connection, RemoteConfig};
use crate::protocol::{
    ClientBinary, ClientMessage, ClientStream, ErrorCode, FrameFormat, FrameHeader,
    MAX_VIDEO_FRAMES, PROTOCOL_VERSION, ServerMessage, decode_binary, encode_binary,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the host asked of one stream, to start it again after a reconnection.
#[derive(Debug)]
struct Remembered {
    number: ClientStream,
    request: StreamRequest,
    priority: Option<f32>,
    image: Option<image::RgbImage>,
    /// Chunks granted and not yet received.
    outstanding: u32,
}

/// How a session ended.
enum End {
    /// The host shut the worker down.
    Shutdown,
    /// The connection was lost; try again.
    Lost(String),
    /// The server refused this client for good.
    Refused(String),
}

/// The connection thread's state.
pub(super) struct Link {
    config: RemoteConfig,
    commands: mpsc::Receiver<WorkerCommand>,
    events: Sender<WorkerEvent>,
    connection: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    streams: HashMap<StreamId, Remembered>,
    numbers: HashMap<ClientStream, StreamId>,
    next_number: ClientStream,
    /// Frames of the chunk being received, per stream number.
    pending: HashMap<ClientStream, Vec<Frame>>,
    welcomed: bool,
}

impl Link {
    pub(super) fn new(
        config: RemoteConfig,
        commands: mpsc::Receiver<WorkerCommand>,
        events: Sender<WorkerEvent>,
        connection: Arc<AtomicU8>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            config,
            commands,
            events,
            connection,
            stop,
            streams: HashMap::new(),
            numbers: HashMap::new(),
            next_number: 0,
            pending: HashMap::new(),
            welcomed: false,
        }
    }

    pub(super) fn run(mut self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                self.set(Connection::Closed);
                self.emit(WorkerEvent::Error {
                    id: None,
                    error: WorkerError::WorkerSpawn(Arc::new(e)),
                });
                return;
            }
        };
        runtime.block_on(self.serve());
    }

    fn set(&self, connection: Connection) {
        self.connection.store(connection as u8, Ordering::Release);
    }

    /// Hands an event to the host, waiting while its queue is full (which stops reading the
    /// socket: back-pressure reaches the server), until shut down.
    fn emit(&self, mut event: WorkerEvent) -> bool {
        loop {
            match self.events.send_timeout(event, Duration::from_millis(100)) {
                Ok(()) => return true,
                Err(crossbeam_channel::SendTimeoutError::Timeout(e)) => {
                    if self.stop.load(Ordering::Acquire) {
                        return false;
                    }
                    event = e;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }

    async fn serve(&mut self) {
        let mut wait = self.config.retry_min;
        loop {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            let end = match self.open().await {
                Ok(socket) => {
                    wait = self.config.retry_min;
                    self.set(Connection::Connected);
                    self.session(socket).await
                }
                Err(end) => end,
            };
            match end {
                End::Shutdown => break,
                End::Refused(reason) => {
                    self.set(Connection::Closed);
                    let error = WorkerError::Remote(reason);
                    self.emit(WorkerEvent::Error { id: None, error });
                    // Keep answering commands (as a dead worker would, by not acting on them)
                    // until the host shuts down.
                    while let Some(command) = self.commands.recv().await {
                        if matches!(command, WorkerCommand::Shutdown) {
                            break;
                        }
                    }
                    return;
                }
                End::Lost(reason) => {
                    tracing::warn!("helios remote: {reason}; retrying in {wait:?}");
                    self.set(Connection::Retrying);
                    self.pending.clear();
                    if self.idle(wait).await {
                        break;
                    }
                    wait = (wait * 2).min(self.config.retry_max);
                }
            }
        }
        self.set(Connection::Closed);
    }

    /// Connects and says hello.
    async fn open(&mut self) -> Result<Socket, End> {
        let connect = tokio_tungstenite::connect_async(self.config.url.as_str());
        let (mut socket, _) = match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(ok)) => ok,
            Ok(Err(e)) => return Err(End::Lost(format!("cannot reach {}: {e}", self.config.url))),
            Err(_) => return Err(End::Lost(format!("{} did not answer", self.config.url))),
        };
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            token: self.config.token.clone(),
        };
        send(&mut socket, &hello).await?;
        let reply = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        match reply {
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(&text) {
                Ok(ServerMessage::Welcome { .. }) => Ok(socket),
                Ok(ServerMessage::Error { code, message, .. }) => Err(match code {
                    ErrorCode::Unauthorized | ErrorCode::UnsupportedVersion => {
                        End::Refused(format!("the server refused this client: {message}"))
                    }
                    _ => End::Lost(format!("the server said: {message}")),
                }),
                _ => Err(End::Lost("the server did not welcome this client".into())),
            },
            _ => Err(End::Lost("no welcome from the server".into())),
        }
    }

    /// Waits `wait` while keeping track of the host's commands; `true` when shut down.
    async fn idle(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return false,
                command = self.commands.recv() => match command {
                    None | Some(WorkerCommand::Shutdown) => return true,
                    Some(command) => self.remember(command),
                },
            }
        }
    }

    /// One connected session: starts the remembered streams, then relays until it ends.
    async fn session(&mut self, mut socket: Socket) -> End {
        if !self.welcomed {
            self.welcomed = true;
            if !self.emit(WorkerEvent::Loaded) {
                return End::Shutdown;
            }
        }
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            if let Err(end) = self.resume(&mut socket, id).await {
                return end;
            }
        }
        loop {
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else { return End::Shutdown };
                    if matches!(command, WorkerCommand::Shutdown) {
                        let _ = socket.close(None).await;
                        return End::Shutdown;
                    }
                    if let Err(end) = self.relay(&mut socket, command).await {
                        return end;
                    }
                }
                message = socket.next() => match message {
                    Some(Ok(message)) => {
                        if let Err(end) = self.receive(message) {
                            return end;
                        }
                    }
                    Some(Err(e)) => return End::Lost(format!("connection lost: {e}")),
                    None => return End::Lost("the server closed the connection".into()),
                },
            }
        }
    }

    /// Records what a command changes about a stream (also while disconnected).
    fn remember(&mut self, command: WorkerCommand) {
        match command {
            WorkerCommand::Start { id, request, .. } => {
                let number = match self.streams.get(&id) {
                    Some(s) => s.number,
                    None => {
                        let n = self.next_number;
                        self.next_number = self.next_number.wrapping_add(1);
                        n
                    }
                };
                self.numbers.insert(number, id);
                let previous = self.streams.remove(&id);
                self.streams.insert(
                    id,
                    Remembered {
                        number,
                        request: *request,
                        priority: previous.and_then(|p| p.priority).or(Some(0.0)),
                        image: None,
                        outstanding: 0,
                    },
                );
            }
            WorkerCommand::Stop { id } => {
                if let Some(s) = self.streams.remove(&id) {
                    self.numbers.remove(&s.number);
                    self.pending.remove(&s.number);
                }
            }
            WorkerCommand::SetPrompt { id, prompt, .. } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.request.prompt = prompt;
                }
            }
            WorkerCommand::SetImage { id, image } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.image = Some(*image);
                }
            }
            WorkerCommand::SetPriority { id, priority } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.priority = priority;
                }
            }
            WorkerCommand::Grant { id, chunks } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.outstanding = s.outstanding.saturating_add(chunks);
                }
            }
            // Live video is context of the moment: after a reconnection the next frames go.
            WorkerCommand::PushVideo { .. } | WorkerCommand::Shutdown => {}
        }
    }

    /// Remembers a command and sends what it means to the server. Commands about streams this
    /// worker does not run are dropped, as a local worker drops them.
    async fn relay(&mut self, socket: &mut Socket, command: WorkerCommand) -> Result<(), End> {
        let known = command
            .stream()
            .is_some_and(|id| self.streams.contains_key(&id));
        match &command {
            WorkerCommand::Start { id, .. } => {
                let id = *id;
                self.remember(command);
                return self.resume(socket, id).await;
            }
            WorkerCommand::SetImage { id, .. } if known => {
                let id = *id;
                self.remember(command);
                return self.send_image(socket, id).await;
            }
            WorkerCommand::PushVideo { id, frames } if known => {
                return self.send_video(socket, *id, frames).await;
            }
            _ => {}
        }
        let message = self.message_for(&command);
        self.remember(command);
        match message {
            Some(message) => send(socket, &message).await,
            None => Ok(()),
        }
    }

    /// The protocol message of a command about a known stream.
    fn message_for(&self, command: &WorkerCommand) -> Option<ClientMessage> {
        let number = |id: &StreamId| self.streams.get(id).map(|s| s.number);
        match command {
            WorkerCommand::Stop { id } => number(id).map(|stream| ClientMessage::Stop { stream }),
            WorkerCommand::SetPrompt {
                id,
                prompt,
                over_chunks,
            } => number(id).map(|stream| ClientMessage::Prompt {
                stream,
                prompt: prompt.clone(),
                over_chunks: *over_chunks,
            }),
            WorkerCommand::SetPriority { id, priority } => {
                number(id).map(|stream| ClientMessage::Priority {
                    stream,
                    priority: *priority,
                })
            }
            WorkerCommand::Grant { id, chunks } => number(id).map(|stream| ClientMessage::Grant {
                stream,
                chunks: *chunks,
            }),
            WorkerCommand::Start { .. }
            | WorkerCommand::SetImage { .. }
            | WorkerCommand::PushVideo { .. }
            | WorkerCommand::Shutdown => None,
        }
    }

    /// Starts a remembered stream on the server, with its priority, image and grants.
    async fn resume(&mut self, socket: &mut Socket, id: StreamId) -> Result<(), End> {
        let Some(s) = self.streams.get(&id) else {
            return Ok(());
        };
        let start = ClientMessage::Start {
            stream: s.number,
            prompt: s.request.prompt.clone(),
            params: s.request.params.clone(),
            format: self.config.format,
            priority: s.priority.unwrap_or(0.0),
            chunks: None,
            paced: true,
        };
        let (number, priority, outstanding) = (s.number, s.priority, s.outstanding);
        send(socket, &start).await?;
        if priority.is_none() {
            send(
                socket,
                &ClientMessage::Priority {
                    stream: number,
                    priority,
                },
            )
            .await?;
        }
        self.send_image(socket, id).await?;
        if outstanding > 0 {
            let grant = ClientMessage::Grant {
                stream: number,
                chunks: outstanding,
            };
            send(socket, &grant).await?;
        }
        Ok(())
    }

    /// Sends a stream's conditioning image (the one set last, else the request's).
    async fn send_image(&mut self, socket: &mut Socket, id: StreamId) -> Result<(), End> {
        let Some(s) = self.streams.get(&id) else {
            return Ok(());
        };
        let image = match (&s.image, &s.request.conditioning) {
            (Some(image), _) | (None, Conditioning::Image(image)) => image,
            _ => return Ok(()),
        };
        let mut png = std::io::Cursor::new(Vec::new());
        if let Err(e) = image.write_to(&mut png, image::ImageFormat::Png) {
            let error = WorkerError::Remote(format!("cannot encode the conditioning image: {e}"));
            self.emit(WorkerEvent::Error {
                id: Some(id),
                error,
            });
            return Ok(());
        }
        let header = ClientBinary::Image { stream: s.number };
        let message = Message::binary(encode_binary(&header, png.get_ref()));
        socket
            .send(message)
            .await
            .map_err(|e| End::Lost(format!("connection lost: {e}")))
    }

    /// Sends live video frames of a stream as one binary message (frames of another size than
    /// the first are resized to it).
    async fn send_video(
        &mut self,
        socket: &mut Socket,
        id: StreamId,
        frames: &[image::RgbImage],
    ) -> Result<(), End> {
        let Some(s) = self.streams.get(&id) else {
            return Ok(());
        };
        let frames = &frames[frames.len().saturating_sub(MAX_VIDEO_FRAMES)..];
        let Some((width, height)) = frames.first().map(|f| f.dimensions()) else {
            return Ok(());
        };
        let mut payload = Vec::with_capacity(width as usize * height as usize * 3 * frames.len());
        for frame in frames {
            if frame.dimensions() == (width, height) {
                payload.extend_from_slice(frame.as_raw());
            } else {
                let filter = image::imageops::FilterType::Triangle;
                let resized = image::imageops::resize(frame, width, height, filter);
                payload.extend_from_slice(resized.as_raw());
            }
        }
        let header = ClientBinary::Video {
            stream: s.number,
            width,
            height,
            frames: frames.len(),
        };
        let message = Message::binary(encode_binary(&header, &payload));
        socket
            .send(message)
            .await
            .map_err(|e| End::Lost(format!("connection lost: {e}")))
    }

    /// A message from the server.
    fn receive(&mut self, message: Message) -> Result<(), End> {
        match message {
            Message::Binary(bytes) => {
                let (header, payload) = decode_binary::<FrameHeader>(&bytes)
                    .map_err(|e| End::Lost(format!("unreadable frame from the server: {e}")))?;
                let frame = decode_frame(&header, payload)
                    .map_err(|e| End::Lost(format!("unreadable frame from the server: {e}")))?;
                self.pending.entry(header.stream).or_default().push(frame);
                Ok(())
            }
            Message::Text(text) => {
                let message: ServerMessage = serde_json::from_str(&text)
                    .map_err(|e| End::Lost(format!("unreadable message from the server: {e}")))?;
                self.on_message(message)
            }
            Message::Close(_) => Err(End::Lost("the server closed the connection".into())),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    fn on_message(&mut self, message: ServerMessage) -> Result<(), End> {
        let id_of = |link: &Self, stream: ClientStream| link.numbers.get(&stream).copied();
        let event = match message {
            ServerMessage::Welcome { .. } => None,
            ServerMessage::Started { stream } => {
                id_of(self, stream).map(|id| WorkerEvent::Started { id })
            }
            ServerMessage::Chunk {
                stream,
                index,
                seconds,
                ..
            } => {
                let frames = self.pending.remove(&stream).unwrap_or_default();
                id_of(self, stream).map(|id| {
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.outstanding = s.outstanding.saturating_sub(1);
                    }
                    WorkerEvent::Chunk {
                        id,
                        index,
                        frames,
                        seconds,
                        steps: None,
                        size: None,
                    }
                })
            }
            ServerMessage::PromptApplied { stream, prompt } => {
                id_of(self, stream).map(|id| WorkerEvent::PromptApplied { id, prompt })
            }
            ServerMessage::Stopped { stream } => id_of(self, stream).map(|id| {
                if let Some(s) = self.streams.remove(&id) {
                    self.numbers.remove(&s.number);
                }
                WorkerEvent::Stopped { id }
            }),
            ServerMessage::Error {
                stream,
                code,
                message,
            } => {
                if code.closes_session() {
                    return Err(End::Lost(format!(
                        "the server closed the session: {message}"
                    )));
                }
                match stream.and_then(|s| id_of(self, s)) {
                    Some(id) => Some(WorkerEvent::Error {
                        id: Some(id),
                        error: WorkerError::Remote(message),
                    }),
                    // About no stream of ours (say, a message this client got wrong): worth a
                    // log line, not a failed worker.
                    None => {
                        tracing::warn!("helios remote: the server said {code:?}: {message}");
                        None
                    }
                }
            }
        };
        match event.map(|event| self.emit(event)) {
            Some(false) => Err(End::Shutdown),
            _ => Ok(()),
        }
    }
}

/// A frame from its binary message.
fn decode_frame(header: &FrameHeader, payload: &[u8]) -> Result<Frame, String> {
    let (w, h) = (header.width as usize, header.height as usize);
    let pixels = match header.format {
        FrameFormat::Rgba8 => {
            if payload.len() != w * h * 4 {
                return Err(format!("a {w}x{h} frame of {} bytes", payload.len()));
            }
            payload.to_vec()
        }
        FrameFormat::Png | FrameFormat::Jpeg => {
            let image = image::load_from_memory(payload).map_err(|e| e.to_string())?;
            if (image.width() as usize, image.height() as usize) != (w, h) {
                return Err(format!(
                    "a {}x{} picture for a {w}x{h} frame",
                    image.width(),
                    image.height()
                ));
            }
            image.to_rgba8().into_raw()
        }
    };
    Ok(Frame::from_rgba(pixels, w, h))
}

async fn send(socket: &mut Socket, message: &ClientMessage) -> Result<(), End> {
    // Serialising these plain enums cannot fail.
    let text = serde_json::to_string(message).unwrap_or_default();
    socket
        .send(Message::text(text))
        .await
        .map_err(|e| End::Lost(format!("connection lost: {e}")))
}
