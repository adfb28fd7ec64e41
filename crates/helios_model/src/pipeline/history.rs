//! The history a chunk is conditioned on: a fixed window of the last latent frames, split into the
//! long / mid / 1x terms the DiT compacts at three time scales.
//!
//! The reference pipelines concatenate every generated chunk onto `history_latents` and slice the
//! last `sum(history_sizes)` frames off it for each chunk; only that window is ever read, so this
//! buffer keeps just the window. Memory stays the same however many chunks a stream makes.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::dit::{History, HistoryTerm};
use crate::error::{Error, Result};

/// Latent frames denoised per chunk (33 video frames); the pipelines' `num_latent_frames_per_chunk`.
pub const LATENT_FRAMES_PER_CHUNK: usize = 9;

/// How the history window is split: the pipelines' `history_sizes = [16, 2, 1]` (long, mid, 1x).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLayout {
    /// Frames of the long term (4x patch).
    pub long: usize,
    /// Frames of the mid term (2x patch).
    pub mid: usize,
    /// Frames of the 1x slot of the short term (the other short slot is the prefix).
    pub short: usize,
    /// Frames denoised per chunk.
    pub chunk: usize,
}

impl Default for HistoryLayout {
    fn default() -> Self {
        Self {
            long: 16,
            mid: 2,
            short: 1,
            chunk: LATENT_FRAMES_PER_CHUNK,
        }
    }
}

/// RoPE frame indices of one chunk's DiT call (`keep_first_frame`): `arange(1 + 16 + 2 + 1 + 9)`
/// split into prefix | long | mid | 1x | current; the short term is `[prefix, 1x]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameIndices {
    /// Short term `[prefix, 1x...]`.
    pub short: Vec<i64>,
    /// Mid term.
    pub mid: Vec<i64>,
    /// Long term.
    pub long: Vec<i64>,
    /// The frames being denoised.
    pub current: Vec<i64>,
}

impl HistoryLayout {
    /// Frames in the window.
    pub fn window(&self) -> usize {
        self.long + self.mid + self.short
    }

    /// The RoPE frame indices (the same for every chunk).
    pub fn indices(&self) -> FrameIndices {
        let range = |from: usize, n: usize| (from..from + n).map(|i| i as i64).collect::<Vec<_>>();
        let long = range(1, self.long);
        let mid = range(1 + self.long, self.mid);
        let one_x = range(1 + self.long + self.mid, self.short);
        let current = range(1 + self.window(), self.chunk);
        let mut short = vec![0];
        short.extend(one_x);
        FrameIndices {
            short,
            mid,
            long,
            current,
        }
    }
}

/// The last [`HistoryLayout::window`] latent frames `[1, c, window, h, w]`, zeros at the start.
#[derive(Debug, Clone)]
pub struct HistoryBuffer<B: Backend> {
    layout: HistoryLayout,
    frames: Tensor<B, 5>,
}

impl<B: Backend> HistoryBuffer<B> {
    /// An all-zero window for latents of `channels x height x width`.
    pub fn zeros(
        layout: HistoryLayout,
        channels: usize,
        height: usize,
        width: usize,
        device: &B::Device,
    ) -> Self {
        let frames = Tensor::zeros([1, channels, layout.window(), height, width], device);
        Self { layout, frames }
    }

    /// The layout.
    pub fn layout(&self) -> HistoryLayout {
        self.layout
    }

    /// The window `[1, c, window, h, w]`.
    pub fn frames(&self) -> &Tensor<B, 5> {
        &self.frames
    }

    /// Appends latents `[1, c, t, h, w]` and keeps the last `window` frames (the pipelines'
    /// `cat([history, latents])[-window:]`).
    pub fn push(&mut self, latents: Tensor<B, 5>) -> Result<()> {
        let [_, c, _, h, w] = self.frames.dims();
        let dims = latents.dims();
        if dims[0] != 1 || dims[1] != c || dims[3] != h || dims[4] != w || dims[2] == 0 {
            return Err(Error::Shape {
                what: "latents appended to the history".into(),
                expected: format!("[1, {c}, t >= 1, {h}, {w}]"),
                got: format!("{dims:?}"),
            });
        }
        let window = self.layout.window();
        let t = dims[2];
        // Built fresh from the frames that stay, so the buffer never keeps dropped frames alive.
        self.frames = if t < window {
            Tensor::cat(
                vec![self.frames.clone().narrow(2, t, window - t), latents],
                2,
            )
        } else {
            latents.narrow(2, t - window, window)
        };
        Ok(())
    }

