//! The hub: one thread that owns the model [`Worker`] and routes between it and the sessions.
//!
//! Sessions are async tasks; the worker is a thread with bounded channels. The hub thread waits
//! on both at once (`crossbeam_channel::select!`): commands from sessions go to the worker under
//! a server-wide stream id, the worker's events go back to the session that owns the stream.
//!
//! Back-pressure: the worker makes a chunk only when it holds a grant for the stream. The hub
//! grants [`ServeConfig::chunks_ahead`](crate::ServeConfig) chunks when a stream starts and one
//! more each time a session has *written* a chunk to its socket ([`HubCommand::Sent`]), so a
//! client that stops reading stops its streams after that many chunks, and nothing queues
//! without bound. Every session's queue has room for every chunk it can have in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, never, select};
use helios_model::pipeline::StreamRequest;
use helios_worker::{Frame, StreamId, Worker, WorkerCommand, WorkerEvent};
use tokio::sync::mpsc;

use crate::protocol::{ClientStream, ErrorCode, FrameFormat, ServerMessage};
use crate::stats::Counters;

/// A session's number on the server.
pub(crate) type SessionId = u64;

/// What a session's writer sends to its client.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A text message.
    Message(ServerMessage),
    /// The frames of a chunk, then its [`ServerMessage::Chunk`].
    Chunk {
        stream: ClientStream,
        index: usize,
        frames: Vec<Frame>,
        seconds: f32,
        format: FrameFormat,
    },
}

/// What sessions ask of the hub.
#[derive(Debug)]
pub(crate) enum HubCommand {
    /// A session starts; its messages go to `outgoing`.
    Register {
        session: SessionId,
        outgoing: mpsc::Sender<Outgoing>,
    },
    /// A session ended: its streams stop (the chunk in progress is cancelled).
    Unregister { session: SessionId },
    /// Starts (or restarts) a stream.
    Start {
        session: SessionId,
        stream: ClientStream,
        request: Box<StreamRequest>,
        format: FrameFormat,
        priority: f32,
        chunks: Option<u32>,
        paced: bool,
    },
    /// A paced stream may make `chunks` more chunks.
    Grant {
        session: SessionId,
        stream: ClientStream,
        chunks: u32,
    },
    /// Switches a stream's prompt.
    Prompt {
        session: SessionId,
        stream: ClientStream,
        prompt: String,
        over_chunks: usize,
    },
    /// Sets a stream's conditioning image.
    Image {
        session: SessionId,
        stream: ClientStream,
        image: Box<image::RgbImage>,
    },
    /// Feeds a stream the latest frames of a live video (V2V).
    Video {
        session: SessionId,
        stream: ClientStream,
        frames: Vec<image::RgbImage>,
    },
    /// Changes a stream's priority (`None` pauses it).
    Priority {
        session: SessionId,
        stream: ClientStream,
        priority: Option<f32>,
    },
    /// Stops a stream.
    Stop {
        session: SessionId,
        stream: ClientStream,
    },
    /// A session wrote one chunk of `stream` to its socket: the stream may make another.
    Sent {
        session: SessionId,
        stream: ClientStream,
    },
    /// Ends the hub (and the worker).
    Shutdown,
}

/// The sessions' side of the hub.
#[derive(Clone, Debug)]
pub(crate) struct HubHandle {
    commands: Sender<HubCommand>,
}

impl HubHandle {
    /// Sends a command without blocking; `false` when the hub is gone or overwhelmed.
    pub fn send(&self, command: HubCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }
}

/// One stream the hub knows.
#[derive(Debug)]
struct StreamState {
    session: SessionId,
    stream: ClientStream,
    format: FrameFormat,
    /// Chunks the stream may make in all (`None`: until stopped).
    limit: Option<u32>,
    /// Chunks granted so far.
    granted: u32,
    /// Chunks received so far.
    received: u32,
    /// Whether only the client's grants make chunks ([`ClientMessage::Grant`]).
    ///
    /// [`ClientMessage::Grant`]: crate::ClientMessage::Grant
    paced: bool,
}

