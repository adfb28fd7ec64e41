//! Pixel-only measurements of a face image.
//!
//! They read only pixels at the positions where the renderer puts the face, relative to the image
//! size, so they apply alike to rendered frames and to a model's (blurrier, noisier) frames. Dark
//! features (brows, mouth) are found by their darkness relative to the skin of the cheeks, so skin
//! tone, tint and dim light change little. Heights (`v`) are fractions of the image height from
//! the nominal head centre, positive downwards; widths (`u`) fractions of the width.

use image::{Rgb, RgbImage};
use rand::Rng;

use crate::render::{EYE_DX, EYE_Y, HEAD_CY, MOUTH_Y};

/// What [`measure`] reads from a face image.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaceMeasurement {
    /// Mean colour of the image (0..1 per channel).
    pub mean_rgb: [f32; 3],
    /// Mean red minus mean blue (positive for warm light, negative for cold).
    pub warmth: f32,
    /// Mean luminance (0..1).
    pub brightness: f32,
    /// Light balance on the face: (right - left) / (right + left) mean luminance; negative when
    /// the light comes from the left.
    pub light_balance: f32,
    /// Dark mass of the mouth region (area, fraction of the image).
    pub mouth_dark_mass: f32,
    /// Height of the dark mouth at its centre (mouth opening).
    pub mouth_height: f32,
    /// Width of the dark mouth.
    pub mouth_width: f32,
    /// Top edge of the mouth at its centre minus at its corners: positive for a smile, negative
    /// for a frown.
    pub mouth_curve: f32,
    /// Top edge of the mouth left of centre minus right of centre (a wavy mouth).
    pub mouth_wave: f32,
    /// Horizontal centre of the mouth (head position).
    pub mouth_center_u: f32,
    /// Height of the top edge of the mouth at its centre.
    pub mouth_top: f32,
    /// Mean height of the brows (more negative = raised).
    pub brow_height: f32,
    /// Inner minus outer brow height: positive when the inner ends are lower (an angry V),
    /// negative when they are raised (sad, worried).
    pub brow_slope: f32,
    /// Eye opening: mean height of the non-skin (white, iris, pupil) part of the eyes.
    pub eye_open: f32,
    /// Mean height of the non-skin part of the eyes.
    pub eye_center: f32,
}

/// An image as floats, addressed by face coordinates.
struct Pixels {
    w: usize,
    h: usize,
    rgb: Vec<[f32; 3]>,
}

impl Pixels {
    fn new(img: &RgbImage) -> Self {
        let rgb = img
            .pixels()
            .map(|p| {
                [
                    p[0] as f32 / 255.0,
                    p[1] as f32 / 255.0,
                    p[2] as f32 / 255.0,
                ]
            })
            .collect();
        Pixels {
            w: img.width() as usize,
            h: img.height() as usize,
            rgb,
        }
    }

    /// The image lightly smoothed (0.7 pixel at 128, scaled with the size), so pixel noise does
    /// not read as features.
    fn smoothed(img: &RgbImage) -> Self {
        let mut px = Self::new(img);
        let sigma = 0.7 * px.w as f32 / 128.0;
        blur(&mut px.rgb, px.w, px.h, sigma);
        px
    }

    fn get(&self, x: usize, y: usize) -> [f32; 3] {
        self.rgb.get(y * self.w + x).copied().unwrap_or([0.0; 3])
    }

    /// Column range covering `u0..u1` (relative to the image centre).
    fn cols(&self, u0: f32, u1: f32) -> std::ops::Range<usize> {
        let a = ((0.5 + u0) * self.w as f32).floor().max(0.0) as usize;
        let b = ((0.5 + u1) * self.w as f32).ceil().max(0.0) as usize;
        a.min(self.w)..b.min(self.w)
    }

    /// Row range covering `v0..v1` (relative to the nominal head centre).
    fn rows(&self, v0: f32, v1: f32) -> std::ops::Range<usize> {
        let a = ((HEAD_CY + v0) * self.h as f32).floor().max(0.0) as usize;
        let b = ((HEAD_CY + v1) * self.h as f32).ceil().max(0.0) as usize;
        a.min(self.h)..b.min(self.h)
    }

