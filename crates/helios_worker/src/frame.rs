//! A decoded frame as the worker hands it over: its size, RGBA8 rows on the CPU or rows left in a
//! buffer of the model's wgpu device ([`GpuFrameBuffer`]), and its colour statistics
//! ([`FrameStats`]).
//!
//! The buffer is a plain `wgpu::Buffer` (wgpu 29, the crate both burn and Bevy use): a renderer on
//! the same device copies a GPU-resident frame into its texture from it.

use std::any::Any;
use std::sync::Arc;

pub(crate) mod pack;

/// Side of the grid of mean colours computed for each frame ([`FrameStats`]).
pub const STATS_GRID: usize = 4;

/// wgpu's required alignment of `bytes_per_row` in buffer-texture copies.
pub(crate) const COPY_ROW_ALIGNMENT: u32 = 256;

/// `width * 4` rounded up to the multiple of 256 bytes a buffer-to-texture copy needs per row (the
/// row pitch of a [`GpuFrameBuffer`], and of a staging buffer for a CPU frame).
pub fn padded_bytes_per_row(width: u32) -> u32 {
    (width * 4).div_ceil(COPY_ROW_ALIGNMENT) * COPY_ROW_ALIGNMENT
}

/// A frame side as the `u32` textures use; an error when it does not fit.
pub(crate) fn texture_side(pixels: usize) -> crate::WorkerResult<u32> {
    u32::try_from(pixels).map_err(|_| {
        crate::WorkerError::from(helios_model::Error::InvalidRequest(format!(
            "frame side {pixels} does not fit a texture"
        )))
    })
}

/// Mean colours of a frame, on a [`STATS_GRID`] x [`STATS_GRID`] grid of equal cells (row-major,
/// top-left first), linear 0..1 sRGB-encoded values as stored in the frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrameStats {
    /// Mean RGB of each cell.
    pub grid: [[f32; 3]; STATS_GRID * STATS_GRID],
}

impl FrameStats {
    /// Computes the grid of an RGBA8 row-major frame (samples every 4th pixel; cheap).
    pub fn of_rgba(pixels: &[u8], width: usize, height: usize) -> Self {
        let mut sums = [[0f64; 4]; STATS_GRID * STATS_GRID];
        if width == 0 || height == 0 || pixels.len() < width * height * 4 {
            return Self::default();
        }
        for y in (0..height).step_by(2) {
            let cy = y * STATS_GRID / height;
            for x in (0..width).step_by(2) {
                let cx = x * STATS_GRID / width;
                let i = (y * width + x) * 4;
                let cell = &mut sums[cy * STATS_GRID + cx];
                cell[0] += f64::from(pixels[i]);
                cell[1] += f64::from(pixels[i + 1]);
                cell[2] += f64::from(pixels[i + 2]);
                cell[3] += 1.0;
            }
        }
        let mut grid = [[0f32; 3]; STATS_GRID * STATS_GRID];
        for (out, sum) in grid.iter_mut().zip(sums) {
            if sum[3] > 0.0 {
                for c in 0..3 {
                    out[c] = (sum[c] / sum[3] / 255.0) as f32;
                }
            }
        }
        Self { grid }
    }

    /// Mean colour of the cells that overlap the normalised rectangle `[x0, y0] .. [x1, y1]`
    /// (0..1, y down). An empty selection gives the whole frame's mean.
    pub fn region_mean(&self, x0: f32, y0: f32, x1: f32, y1: f32) -> [f32; 3] {
        let n = STATS_GRID as f32;
        let cell = |v: f32| ((v.clamp(0.0, 1.0) * n).floor() as usize).min(STATS_GRID - 1);
        let (cx0, cx1) = (cell(x0.min(x1)), cell(x0.max(x1) - 1e-6));
        let (cy0, cy1) = (cell(y0.min(y1)), cell(y0.max(y1) - 1e-6));
        let mut acc = [0f32; 3];
        let mut count = 0.0;
        for cy in cy0..=cy1 {
            for cx in cx0..=cx1 {
                let c = self.grid[cy * STATS_GRID + cx];
                for k in 0..3 {
                    acc[k] += c[k];
                }
                count += 1.0;
            }
        }
        if count == 0.0 {
            return acc;
        }
        acc.map(|v| v / count)
    }
}