impl StreamState {
    /// How many more chunks may be granted now: never more than `ahead` unsent, never past the
    /// stream's limit.
    fn grantable(&self, ahead: u32) -> u32 {
        let in_flight = self.granted.saturating_sub(self.received);
        let room = ahead.saturating_sub(in_flight);
        match self.limit {
            Some(limit) => room.min(limit.saturating_sub(self.granted)),
            None => room,
        }
    }
}

/// How a stream is started, besides its request.
#[derive(Clone, Copy, Debug)]
struct StartOptions {
    format: FrameFormat,
    priority: f32,
    chunks: Option<u32>,
    paced: bool,
}

/// The hub thread's state.
pub(crate) struct Hub {
    worker: Worker,
    commands: Receiver<HubCommand>,
    sessions: HashMap<SessionId, mpsc::Sender<Outgoing>>,
    streams: HashMap<StreamId, StreamState>,
    counters: Arc<Counters>,
    chunks_ahead: u32,
    max_streams: usize,
    max_pixels: usize,
    /// Why the model cannot serve (its load failed, or the worker ended).
    unavailable: Option<String>,
}

/// How long the hub waits for room in the worker's command queue.
const WORKER_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The limits the hub enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HubLimits {
    pub chunks_ahead: u32,
    pub max_streams: usize,
    pub max_pixels: usize,
}

/// A server-wide stream id: the session in the high half, the client's number in the low half.
fn stream_id(session: SessionId, stream: ClientStream) -> StreamId {
    (session << 32) | u64::from(stream)
}

impl Hub {
    /// A hub around `worker`, and the handle sessions talk to it with.
    pub fn new(worker: Worker, counters: Arc<Counters>, limits: HubLimits) -> (Self, HubHandle) {
        let (tx, rx) = crossbeam_channel::bounded(4096);
        let hub = Self {
            worker,
            commands: rx,
            sessions: HashMap::new(),
            streams: HashMap::new(),
            counters,
            chunks_ahead: limits.chunks_ahead,
            max_streams: limits.max_streams,
            max_pixels: limits.max_pixels,
            unavailable: None,
        };
        (hub, HubHandle { commands: tx })
    }

    /// Runs until [`HubCommand::Shutdown`] or until every handle is dropped; then the worker is
    /// shut down and joined.
    pub fn run(mut self) {
        let mut events = self.worker.events().clone();
        loop {
            select! {
                recv(self.commands) -> command => match command {
                    Ok(HubCommand::Shutdown) | Err(_) => break,
                    Ok(command) => self.handle(command),
                },
                recv(events) -> event => match event {
                    Ok(event) => self.route(event),
                    Err(_) => {
                        self.fail("the model worker ended".into());
                        events = never();
                    }
                },
            }
            self.counters
                .streams
                .store(self.streams.len(), Ordering::Release);
        }
        self.worker.shutdown();
    }