    fn u(&self, x: usize) -> f32 {
        (x as f32 + 0.5) / self.w as f32 - 0.5
    }

    fn v(&self, y: usize) -> f32 {
        (y as f32 + 0.5) / self.h as f32 - HEAD_CY
    }
}

fn lum(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn median(mut xs: Vec<f32>) -> f32 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f32::total_cmp);
    xs[xs.len() / 2]
}

/// Skin references from the two cheeks: (luminance, colour) for the left and right cheek.
struct Skin {
    lum: [f32; 2],
    rgb: [[f32; 3]; 2],
}

impl Skin {
    fn new(px: &Pixels) -> Self {
        let mut lum = [0.0; 2];
        let mut rgb = [[0.0; 3]; 2];
        for (i, cu) in [-0.165f32, 0.165].into_iter().enumerate() {
            let mut ch: [Vec<f32>; 3] = Default::default();
            for y in px.rows(0.045, 0.095) {
                for x in px.cols(cu - 0.025, cu + 0.025) {
                    let c = px.get(x, y);
                    for (k, list) in ch.iter_mut().enumerate() {
                        list.push(c[k]);
                    }
                }
            }
            let [r, g, b] = ch.map(median);
            rgb[i] = [r, g, b];
            lum[i] = lum_of(rgb[i]).max(0.02);
        }
        Skin { lum, rgb }
    }

    fn weight(u: f32) -> f32 {
        ((u + 0.165) / 0.33).clamp(0.0, 1.0)
    }

    fn lum_at(&self, u: f32) -> f32 {
        let t = Self::weight(u);
        self.lum[0] + (self.lum[1] - self.lum[0]) * t
    }

    /// Darkness relative to the skin: 0 for skin, 1 for a clearly dark feature.
    fn darkness(&self, px: &Pixels, x: usize, y: usize) -> f32 {
        let rel = lum(px.get(x, y)) / self.lum_at(px.u(x));
        ((1.0 - rel - 0.15) / 0.4).clamp(0.0, 1.0)
    }

    /// How far the colour is from the skin's (0 skin, 1 clearly something else).
    fn non_skin(&self, px: &Pixels, x: usize, y: usize) -> f32 {
        let t = Self::weight(px.u(x));
        let l = self.lum_at(px.u(x));
        let c = px.get(x, y);
        let mut dist = 0.0f32;
        for (k, ck) in c.iter().enumerate() {
            let s = self.rgb[0][k] + (self.rgb[1][k] - self.rgb[0][k]) * t;
            dist += (ck - s).abs() / l;
        }
        ((dist / 3.0 - 0.15) / 0.2).clamp(0.0, 1.0)
    }
}

fn lum_of(c: [f32; 3]) -> f32 {
    lum(c)
}

/// The per-column darkness profile of the mouth region.
struct MouthScan {
    /// (u, top edge v, dark mass) of the columns holding a dark mouth.
    columns: Vec<(f32, f32, f32)>,
    total_mass: f32,
}

const MOUTH_V0: f32 = MOUTH_Y - 0.11;
const MOUTH_V1: f32 = MOUTH_Y + 0.15;

