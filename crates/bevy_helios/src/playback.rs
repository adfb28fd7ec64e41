//! Paced playback: a bounded ring of decoded frames per screen, advanced at the video's fps.
//! Pure logic, no ECS access.
//!
//! * Bounded: when chunks arrive faster than they play (the game stalls), the oldest frames are
//!   dropped and counted ([`FrameRing::dropped`]).
//! * Paced: [`FrameRing::advance`] shows one frame per `1 / fps` seconds of game time, however
//!   the ticks fall; a long tick skips frames instead of playing them fast.
//! * No stutter on a late chunk: on an empty ring the last frame is held and each missed frame
//!   counts as an underrun ([`FrameRing::underruns`]).

use std::collections::VecDeque;

pub use helios_worker::{Frame, FrameStats, STATS_GRID};

/// A bounded frame queue with paced playback.
#[derive(Debug)]
pub struct FrameRing {
    frames: VecDeque<Frame>,
    capacity: usize,
    clock: f64,
    started: bool,
    underruns: u64,
    dropped: u64,
    shown: u64,
}

impl FrameRing {
    /// An empty ring that holds at most `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            capacity: capacity.max(1),
            clock: 0.0,
            started: false,
            underruns: 0,
            dropped: 0,
            shown: 0,
        }
    }

    /// Changes the capacity (dropping the oldest frames if needed).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.trim();
    }

    fn trim(&mut self) {
        while self.frames.len() > self.capacity {
            self.frames.pop_front();
            self.dropped += 1;
        }
    }

    /// Appends frames; the oldest are dropped (and counted) beyond the capacity.
    pub fn push(&mut self, frames: impl IntoIterator<Item = Frame>) {
        self.frames.extend(frames);
        self.trim();
    }

    /// Frames waiting to be shown.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Frames that were due while the ring was empty (the last frame was held instead).
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    /// Frames dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Frames shown so far.
    pub fn shown(&self) -> u64 {
        self.shown
    }

    /// Advances playback by `dt` seconds at `fps`; returns the frame to show now, if it changed.
    ///
    /// Playback starts with the first frame that arrives. Each `1 / fps` seconds one frame is
    /// due: if several are due (a long tick), the skipped ones are dropped and the newest due
    /// frame is returned; if none is waiting, the last frame stays and an underrun is counted.
    pub fn advance(&mut self, dt: f64, fps: f64) -> Option<Frame> {
        if !self.started {
            let first = self.frames.pop_front()?;
            self.started = true;
            self.clock = 0.0;
            self.shown += 1;
            return Some(first);
        }
        let period = 1.0 / fps.max(1e-3);
        self.clock += dt.max(0.0);
        // The epsilon absorbs float drift of many small `dt`s summing to a whole period.
        let due = ((self.clock + 1e-9) / period).floor() as u64;
        if due == 0 {
            return None;
        }
        self.clock = (self.clock - due as f64 * period).max(0.0);
        let mut out = None;
        for _ in 0..due {
            match self.frames.pop_front() {
                Some(frame) => {
                    if out.is_some() {
                        self.dropped += 1;
                    }
                    out = Some(frame);
                }
                None => self.underruns += 1,
            }
        }
        if out.is_some() {
            self.shown += 1;
        }
        out
    }

    /// Zeroes the shown, dropped and underrun counts (a new stream counts from zero).
    pub fn reset_counts(&mut self) {
        self.underruns = 0;
        self.dropped = 0;
        self.shown = 0;
    }

    /// Empties the ring and restarts playback (a stopped or restarted stream).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.started = false;
        self.clock = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: u8) -> Vec<Frame> {
        (0..n)
            .map(|i| Frame {
                pixels: vec![i; 4],
                ..Frame::default()
            })
            .collect()
    }

    #[test]
    fn paces_at_fps_regardless_of_tick_rate() {
        let mut ring = FrameRing::new(100);
        ring.push(frames(50));
        let mut shown = vec![ring.advance(0.0, 24.0).unwrap().pixels[0]];
        // 240 Hz ticks for one second of game time at 24 fps: 1 (start) + 24 frames.
        for _ in 0..240 {
            if let Some(f) = ring.advance(1.0 / 240.0, 24.0) {
                shown.push(f.pixels[0]);
            }
        }
        assert_eq!(shown.len(), 25, "{shown:?}");
        assert_eq!(shown, (0..25).collect::<Vec<u8>>());
        assert_eq!(ring.underruns(), 0);
    }

    #[test]
    fn long_tick_skips_instead_of_fast_forwarding() {
        let mut ring = FrameRing::new(100);
        ring.push(frames(20));
        assert_eq!(ring.advance(0.0, 24.0).unwrap().pixels[0], 0);
        // 0.25 s stall: 6 frames due, the newest due one is shown, 5 dropped.
        assert_eq!(ring.advance(0.25, 24.0).unwrap().pixels[0], 6);
        assert_eq!(ring.dropped(), 5);
        assert_eq!(ring.len(), 13);
    }

    #[test]
    fn holds_last_frame_and_counts_underruns() {
        let mut ring = FrameRing::new(10);
        ring.push(frames(2));
        assert!(ring.advance(0.0, 24.0).is_some());
        assert!(ring.advance(1.0 / 24.0, 24.0).is_some());
        assert!(ring.advance(1.0 / 24.0, 24.0).is_none());
        assert!(ring.advance(2.0 / 24.0, 24.0).is_none());
        assert_eq!(ring.underruns(), 3);
        ring.push(frames(1));
        assert!(
            ring.advance(1.0 / 24.0, 24.0).is_some(),
            "resumes at normal pace"
        );
    }

    #[test]
    fn bounded_drops_oldest() {
        let mut ring = FrameRing::new(4);
        ring.push(frames(10));
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.dropped(), 6);
        assert_eq!(ring.advance(0.0, 24.0).unwrap().pixels[0], 6);
    }
}