    fn handle(&mut self, command: HubCommand) {
        match command {
            HubCommand::Register { session, outgoing } => {
                if let Some(reason) = &self.unavailable {
                    let _ = outgoing.try_send(unavailable(reason));
                }
                self.sessions.insert(session, outgoing);
            }
            HubCommand::Unregister { session } => {
                self.sessions.remove(&session);
                let ids: Vec<StreamId> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| s.session == session)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.streams.remove(&id);
                    self.worker.cancel_if_generating(id);
                    self.send_worker(session, None, WorkerCommand::Stop { id });
                }
            }
            HubCommand::Start {
                session,
                stream,
                request,
                format,
                priority,
                chunks,
                paced,
            } => {
                let options = StartOptions {
                    format,
                    priority,
                    chunks,
                    paced,
                };
                self.start(session, stream, request, options)
            }
            HubCommand::Grant {
                session,
                stream,
                chunks,
            } => {
                let id = stream_id(session, stream);
                let ahead = self.chunks_ahead;
                let grant = match self.streams.get_mut(&id) {
                    Some(state) if state.paced => {
                        let grant = chunks.min(state.grantable(ahead));
                        state.granted += grant;
                        grant
                    }
                    // An unpaced stream is granted as it is sent; the client's grant is moot.
                    Some(_) => 0,
                    None => {
                        let message = format!("stream {stream} is not running");
                        self.tell(
                            session,
                            ServerMessage::error(Some(stream), ErrorCode::UnknownStream, message),
                        );
                        0
                    }
                };
                if grant > 0 {
                    self.send_worker(
                        session,
                        Some(stream),
                        WorkerCommand::Grant { id, chunks: grant },
                    );
                }
            }
            HubCommand::Prompt {
                session,
                stream,
                prompt,
                over_chunks,
            } => self.for_stream(session, stream, |id| WorkerCommand::SetPrompt {
                id,
                prompt,
                over_chunks: over_chunks.max(1),
            }),
            HubCommand::Image {
                session,
                stream,
                image,
            } => self.for_stream(session, stream, |id| WorkerCommand::SetImage { id, image }),
            HubCommand::Video {
                session,
                stream,
                frames,
            } => self.for_stream(session, stream, |id| WorkerCommand::PushVideo {
                id,
                frames,
            }),
            HubCommand::Priority {
                session,
                stream,
                priority,
            } => self.for_stream(session, stream, |id| WorkerCommand::SetPriority {
                id,
                priority,
            }),
            HubCommand::Stop { session, stream } => {
                let id = stream_id(session, stream);
                if self.streams.contains_key(&id) {
                    self.worker.cancel_if_generating(id);
                }
                self.for_stream(session, stream, |id| WorkerCommand::Stop { id });
            }
            HubCommand::Sent { session, stream } => {
                let id = stream_id(session, stream);
                let ahead = self.chunks_ahead;
                let Some(state) = self.streams.get_mut(&id) else {
                    return;
                };
                if !state.paced && state.grantable(ahead) > 0 {
                    state.granted += 1;
                    self.send_worker(
                        session,
                        Some(stream),
                        WorkerCommand::Grant { id, chunks: 1 },
                    );
                }
            }
            HubCommand::Shutdown => {}
        }
    }

    fn start(
        &mut self,
        session: SessionId,
        stream: ClientStream,
        request: Box<StreamRequest>,
        options: StartOptions,
    ) {
        let StartOptions {
            format,
            priority,
            chunks,
            paced,
        } = options;
        if let Some(reason) = &self.unavailable {
            self.tell_chunk(session, unavailable(reason));
            return;
        }
        let id = stream_id(session, stream);
        let running = self
            .streams
            .values()
            .filter(|s| s.session == session)
            .count();
        if !self.streams.contains_key(&id) && running >= self.max_streams {
            let message = format!("a session may run {} streams at once", self.max_streams);
            self.tell(
                session,
                ServerMessage::error(Some(stream), ErrorCode::Limit, message),
            );
            return;
        }
        let (height, width) = request.params.size();
        if width.saturating_mul(height) > self.max_pixels || width == 0 || height == 0 {
            let message = format!(
                "{width}x{height} frames: this server makes 1 to {} pixels per frame",
                self.max_pixels
            );
            self.tell(
                session,
                ServerMessage::error(Some(stream), ErrorCode::Limit, message),
            );
            return;
        }
        if chunks == Some(0) {
            let message = "`chunks` must be at least 1 (leave it out for an endless stream)";
            self.tell(
                session,
                ServerMessage::error(Some(stream), ErrorCode::Malformed, message),
            );
            return;
        }
        let mut state = StreamState {
            session,
            stream,
            format,
            limit: chunks,
            granted: 0,
            received: 0,
            paced,
        };
        if !paced {
            state.granted = state.grantable(self.chunks_ahead);
        }
        let granted = state.granted;
        self.streams.insert(id, state);
        let mut commands = vec![
            WorkerCommand::Start {
                id,
                request,
                quality: None,
            },
            WorkerCommand::SetPriority {
                id,
                priority: Some(priority),
            },
        ];
        if granted > 0 {
            commands.push(WorkerCommand::Grant {
                id,
                chunks: granted,
            });
        }
        for command in commands {
            if !self.send_worker(session, Some(stream), command) {
                self.streams.remove(&id);
                return;
            }
        }
    }

    /// Sends the command `make(id)` for a stream of `session`, or tells the session it has no
    /// such stream.
    fn for_stream(
        &mut self,
        session: SessionId,
        stream: ClientStream,
        make: impl FnOnce(StreamId) -> WorkerCommand,
    ) {
        let id = stream_id(session, stream);
        if self.streams.contains_key(&id) {
            self.send_worker(session, Some(stream), make(id));
        } else {
            let message = format!("stream {stream} is not running");
            self.tell(
                session,
                ServerMessage::error(Some(stream), ErrorCode::UnknownStream, message),
            );
        }
    }

    /// Hands a command to the worker; on failure tells the session and returns `false`.
    fn send_worker(
        &self,
        session: SessionId,
        stream: Option<ClientStream>,
        command: WorkerCommand,
    ) -> bool {
        match self.worker.send_timeout(command, WORKER_SEND_TIMEOUT) {
            Ok(()) => true,
            Err(e) => {
                let message = format!("the model worker did not take the request ({e})");
                self.tell(
                    session,
                    ServerMessage::error(stream, ErrorCode::Unavailable, message),
                );
                false
            }
        }
    }

    /// Passes a worker event on to the session that owns its stream.
    fn route(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Loaded => self.counters.model_loaded.store(true, Ordering::Release),
            WorkerEvent::Started { id } => {
                if let Some(s) = self.streams.get(&id) {
                    let (session, stream) = (s.session, s.stream);
                    self.tell(session, ServerMessage::Started { stream });
                }
            }
            WorkerEvent::Chunk {
                id,
                index,
                frames,
                seconds,
                ..
            } => self.chunk(id, index, frames, seconds),
            WorkerEvent::PromptApplied { id, prompt } => {
                if let Some(s) = self.streams.get(&id) {
                    let (session, stream) = (s.session, s.stream);
                    self.tell(session, ServerMessage::PromptApplied { stream, prompt });
                }
            }
            WorkerEvent::Stopped { id } => {
                if let Some(s) = self.streams.remove(&id) {
                    self.tell(s.session, ServerMessage::Stopped { stream: s.stream });
                }
            }
            WorkerEvent::Error {
                id: Some(id),
                error,
            } => {
                if let Some(s) = self.streams.get(&id) {
                    let (session, stream) = (s.session, s.stream);
                    let message = error.to_string();
                    self.tell(
                        session,
                        ServerMessage::error(Some(stream), ErrorCode::Model, message),
                    );
                }
            }
            WorkerEvent::Error { id: None, error } => self.fail(error.to_string()),
        }
    }

    fn chunk(&mut self, id: StreamId, index: usize, frames: Vec<Frame>, seconds: f32) {
        let Some(state) = self.streams.get_mut(&id) else {
            return; // its session is gone
        };
        state.received += 1;
        let done = state.limit == Some(state.received);
        let (session, stream, format) = (state.session, state.stream, state.format);
        self.tell_chunk(
            session,
            Outgoing::Chunk {
                stream,
                index,
                frames,
                seconds,
                format,
            },
        );
        if done {
            self.send_worker(session, Some(stream), WorkerCommand::Stop { id });
        }
    }

    /// The model cannot serve: every session is told, and every later request too.
    fn fail(&mut self, reason: String) {
        tracing::error!("helios serve: {reason}");
        for outgoing in self.sessions.values() {
            let _ = outgoing.try_send(unavailable(&reason));
        }
        self.streams.clear();
        self.unavailable = Some(reason);
    }

    fn tell(&self, session: SessionId, message: ServerMessage) {
        self.tell_chunk(session, Outgoing::Message(message));
    }

    fn tell_chunk(&self, session: SessionId, outgoing: Outgoing) {
        if let Some(tx) = self.sessions.get(&session)
            && let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(outgoing)
        {
            // Cannot happen while grants bound what is in flight (the queue has room for it);
            // the session's own stall timeout ends a client that stopped reading.
            tracing::warn!(
                "helios serve: session {session}'s queue is full; a message was dropped"
            );
        }
    }
}

fn unavailable(reason: &str) -> Outgoing {
    Outgoing::Message(ServerMessage::error(
        None,
        ErrorCode::Unavailable,
        format!("the model is unavailable: {reason}"),
    ))
}