fn scan_mouth(px: &Pixels, skin: &Skin) -> MouthScan {
    let rows = px.rows(MOUTH_V0, MOUTH_V1);
    let dv = 1.0 / px.h as f32;
    let mut columns = Vec::new();
    let mut total_mass = 0.0;
    for x in px.cols(-0.15, 0.15) {
        // Stay inside the jaw: below it the background or hair would read as dark.
        let u = px.u(x);
        let v_max = 0.33 * (1.0 - (u / 0.225).powi(2)).max(0.0).sqrt();
        let profile: Vec<f32> = rows
            .clone()
            .map(|y| {
                if px.v(y) <= v_max {
                    skin.darkness(px, x, y)
                } else {
                    0.0
                }
            })
            .collect();
        let max = profile.iter().copied().fold(0.0f32, f32::max);
        let mass: f32 = profile.iter().sum::<f32>() * dv;
        total_mass += mass / px.w as f32;
        if max < 0.3 || mass < 0.005 {
            continue;
        }
        // Top edge: where the darkness first reaches half its maximum (sub-pixel).
        let half = 0.5 * max;
        let mut top = 0.0;
        let mut prev = 0.0;
        for (i, &d) in profile.iter().enumerate() {
            if d >= half {
                let frac = if d > prev {
                    (half - prev) / (d - prev)
                } else {
                    1.0
                };
                top = px.v(rows.start + i) - dv * (1.0 - frac.clamp(0.0, 1.0));
                break;
            }
            prev = d;
        }
        columns.push((px.u(x), top, mass));
    }
    // Keep the run of adjacent dark columns around the darkest one (stray dark columns elsewhere
    // are not the mouth).
    let du = 1.5 / px.w as f32;
    if let Some(best) = columns
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.2.total_cmp(&b.1.2))
        .map(|(i, _)| i)
    {
        let mut lo = best;
        while lo > 0 && columns[lo].0 - columns[lo - 1].0 <= du {
            lo -= 1;
        }
        let mut hi = best;
        while hi + 1 < columns.len() && columns[hi + 1].0 - columns[hi].0 <= du {
            hi += 1;
        }
        columns = columns[lo..=hi].to_vec();
    }
    MouthScan {
        columns,
        total_mass,
    }
}

fn band_mean(
    columns: &[(f32, f32, f32)],
    keep: impl Fn(f32) -> bool,
    pick: impl Fn(&(f32, f32, f32)) -> f32,
) -> Option<f32> {
    let vals: Vec<f32> = columns.iter().filter(|c| keep(c.0)).map(pick).collect();
    if vals.is_empty() {
        None
    } else {
        Some(vals.iter().sum::<f32>() / vals.len() as f32)
    }
}

/// Measures a face image (any size; the face is where the renderer draws it).
pub fn measure(img: &RgbImage) -> FaceMeasurement {
    let px = Pixels::smoothed(img);
    let mut m = FaceMeasurement::default();
    if px.w == 0 || px.h == 0 {
        return m;
    }
    let n = px.rgb.len() as f32;
    for c in &px.rgb {
        for (acc, ck) in m.mean_rgb.iter_mut().zip(c) {
            *acc += ck / n;
        }
        m.brightness += lum(*c) / n;
    }
    m.warmth = m.mean_rgb[0] - m.mean_rgb[2];
    let side = |u0: f32, u1: f32| {
        let mut sum = 0.0;
        let mut count = 0.0;
        for y in px.rows(-0.1, 0.3) {
            for x in px.cols(u0, u1) {
                sum += lum(px.get(x, y));
                count += 1.0;
            }
        }
        sum / f32::max(count, 1.0)
    };
    let (left, right) = (side(-0.22, -0.02), side(0.02, 0.22));
    m.light_balance = (right - left) / (right + left).max(1e-4);

    let skin = Skin::new(&px);
    let scan = scan_mouth(&px, &skin);
    m.mouth_dark_mass = scan.total_mass;
    let uc = if let (Some(l), Some(r)) = (scan.columns.first(), scan.columns.last()) {
        let width = r.0 - l.0;
        let uc = 0.5 * (l.0 + r.0);
        m.mouth_width = width;
        m.mouth_center_u = uc;
        let centre = |u: f32| (u - uc).abs() <= 0.15 * width;
        let corner = |u: f32| (u - uc).abs() >= 0.3 * width;
        let top_c = band_mean(&scan.columns, centre, |c| c.1).unwrap_or(0.0);
        let top_k = band_mean(&scan.columns, corner, |c| c.1).unwrap_or(top_c);
        m.mouth_top = top_c;
        m.mouth_curve = top_c - top_k;
        m.mouth_height = band_mean(&scan.columns, centre, |c| c.2).unwrap_or(0.0);
        let lmid = band_mean(
            &scan.columns,
            |u| (uc - 0.35 * width..=uc - 0.12 * width).contains(&u),
            |c| c.1,
        );
        let rmid = band_mean(
            &scan.columns,
            |u| (uc + 0.12 * width..=uc + 0.35 * width).contains(&u),
            |c| c.1,
        );
        m.mouth_wave = lmid.unwrap_or(top_c) - rmid.unwrap_or(top_c);
        uc
    } else {
        0.0
    };
    measure_brows(&px, &skin, uc, &mut m);
    measure_eyes(&px, &skin, uc, &mut m);
    m
}

