//! The background worker: one dedicated `std::thread` per loaded model, owning the generator and
//! all its streams. No Bevy types in here.
//!
//! Not the task pool: generation never ends and would starve it. The game talks to the thread
//! through two bounded `crossbeam-channel`s (crossbeam rather than `std::sync::mpsc` because the
//! std receiver is not `Sync`, and Bevy resources must be). The game side only ever uses
//! `try_send` / `try_recv`, so it never blocks; the worker blocks on a full result channel, which
//! is the backpressure that keeps memory bounded when the game stalls. How many chunks a stream
//! may have in flight is bounded too: the game grants chunks one at a time ([`WorkerCommand::Grant`]).
//!
//! Scheduling: among the streams with a grant, the one with the lowest priority value (the
//! plugin uses the distance to the camera) makes the next chunk; ties go round-robin. A stream
//! with priority `None` (off-screen) is paused: it keeps its state but makes nothing.

pub mod engine;
mod helios_engine;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError, TrySendError, bounded,
};

use crate::error::{HeliosError, HeliosResult};
use crate::playback::{Frame, FrameStats};
pub use engine::{ChunkEngine, EngineChunk, EngineConfig, StreamId, StreamSpec};

/// A request to the worker.
#[derive(Debug)]
pub enum WorkerCommand {
    /// Create (or replace) a stream.
    Start {
        /// The stream.
        id: StreamId,
        /// What to generate.
        spec: Box<StreamSpec>,
    },
    /// Drop a stream.
    Stop {
        /// The stream.
        id: StreamId,
    },
    /// Switch a stream's prompt, interpolated over `over_chunks` chunks.
    SetPrompt {
        /// The stream.
        id: StreamId,
        /// The new prompt.
        prompt: String,
        /// Interpolation length in chunks.
        over_chunks: usize,
    },
    /// Set a stream's I2V conditioning image.
    SetImage {
        /// The stream.
        id: StreamId,
        /// The image.
        image: Box<image::RgbImage>,
    },
    /// Set a stream's priority (lower first); `None` pauses it.
    SetPriority {
        /// The stream.
        id: StreamId,
        /// The priority.
        priority: Option<f32>,
    },
    /// Allow a stream to make `chunks` more chunks.
    Grant {
        /// The stream.
        id: StreamId,
        /// How many.
        chunks: u32,
    },
    /// Stop everything and end the thread.
    Shutdown,
}

/// Something the worker reports.
#[derive(Debug)]
pub enum WorkerEvent {
    /// The model is loaded; streams can run.
    Loaded,
    /// A stream was created.
    Started {
        /// The stream.
        id: StreamId,
    },
    /// A stream began generating chunk `index` (progress).
    Generating {
        /// The stream.
        id: StreamId,
        /// The chunk.
        index: usize,
    },
    /// A chunk is ready.
    Chunk {
        /// The stream.
        id: StreamId,
        /// Chunk number in the stream.
        index: usize,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// The frames, with their colour statistics.
        frames: Vec<Frame>,
        /// Seconds the chunk took.
        seconds: f32,
    },
    /// The worker switched a stream to this prompt.
    PromptApplied {
        /// The stream.
        id: StreamId,
        /// The prompt.
        prompt: String,
    },
    /// A stream was dropped (on request, or after its error).
    Stopped {
        /// The stream.
        id: StreamId,
    },
    /// Something failed: the model load (`id: None`, the thread then ends) or one stream (which
    /// is dropped; the others go on).
    Error {
        /// The stream, if the error is about one.
        id: Option<StreamId>,
        /// What happened.
        error: HeliosError,
    },
}

/// Handle to a running worker thread. Dropping it cancels the current chunk and joins the thread.
pub struct Worker {
    commands: Option<Sender<WorkerCommand>>,
    events: Receiver<WorkerEvent>,
    cancel: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    current: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

fn is_cancelled(error: &HeliosError) -> bool {
    matches!(error, HeliosError::Model(e) if matches!(**e, helios_model::Error::Cancelled))
}

impl Worker {
    /// Spawns the worker thread; it loads the engine for `config` first.
    pub fn spawn(
        config: EngineConfig,
        command_queue: usize,
        result_queue: usize,
    ) -> HeliosResult<Self> {
        Self::spawn_with(
            move || engine::load_engine(&config),
            command_queue,
            result_queue,
        )
    }

