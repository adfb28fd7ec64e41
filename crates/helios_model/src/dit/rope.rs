//! 3-axis rotary position embedding of Helios, including the pooled tables of the mid and long
//! history tokens.
//!
//! Port of diffusers `HeliosRotaryPosEmbed` and the RoPE part of `HeliosTransformer3DModel.forward`
//! (transformer_helios.py, diffusers 0.42.1). Tables are built on the host in f64 and handed to the
//! device once per forward as `[1, tokens, 2 * head_dim]` laid out
//! `[cos_t, cos_y, cos_x, sin_t, sin_y, sin_x]`, every frequency repeated twice (interleaved pairs).

/// Host-side RoPE table: `tokens` rows of `2 * head_dim` values.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeTable {
    /// Number of tokens.
    pub tokens: usize,
    /// Row width, `2 * head_dim`.
    pub width: usize,
    /// Row-major values.
    pub values: Vec<f64>,
}

impl RopeTable {
    /// An empty table of the given row width.
    pub fn empty(width: usize) -> Self {
        Self {
            tokens: 0,
            width,
            values: Vec::new(),
        }
    }

    /// Appends the rows of `other` after the rows of `self`.
    pub fn append(&mut self, other: &RopeTable) {
        self.tokens += other.tokens;
        self.values.extend_from_slice(&other.values);
    }
}

/// Frequencies and geometry of the rotary embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct HeliosRope {
    dims: [usize; 3],
    bases: [Vec<f64>; 3],
}

impl HeliosRope {
    /// `rope_dim = (DT, DY, DX)`, each even, summing to the head dim.
    pub fn new(rope_dim: [usize; 3], theta: f64) -> Self {
        // torch: 1 / theta ** (arange(0, dim, 2, f32)[: dim // 2] / dim), in float32.
        let base = |dim: usize| -> Vec<f64> {
            (0..dim / 2)
                .map(|i| {
                    let e = (2 * i) as f32 / dim as f32;
                    // Correctly rounded pow, then the float32 reciprocal torch computes.
                    let p = theta.powf(e as f64) as f32;
                    (1.0f32 / p) as f64
                })
                .collect()
        };
        Self {
            dims: rope_dim,
            bases: [base(rope_dim[0]), base(rope_dim[1]), base(rope_dim[2])],
        }
    }

    /// Row width `2 * head_dim`.
    pub fn width(&self) -> usize {
        2 * self.dims.iter().sum::<usize>()
    }

    /// The un-pooled table as `[channel][t][y][x]` for frames `frames` on a `height x width` grid.
    fn grid(&self, frames: &[i64], height: usize, width: usize) -> Vec<f64> {
        let c = self.width();
        let plane = frames.len() * height * width;
        let mut out = vec![0.0; c * plane];
        let half = c / 2;
        let mut ch = 0;
        for (axis, base) in self.bases.iter().enumerate() {
            for &f in base {
                for rep in 0..2 {
                    let (cos_ch, sin_ch) = (ch + rep, half + ch + rep);
                    for (ti, &frame) in frames.iter().enumerate() {
                        for y in 0..height {
                            for x in 0..width {
                                let pos = match axis {
                                    0 => frame as f64,
                                    1 => y as f64,
                                    _ => x as f64,
                                };
                                // torch multiplies in float32.
                                let angle = (f as f32 * pos as f32) as f64;
                                let idx = (ti * height + y) * width + x;
                                out[cos_ch * plane + idx] = angle.cos();
                                out[sin_ch * plane + idx] = angle.sin();
                            }
                        }
                    }
                }
                ch += 2;
            }
        }
        out
    }

    /// The table for tokens on their own grid: frames `frames`, `height x width` positions
    /// `0..height`, `0..width` (current and short-history tokens).
    pub fn table(&self, frames: &[i64], height: usize, width: usize) -> RopeTable {
        let c = self.width();
        let grid = self.grid(frames, height, width);
        let n = frames.len() * height * width;
        RopeTable {
            tokens: n,
            width: c,
            values: channels_last(&grid, c, n),
        }
    }

    /// The table of compacted history tokens: the grid table of `frames` on `height x width`,
    /// replicate-padded (back/bottom/right) to multiples of `k` and average-pooled by `k` in all
    /// three axes (`k = 2` for mid, `4` for long history).
    pub fn pooled_table(&self, frames: &[i64], height: usize, width: usize, k: usize) -> RopeTable {
        let c = self.width();
        let grid = self.grid(frames, height, width);
        let (t, h, w) = (frames.len(), height, width);
        let (pt, ph, pw) = (t.div_ceil(k), h.div_ceil(k), w.div_ceil(k));
        let plane = t * h * w;
        let n = pt * ph * pw;
        let mut pooled = vec![0.0; c * n];
        let norm = (k * k * k) as f64;
        for ch in 0..c {
            let src = &grid[ch * plane..(ch + 1) * plane];
            for ot in 0..pt {
                for oy in 0..ph {
                    for ox in 0..pw {
                        let mut sum = 0.0;
                        for dt in 0..k {
                            let ti = (ot * k + dt).min(t - 1);
                            for dy in 0..k {
                                let yi = (oy * k + dy).min(h - 1);
                                for dx in 0..k {
                                    let xi = (ox * k + dx).min(w - 1);
                                    sum += src[(ti * h + yi) * w + xi];
                                }
                            }
                        }
                        pooled[ch * n + (ot * ph + oy) * pw + ox] = sum / norm;
                    }
                }
            }
        }
        RopeTable {
            tokens: n,
            width: c,
            values: channels_last(&pooled, c, n),
        }
    }
}

fn channels_last(src: &[f64], c: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; c * n];
    for ch in 0..c {
        for i in 0..n {
            out[i * c + ch] = src[ch * n + i];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_cos_then_sin_with_repeated_pairs() {
        let rope = HeliosRope::new([4, 2, 2], 10000.0);
        let t = rope.table(&[3], 2, 2);
        assert_eq!((t.tokens, t.width), (4, 16));
        // Token (y=1, x=1): channel 0/1 = cos(3 * base_t[0]) = cos(3).
        let row = &t.values[3 * 16..4 * 16];
        assert!((row[0] - 3f64.cos()).abs() < 1e-6);
        assert_eq!(row[0], row[1]);
        assert!((row[8] - 3f64.sin()).abs() < 1e-6);
        // y axis starts at channel 4: cos(1 * 1).
        assert!((row[4] - 1f64.cos()).abs() < 1e-6);
    }

    #[test]
    fn pooling_replicates_the_border() {
        let rope = HeliosRope::new([2, 2, 2], 10000.0);
        // One frame, 1x1 grid, pooled by 2: every padded copy is the same value.
        let plain = rope.table(&[5], 1, 1);
        let pooled = rope.pooled_table(&[5], 1, 1, 2);
        assert_eq!(pooled.tokens, 1);
        for (a, b) in plain.values.iter().zip(&pooled.values) {
            assert!((a - b).abs() < 1e-12);
        }
        // 3 frames pooled by 2 -> 2 temporal cells, the second = mean(frame 2, frame 2).
        let p = rope.pooled_table(&[0, 1, 2], 1, 1, 2);
        let f2 = rope.table(&[2], 1, 1);
        assert_eq!(p.tokens, 2);
        assert!((p.values[12] - f2.values[0]).abs() < 1e-12);
    }
}