fn measure_brows(px: &Pixels, skin: &Skin, uc: f32, m: &mut FaceMeasurement) {
    let rows = px.rows(-0.205, -0.068);
    let dv = 1.0 / px.h as f32;
    let column_centroid = |x: usize| -> Option<f32> {
        let profile: Vec<f32> = rows.clone().map(|y| skin.darkness(px, x, y)).collect();
        let (peak, max) =
            profile.iter().enumerate().fold(
                (0, 0.0f32),
                |acc, (i, &d)| if d > acc.1 { (i, d) } else { acc },
            );
        if max < 0.3 {
            return None;
        }
        let reach = (0.025 / dv).ceil() as usize;
        let lo = peak.saturating_sub(reach);
        let hi = (peak + reach + 1).min(profile.len());
        let (mut sw, mut sv) = (0.0, 0.0);
        for (i, &d) in profile.iter().enumerate().take(hi).skip(lo) {
            sw += d;
            sv += d * px.v(rows.start + i);
        }
        (sw > 0.0).then(|| sv / sw)
    };
    let band = |a: f32, b: f32| -> Option<f32> {
        let mut vals = Vec::new();
        for sign in [-1.0f32, 1.0] {
            let (u0, u1) = if sign < 0.0 {
                (uc - b, uc - a)
            } else {
                (uc + a, uc + b)
            };
            vals.extend(px.cols(u0, u1).filter_map(column_centroid));
        }
        (!vals.is_empty()).then(|| vals.iter().sum::<f32>() / vals.len() as f32)
    };
    let inner = band(0.045, 0.085);
    let outer = band(0.12, 0.155);
    let fallback = -0.125;
    let (i, o) = (inner.unwrap_or(fallback), outer.unwrap_or(fallback));
    m.brow_height = 0.5 * (i + o);
    m.brow_slope = i - o;
}

fn measure_eyes(px: &Pixels, skin: &Skin, uc: f32, m: &mut FaceMeasurement) {
    let rows = px.rows(EYE_Y - 0.065, EYE_Y + 0.065);
    let dv = 1.0 / px.h as f32;
    let (mut mass, mut cols, mut sv) = (0.0, 0.0, 0.0);
    for sign in [-1.0f32, 1.0] {
        let (u0, u1) = (uc + sign * EYE_DX - 0.035, uc + sign * EYE_DX + 0.035);
        for x in px.cols(u0, u1) {
            cols += 1.0;
            for y in rows.clone() {
                let s = skin.non_skin(px, x, y);
                mass += s * dv;
                sv += s * dv * px.v(y);
            }
        }
    }
    m.eye_open = mass / f32::max(cols, 1.0);
    m.eye_center = if mass > 0.0 { sv / mass } else { EYE_Y };
}

/// The mouth region's darkness, sampled on a fixed grid around the mouth's detected centre and
/// top edge (so head motion does not move it).
fn mouth_patch(img: &RgbImage) -> Vec<f32> {
    let px = Pixels::smoothed(img);
    if px.w == 0 || px.h == 0 {
        return Vec::new();
    }
    let skin = Skin::new(&px);
    let m = measure(img);
    let (uc, vt) = if m.mouth_width > 0.0 {
        (m.mouth_center_u, m.mouth_top)
    } else {
        (0.0, MOUTH_Y)
    };
    let mut out = Vec::with_capacity(24 * 16);
    for j in 0..16 {
        for i in 0..24 {
            let u = uc - 0.12 + 0.24 * (i as f32 + 0.5) / 24.0;
            let v = vt - 0.03 + 0.14 * (j as f32 + 0.5) / 16.0;
            let x = ((0.5 + u) * px.w as f32)
                .floor()
                .clamp(0.0, (px.w - 1) as f32) as usize;
            let y = ((HEAD_CY + v) * px.h as f32)
                .floor()
                .clamp(0.0, (px.h - 1) as f32) as usize;
            out.push(skin.darkness(&px, x, y));
        }
    }
    out
}