    /// Spawns the worker thread with a custom engine loader.
    pub fn spawn_with<F>(load: F, command_queue: usize, result_queue: usize) -> HeliosResult<Self>
    where
        F: FnOnce() -> HeliosResult<Box<dyn ChunkEngine>> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = bounded(command_queue.max(1));
        let (ev_tx, ev_rx) = bounded(result_queue.max(1));
        let cancel = Arc::new(AtomicBool::new(false));
        let shutdown = Arc::new(AtomicBool::new(false));
        let current = Arc::new(AtomicU64::new(0));
        let thread = WorkerThread {
            commands: cmd_rx,
            events: ev_tx,
            cancel: cancel.clone(),
            shutdown: shutdown.clone(),
            current: current.clone(),
            streams: HashMap::new(),
            served: 0,
        };
        let handle = std::thread::Builder::new()
            .name("helios-worker".into())
            .spawn(move || thread.run(load))
            .map_err(|_| HeliosError::WorkerGone)?;
        Ok(Self {
            commands: Some(cmd_tx),
            events: ev_rx,
            cancel,
            shutdown,
            current,
            handle: Some(handle),
        })
    }

    /// Sends a command without blocking; gives it back when the queue is full.
    pub fn try_send(&self, command: WorkerCommand) -> Result<(), TrySendError<WorkerCommand>> {
        match &self.commands {
            Some(tx) => tx.try_send(command),
            None => Err(TrySendError::Disconnected(command)),
        }
    }

    /// The next event, without blocking.
    pub fn try_recv(&self) -> Result<WorkerEvent, TryRecvError> {
        self.events.try_recv()
    }

    /// Cancels the chunk in progress if it belongs to `id` (between two model calls).
    pub fn cancel_if_generating(&self, id: StreamId) {
        if self.current.load(Ordering::Acquire) == id.wrapping_add(1) {
            self.cancel.store(true, Ordering::Release);
        }
    }