/// One decoded frame: its size, RGBA8 pixels (row-major) or a frame left on the GPU, and its
/// colour statistics.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA8, row-major, `width * height * 4` bytes; empty for a GPU-resident frame.
    pub pixels: Vec<u8>,
    /// Mean colours, computed on the worker thread.
    pub stats: FrameStats,
    /// The frame in a buffer of the model's wgpu device: only with the wgpu backend on a shared
    /// device and [`EngineConfig::gpu_frames`](crate::EngineConfig::gpu_frames).
    pub gpu: Option<GpuFrameRef>,
}

impl Frame {
    /// A CPU frame from RGBA8 rows of `width` x `height` pixels, with its statistics (a side
    /// beyond `u32::MAX` is stored as `u32::MAX`: no texture holds such a frame anyway).
    pub fn from_rgba(pixels: Vec<u8>, width: usize, height: usize) -> Self {
        let side = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            width: side(width),
            height: side(height),
            stats: FrameStats::of_rgba(&pixels, width, height),
            pixels,
            gpu: None,
        }
    }
}

/// The frames of one chunk as RGBA8 rows (each padded to 256 bytes) in a buffer of the model's
/// wgpu device, one frame after the other.
///
/// It keeps the model's tensor memory behind the buffer alive (so the model's memory pool does
/// not hand that slice to another tensor) until the last [`GpuFrameRef`] to it is dropped: the
/// render side drops its references only after the copies from it were submitted.
pub struct GpuFrameBuffer {
    buffer: wgpu::Buffer,
    offset: u64,
    bytes_per_row: u32,
    width: u32,
    height: u32,
    frames: u32,
    _keep: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for GpuFrameBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuFrameBuffer")
            .field("offset", &self.offset)
            .field("bytes_per_row", &self.bytes_per_row)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

/// Where the frames of a [`GpuFrameBuffer`] are (see [`GpuFrameBuffer::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameLayout {
    /// Byte offset of the first frame in the buffer.
    pub offset: u64,
    /// Bytes per row, a multiple of 256.
    pub bytes_per_row: u32,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Number of frames.
    pub frames: u32,
}

impl GpuFrameBuffer {
    /// The frames laid out as `layout` says in `buffer`; `keep` holds whatever owns the memory.
    pub(crate) fn new(
        buffer: wgpu::Buffer,
        layout: FrameLayout,
        keep: Box<dyn Any + Send + Sync>,
    ) -> Self {
        Self {
            buffer,
            offset: layout.offset,
            bytes_per_row: layout.bytes_per_row,
            width: layout.width,
            height: layout.height,
            frames: layout.frames,
            _keep: keep,
        }
    }

    /// The wgpu buffer (of the model's device) holding every frame of the chunk.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Byte offset of frame `index` in [`Self::buffer`].
    pub fn frame_offset(&self, index: u32) -> u64 {
        self.offset + u64::from(index) * u64::from(self.bytes_per_row) * u64::from(self.height)
    }

    /// Bytes per row (a multiple of 256).
    pub fn bytes_per_row(&self) -> u32 {
        self.bytes_per_row
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of frames.
    pub fn frames(&self) -> u32 {
        self.frames
    }
}

/// One frame of a [`GpuFrameBuffer`].
#[derive(Clone, Debug)]
pub struct GpuFrameRef {
    /// The chunk's buffer (shared by its frames).
    pub buffer: Arc<GpuFrameBuffer>,
    /// The frame within it.
    pub index: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_to_256() {
        assert_eq!(padded_bytes_per_row(64), 256);
        assert_eq!(padded_bytes_per_row(65), 512);
        assert_eq!(padded_bytes_per_row(640), 2560);
    }

    #[test]
    fn stats_grid_and_region() {
        // 8x8: left half red, right half blue.
        let mut px = vec![0u8; 8 * 8 * 4];
        for y in 0..8 {
            for x in 0..8 {
                let i = (y * 8 + x) * 4;
                if x < 4 {
                    px[i] = 255
                } else {
                    px[i + 2] = 255
                }
                px[i + 3] = 255;
            }
        }
        let s = FrameStats::of_rgba(&px, 8, 8);
        assert_eq!(s.region_mean(0.0, 0.0, 0.5, 1.0), [1.0, 0.0, 0.0]);
        assert_eq!(s.region_mean(0.5, 0.0, 1.0, 1.0), [0.0, 0.0, 1.0]);
        assert_eq!(s.region_mean(0.0, 0.0, 1.0, 1.0), [0.5, 0.0, 0.5]);
    }
}