    /// The three terms for a chunk's DiT calls; `prefix` `[1, c, 1, h, w]` is short-term slot 0
    /// (zeros for the first T2V chunk).
    pub fn terms(&self, prefix: Tensor<B, 5>) -> History<B> {
        let l = self.layout;
        let indices = l.indices();
        let long = self.frames.clone().narrow(2, 0, l.long);
        let mid = self.frames.clone().narrow(2, l.long, l.mid);
        let one_x = self.frames.clone().narrow(2, l.long + l.mid, l.short);
        History {
            short: HistoryTerm {
                latents: Tensor::cat(vec![prefix, one_x], 2),
                indices: indices.short,
            },
            mid: Some(HistoryTerm {
                latents: mid,
                indices: indices.mid,
            }),
            long: Some(HistoryTerm {
                latents: long,
                indices: indices.long,
            }),
        }
    }

    /// Resamples the window's latents to `height x width` (bilinear, frame by frame).
    pub fn resize(&mut self, height: usize, width: usize) {
        self.frames =
            crate::scheduler::pyramid::resize_bilinear(self.frames.clone(), height, width);
    }

    /// Bytes held (flat: the same after any number of chunks).
    pub fn bytes(&self) -> usize {
        self.frames.shape().num_elements() * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::TestBackend;

    fn frames_with_values(values: &[f32]) -> Tensor<TestBackend, 5> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [1, 1, values.len(), 1, 1]),
            &Default::default(),
        )
    }

    fn values(t: Tensor<TestBackend, 5>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap_or_default()
    }

    #[test]
    fn indices_match_the_reference_split() {
        let idx = HistoryLayout::default().indices();
        assert_eq!(idx.short, vec![0, 19]);
        assert_eq!(idx.long, (1..17).collect::<Vec<i64>>());
        assert_eq!(idx.mid, vec![17, 18]);
        assert_eq!(idx.current, (20..29).collect::<Vec<i64>>());
    }

    #[test]
    fn window_keeps_the_last_frames_as_the_readme_describes() {
        let device = Default::default();
        let mut h = HistoryBuffer::<TestBackend>::zeros(HistoryLayout::default(), 1, 1, 1, &device);
        let c0: Vec<f32> = (1..=9).map(|i| i as f32).collect();
        h.push(frames_with_values(&c0)).unwrap();
        let terms = h.terms(frames_with_values(&[100.0]));
        // buffer[-19:] = [10 zeros, c0] -> long = [0 x10, c0[0..5]], mid = c0[6..7], short = [prefix, c0[8]]
        let mut long = vec![0.0; 10];
        long.extend(&c0[..6]);
        assert_eq!(values(terms.long.unwrap().latents), long);
        assert_eq!(values(terms.mid.unwrap().latents), vec![7.0, 8.0]);
        assert_eq!(values(terms.short.latents), vec![100.0, 9.0]);

        let c1: Vec<f32> = (11..=19).map(|i| i as f32).collect();
        h.push(frames_with_values(&c1)).unwrap();
        let bytes = h.bytes();
        let terms = h.terms(frames_with_values(&[1.0]));
        let mut long = vec![0.0];
        long.extend(&c0);
        long.extend(&c1[..6]);
        assert_eq!(values(terms.long.unwrap().latents), long);
        assert_eq!(values(terms.mid.unwrap().latents), vec![17.0, 18.0]);
        for _ in 0..20 {
            h.push(frames_with_values(&c1)).unwrap();
        }
        assert_eq!(h.bytes(), bytes);
        assert!(h.push(Tensor::zeros([1, 2, 1, 1, 1], &device)).is_err());
    }
}