    /// Whether the thread is still running.
    pub fn is_alive(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Cancels the current chunk, ends the thread and joins it. Returns `true` once joined cleanly
    /// (`false` if the thread had panicked outside the engine or was already joined).
    pub fn shutdown(&mut self) -> bool {
        self.shutdown.store(true, Ordering::Release);
        self.cancel.store(true, Ordering::Release);
        if let Some(tx) = self.commands.take() {
            let _ = tx.try_send(WorkerCommand::Shutdown);
        }
        // Unblock a worker waiting on a full result channel.
        while self.events.try_recv().is_ok() {}
        match self.handle.take() {
            Some(handle) => handle.join().is_ok(),
            None => false,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    priority: Option<f32>,
    credits: u32,
    last_served: u64,
}

/// Picks the stream that makes the next chunk: a grant, not paused, lowest priority value, then
/// the least recently served.
fn pick_next(slots: &HashMap<StreamId, Slot>) -> Option<StreamId> {
    slots
        .iter()
        .filter_map(|(id, s)| match s.priority {
            Some(p) if s.credits > 0 => Some((p, s.last_served, *id)),
            _ => None,
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
        .map(|(_, _, id)| id)
}

struct WorkerThread {
    commands: Receiver<WorkerCommand>,
    events: Sender<WorkerEvent>,
    cancel: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    current: Arc<AtomicU64>,
    streams: HashMap<StreamId, Slot>,
    served: u64,
}

impl WorkerThread {
    /// Sends an event, blocking while the game has not drained the channel; gives up on shutdown.
    fn emit(&self, mut event: WorkerEvent) -> bool {
        loop {
            match self.events.send_timeout(event, Duration::from_millis(50)) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(back)) => {
                    if self.shutdown.load(Ordering::Acquire) {
                        return false;
                    }
                    event = back;
                }
                Err(SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }

    fn run<F>(mut self, load: F)
    where
        F: FnOnce() -> HeliosResult<Box<dyn ChunkEngine>>,
    {
        let mut engine = match catch_unwind(AssertUnwindSafe(load)) {
            Ok(Ok(engine)) => engine,
            Ok(Err(error)) => {
                self.emit(WorkerEvent::Error { id: None, error });
                return;
            }
            Err(panic) => {
                let error = HeliosError::WorkerPanicked(panic_message(&*panic));
                self.emit(WorkerEvent::Error { id: None, error });
                return;
            }
        };
        if !self.emit(WorkerEvent::Loaded) {
            return;
        }
        let mut idle = false;
        loop {
            // Drain commands; block (with a timeout, to notice shutdown) only when idle.
            loop {
                let next = if idle {
                    match self.commands.recv_timeout(Duration::from_millis(50)) {
                        Ok(c) => Ok(c),
                        Err(RecvTimeoutError::Timeout) => Err(TryRecvError::Empty),
                        Err(RecvTimeoutError::Disconnected) => Err(TryRecvError::Disconnected),
                    }
                } else {
                    self.commands.try_recv()
                };
                idle = false;
                match next {
                    Ok(WorkerCommand::Shutdown) | Err(TryRecvError::Disconnected) => return,
                    Ok(command) => {
                        if !self.handle(engine.as_mut(), command) {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            let Some(id) = pick_next(&self.streams) else {
                idle = true;
                continue;
            };
            if !self.generate(engine.as_mut(), id) {
                return;
            }
        }
    }

    /// Runs one command; `false` when the game is gone.
    fn handle(&mut self, engine: &mut dyn ChunkEngine, command: WorkerCommand) -> bool {
        let guarded =
            |f: &mut dyn FnMut() -> HeliosResult<()>| match catch_unwind(AssertUnwindSafe(f)) {
                Ok(r) => r,
                Err(panic) => Err(HeliosError::WorkerPanicked(panic_message(&*panic))),
            };
        match command {
            WorkerCommand::Start { id, spec } => {
                let spec = *spec;
                match guarded(&mut || engine.start(id, spec.clone())) {
                    Ok(()) => {
                        let last_served = self.served;
                        self.streams.insert(
                            id,
                            Slot {
                                priority: Some(0.0),
                                credits: 0,
                                last_served,
                            },
                        );
                        self.emit(WorkerEvent::Started { id })
                    }
                    Err(error) => self.emit(WorkerEvent::Error {
                        id: Some(id),
                        error,
                    }),
                }
            }
            WorkerCommand::Stop { id } => {
                let _ = guarded(&mut || {
                    engine.stop(id);
                    Ok(())
                });
                self.streams.remove(&id);
                self.emit(WorkerEvent::Stopped { id })
            }
            WorkerCommand::SetPrompt {
                id,
                prompt,
                over_chunks,
            } => match guarded(&mut || engine.set_prompt(id, &prompt, over_chunks)) {
                Ok(()) => self.emit(WorkerEvent::PromptApplied { id, prompt }),
                Err(error) => self.emit(WorkerEvent::Error {
                    id: Some(id),
                    error,
                }),
            },
            WorkerCommand::SetImage { id, image } => {
                let image = *image;
                match guarded(&mut || engine.set_image(id, image.clone())) {
                    Ok(()) => true,
                    Err(error) => self.emit(WorkerEvent::Error {
                        id: Some(id),
                        error,
                    }),
                }
            }
            WorkerCommand::SetPriority { id, priority } => {
                if let Some(slot) = self.streams.get_mut(&id) {
                    slot.priority = priority;
                }
                true
            }
            WorkerCommand::Grant { id, chunks } => {
                if let Some(slot) = self.streams.get_mut(&id) {
                    slot.credits = slot.credits.saturating_add(chunks);
                }
                true
            }
            WorkerCommand::Shutdown => false,
        }
    }

    /// Makes one chunk of stream `id`; `false` when the game is gone.
    fn generate(&mut self, engine: &mut dyn ChunkEngine, id: StreamId) -> bool {
        self.cancel.store(false, Ordering::Release);
        self.current.store(id.wrapping_add(1), Ordering::Release);
        let started = std::time::Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| engine.next_chunk(id, &self.cancel)));
        self.current.store(0, Ordering::Release);
        self.served += 1;
        if let Some(slot) = self.streams.get_mut(&id) {
            slot.last_served = self.served;
        }
        let error = match result {
            Ok(Ok(chunk)) => {
                if let Some(slot) = self.streams.get_mut(&id) {
                    slot.credits = slot.credits.saturating_sub(1);
                }
                let (w, h) = (chunk.width as usize, chunk.height as usize);
                let frames = chunk
                    .frames
                    .into_iter()
                    .map(|pixels| Frame {
                        stats: FrameStats::of_rgba(&pixels, w, h),
                        pixels,
                    })
                    .collect();
                return self.emit(WorkerEvent::Chunk {
                    id,
                    index: chunk.index,
                    width: chunk.width,
                    height: chunk.height,
                    frames,
                    seconds: started.elapsed().as_secs_f32(),
                });
            }
            Ok(Err(error)) if is_cancelled(&error) => return true,
            Ok(Err(error)) => error,
            Err(panic) => HeliosError::WorkerPanicked(panic_message(&*panic)),
        };
        // The stream is in an unknown state: drop it; the others go on.
        let _ = catch_unwind(AssertUnwindSafe(|| engine.stop(id)));
        self.streams.remove(&id);
        self.emit(WorkerEvent::Error {
            id: Some(id),
            error,
        }) && self.emit(WorkerEvent::Stopped { id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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

    /// A stream on the embedded tiny model (the settings' defaults).
    fn spec(width: usize) -> Box<StreamSpec> {
        let s = crate::settings::HeliosSettings::default();
        Box::new(StreamSpec {
            prompt: "a lighthouse keeper, calm expression".into(),
            negative_prompt: None,
            height: s.height as usize,
            width,
            steps: s.steps,
            guidance_scale: s.guidance_scale,
            seed: 7,
            amplify_first_chunk: false,
            max_sequence_length: s.max_sequence_length,
            image: None,
        })
    }

    fn tiny() -> EngineConfig {
        EngineConfig {
            model_dir: crate::settings::HeliosSettings::embedded_model_dir(),
            backend: crate::settings::HeliosBackend::NdArray,
            shared_wgpu: None,
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

    /// The next event that is not progress.
    fn next_non_progress(w: &Worker) -> WorkerEvent {
        loop {
            match next_event(w) {
                WorkerEvent::Generating { .. } => {}
                e => return e,
            }
        }
    }

    #[test]
    fn real_model_streams_a_bad_request_drops_one_stream_and_another_runs() {
        let mut w = Worker::spawn(tiny(), 8, 2).unwrap();
        assert!(matches!(next_event(&w), WorkerEvent::Loaded));
        // 100 is not a multiple of the tiny model's 64: the stream fails, the worker goes on.
        w.try_send(WorkerCommand::Start {
            id: 1,
            spec: spec(100),
        })
        .unwrap();
        match next_non_progress(&w) {
            WorkerEvent::Error {
                id: Some(1),
                error: HeliosError::Model(e),
            } => {
                assert!(matches!(*e, helios_model::Error::InvalidRequest(_)), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let width = crate::settings::HeliosSettings::default().width as usize;
        w.try_send(WorkerCommand::Start {
            id: 2,
            spec: spec(width),
        })
        .unwrap();
        w.try_send(WorkerCommand::Grant { id: 2, chunks: 2 })
            .unwrap();
        assert!(matches!(
            next_non_progress(&w),
            WorkerEvent::Started { id: 2 }
        ));
        let mut chunks = Vec::new();
        while chunks.len() < 2 {
            if let WorkerEvent::Chunk {
                id: 2,
                index,
                width: fw,
                frames,
                ..
            } = next_non_progress(&w)
            {
                assert_eq!(fw as usize, width);
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
            next_non_progress(&w),
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
            model_dir: "/nonexistent/helios".into(),
            backend: crate::settings::HeliosBackend::NdArray,
            shared_wgpu: None,
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
}