/// Mean absolute frame-to-frame change of the mouth region's darkness (0..1), sampled around the
/// detected mouth of each frame so head motion does not count. A silent face scores near 0; a
/// speaking face clearly more.
pub fn mouth_motion(frames: &[RgbImage]) -> f32 {
    let patches: Vec<Vec<f32>> = frames.iter().map(mouth_patch).collect();
    let mut total = 0.0;
    let mut pairs = 0.0;
    for pair in patches.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.is_empty() || a.len() != b.len() {
            continue;
        }
        total += a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        pairs += 1.0;
    }
    if pairs > 0.0 { total / pairs } else { 0.0 }
}

/// A colour histogram (4 x 4 x 4 bins) of the head region, after dividing by the image's mean
/// colour (so the tint and brightness of the light cancel).
fn identity_histogram(img: &RgbImage) -> Vec<f32> {
    let px = Pixels::new(img);
    let mut hist = vec![0.0f32; 64];
    if px.w == 0 || px.h == 0 {
        return hist;
    }
    let n = px.rgb.len() as f32;
    let mut mean = [0.0f32; 3];
    for c in &px.rgb {
        for (acc, ck) in mean.iter_mut().zip(c) {
            *acc += ck / n;
        }
    }
    let mut count = 0.0;
    for y in px.rows(-0.42, 0.34) {
        for x in px.cols(-0.3, 0.3) {
            let c = px.get(x, y);
            let bin = |k: usize| ((c[k] / mean[k].max(1e-3) * 0.5 * 4.0).floor() as usize).min(3);
            hist[bin(0) * 16 + bin(1) * 4 + bin(2)] += 1.0;
            count += 1.0;
        }
    }
    for h in &mut hist {
        *h /= f32::max(count, 1.0);
    }
    hist
}

/// How different two faces look as identities (0 identical .. 1 nothing in common): the total
/// variation distance of their light-normalised colour histograms of the head (hair, skin, eyes).
pub fn identity_distance(a: &RgbImage, b: &RgbImage) -> f32 {
    let (ha, hb) = (identity_histogram(a), identity_histogram(b));
    0.5 * ha.iter().zip(&hb).map(|(x, y)| (x - y).abs()).sum::<f32>()
}

/// A copy of `img` blurred by a Gaussian of `sigma` pixels and with Gaussian noise of standard
/// deviation `noise` (in 0..1 units) added: how a model's frames tend to differ from renders.
pub fn degrade(img: &RgbImage, sigma: f32, noise: f32, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let px = Pixels::new(img);
    let mut buf = px.rgb;
    blur(&mut buf, w, h, sigma);
    let mut out = RgbImage::new(w as u32, h as u32);
    for (p, c) in out.pixels_mut().zip(buf) {
        let mut vals = [0u8; 3];
        for k in 0..3 {
            let n = if noise > 0.0 {
                noise * gaussian(rng)
            } else {
                0.0
            };
            vals[k] = ((c[k] + n).clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
        }
        *p = Rgb(vals);
    }
    out
}

/// Gaussian blur of `sigma` pixels (separable, edges clamped) of a `w` x `h` float image.
fn blur(buf: &mut [[f32; 3]], w: usize, h: usize, sigma: f32) {
    if sigma > 0.05 && w > 0 && h > 0 && buf.len() == w * h {
        let radius = (sigma * 3.0).ceil() as i64;
        let kernel: Vec<f32> = (-radius..=radius)
            .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
            .collect();
        let ksum: f32 = kernel.iter().sum();
        for pass in 0..2 {
            let src = buf.to_vec();
            for y in 0..h {
                for x in 0..w {
                    let mut acc = [0.0f32; 3];
                    for (ki, k) in kernel.iter().enumerate() {
                        let o = ki as i64 - radius;
                        let (sx, sy) = if pass == 0 {
                            ((x as i64 + o).clamp(0, w as i64 - 1) as usize, y)
                        } else {
                            (x, (y as i64 + o).clamp(0, h as i64 - 1) as usize)
                        };
                        let c = src[sy * w + sx];
                        for k3 in 0..3 {
                            acc[k3] += c[k3] * k / ksum;
                        }
                    }
                    buf[y * w + x] = acc;
                }
            }
        }
    }
}

/// A standard normal sample (Box-Muller).
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(1e-7..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
