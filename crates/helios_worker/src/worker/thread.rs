//! The worker thread itself: its loop (drain commands, pick a stream, make a chunk), the
//! priority scheduling, and panic containment around every engine call.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError};

use super::{ChunkEngine, QualityController, QualityLevel, StreamId, WorkerCommand, WorkerEvent};
use crate::error::{WorkerError, WorkerResult};

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) priority: Option<f32>,
    pub(super) credits: u32,
    pub(super) last_served: u64,
}

/// Picks the stream that makes the next chunk: a grant, not paused, lowest priority value, then
/// the least recently served.
pub(super) fn pick_next(slots: &HashMap<StreamId, Slot>) -> Option<StreamId> {
    slots
        .iter()
        .filter_map(|(id, s)| match s.priority {
            Some(p) if s.credits > 0 => Some((p, s.last_served, *id)),
            _ => None,
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
        .map(|(_, _, id)| id)
}

pub(super) struct WorkerThread {
    commands: Receiver<WorkerCommand>,
    events: Sender<WorkerEvent>,
    cancel: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    current: Arc<AtomicU64>,
    streams: HashMap<StreamId, Slot>,
    quality: HashMap<StreamId, QualityController>,
    served: u64,
}

impl WorkerThread {
    pub(super) fn new(
        commands: Receiver<WorkerCommand>,
        events: Sender<WorkerEvent>,
        cancel: Arc<AtomicBool>,
        shutdown: Arc<AtomicBool>,
        current: Arc<AtomicU64>,
    ) -> Self {
        Self {
            commands,
            events,
            cancel,
            shutdown,
            current,
            streams: HashMap::new(),
            quality: HashMap::new(),
            served: 0,
        }
    }

    /// Sends an event, blocking while the host has not drained the channel; gives up on shutdown.
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

    pub(super) fn run<F>(mut self, load: F)
    where
        F: FnOnce() -> WorkerResult<Box<dyn ChunkEngine>>,
    {
        let mut engine = match catch_unwind(AssertUnwindSafe(load)) {
            Ok(Ok(engine)) => engine,
            Ok(Err(error)) => {
                self.emit(WorkerEvent::Error { id: None, error });
                return;
            }
            Err(panic) => {
                let error = WorkerError::WorkerPanicked(panic_message(&*panic));
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

    /// Runs one command; `false` when the host is gone.
    fn handle(&mut self, engine: &mut dyn ChunkEngine, command: WorkerCommand) -> bool {
        let guarded =
            |f: &mut dyn FnMut() -> WorkerResult<()>| match catch_unwind(AssertUnwindSafe(f)) {
                Ok(r) => r,
                Err(panic) => Err(WorkerError::WorkerPanicked(panic_message(&*panic))),
            };
        match command {
            WorkerCommand::Start {
                id,
                request,
                quality,
            } => {
                let request = *request;
                self.quality.remove(&id);
                match guarded(&mut || engine.start(id, request.clone())) {
                    Ok(()) => {
                        if let Some(policy) = quality {
                            let multiple = engine.size_multiple();
                            match engine.steps(id).and_then(|s| Ok((s, engine.size(id)?))) {
                                Ok((steps, size)) => {
                                    let controller =
                                        QualityController::new(policy, &steps, size, multiple);
                                    self.quality.insert(id, controller);
                                }
                                Err(error) => {
                                    return self.emit(WorkerEvent::Error {
                                        id: Some(id),
                                        error,
                                    });
                                }
                            }
                        }
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
                self.quality.remove(&id);
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
            WorkerCommand::PushVideo { id, frames } => {
                match guarded(&mut || engine.push_video(id, &frames)) {
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

    /// Makes one chunk of stream `id`; `false` when the host is gone.
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
                let seconds = started.elapsed().as_secs_f32();
                let used = match self.adapt(engine, id, seconds, chunk.frames.len()) {
                    Ok(used) => used,
                    Err(error) => {
                        self.quality.remove(&id);
                        if !self.emit(WorkerEvent::Error {
                            id: Some(id),
                            error,
                        }) {
                            return false;
                        }
                        None
                    }
                };
                let size = used.as_ref().map(|l| (l.width, l.height));
                return self.emit(WorkerEvent::Chunk {
                    id,
                    index: chunk.index,
                    frames: chunk.frames,
                    seconds,
                    steps: used.map(|l| l.steps),
                    size,
                });
            }
            Ok(Err(error)) if error.is_cancelled() => return true,
            Ok(Err(error)) => error,
            Err(panic) => WorkerError::WorkerPanicked(panic_message(&*panic)),
        };
        // The stream is in an unknown state: drop it; the others go on.
        let _ = catch_unwind(AssertUnwindSafe(|| engine.stop(id)));
        self.streams.remove(&id);
        self.quality.remove(&id);
        self.emit(WorkerEvent::Error {
            id: Some(id),
            error,
        }) && self.emit(WorkerEvent::Stopped { id })
    }

    /// Feeds the chunk's time to the stream's adaptive quality; returns the level the chunk was
    /// made at (`None` without adaptive quality) after moving the stream to a new level if asked.
    fn adapt(
        &mut self,
        engine: &mut dyn ChunkEngine,
        id: StreamId,
        seconds: f32,
        frames: usize,
    ) -> WorkerResult<Option<QualityLevel>> {
        let Some(controller) = self.quality.get_mut(&id) else {
            return Ok(None);
        };
        let used = controller.current().clone();
        if let Some(next) = controller.observe(seconds, frames) {
            let apply = || -> WorkerResult<()> {
                if next.steps != used.steps {
                    engine.set_steps(id, next.steps.clone())?;
                }
                if (next.width, next.height) != (used.width, used.height) {
                    engine.set_size(id, next.width, next.height)?;
                }
                Ok(())
            };
            match catch_unwind(AssertUnwindSafe(apply)) {
                Ok(result) => result?,
                Err(panic) => return Err(WorkerError::WorkerPanicked(panic_message(&*panic))),
            }
        }
        Ok(Some(used))
    }
}
