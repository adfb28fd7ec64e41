//! The renderer: a smooth, anti-aliased cartoon face from signed distances.
//!
//! Coordinates are fractions of the image size, so any size draws the same face. Every shape is
//! a signed distance (negative inside); its coverage of a pixel is a one-pixel ramp, which gives
//! clean anti-aliased edges without supersampling.

use image::{Rgb, RgbImage};

use crate::character::{Character, HairStyle};
use crate::pose::FacePose;

type Rgbf = [f32; 3];

/// Vertical position of the head centre (fraction of the image height).
pub(crate) const HEAD_CY: f32 = 0.5;
/// Vertical radius of the head.
const HEAD_RY: f32 = 0.36;
/// Horizontal radius of an average head (scaled by the face width).
const HEAD_RX: f32 = 0.28;
/// Eye centres: horizontal distance from the face's centre line, and height.
pub(crate) const EYE_DX: f32 = 0.11;
pub(crate) const EYE_Y: f32 = -0.01;
const EYE_RX: f32 = 0.05;
const EYE_RY: f32 = 0.036;
/// Brow rest height, raise range and angle range.
const BROW_Y: f32 = -0.125;
const BROW_RAISE: f32 = 0.035;
const BROW_TILT: f32 = 0.05;
const BROW_INNER: f32 = 0.05;
const BROW_OUTER: f32 = 0.165;
const BROW_R: f32 = 0.02;
/// Mouth centre height, half-width, line thickness, curve depth, jaw drop.
pub(crate) const MOUTH_Y: f32 = 0.18;
const MOUTH_W: f32 = 0.1;
const MOUTH_T: f32 = 0.032;
const MOUTH_CURVE: f32 = 0.05;
const MOUTH_DROP: f32 = 0.09;
const MOUTH_WAVE: f32 = 0.012;

/// How far the head moves from its rest in a clip (offset and the tilt's sweep at the mouth), plus
/// a pixel of anti-aliasing at 128: the margin of [`expression_regions`].
const MOTION_MARGIN: f32 = 0.035;

/// Where a face's expression is drawn, as fractions of the image (`[x0, y0, x1, y1]`, x right, y
/// down): the brows and eyes, then the mouth, at every emotion, syllable and blink, wherever the
/// head moves in a clip. Everything else in a frame (hair, head, shoulders, background) is the
/// same whatever the character feels or says.
pub fn expression_regions() -> [[f32; 4]; 2] {
    let m = MOTION_MARGIN;
    // Brows: the highest raise and the steepest tilt, with their thickness; eyes wide open.
    let brow_top = BROW_Y - BROW_RAISE - BROW_TILT - BROW_R;
    let eye_bottom = EYE_Y + EYE_RY * 1.3;
    let brow_half_width = BROW_OUTER + BROW_R;
    // Mouth: the widest (a smile, 1.15 wide), the highest corners and the deepest drop.
    let mouth_half_width = MOUTH_W * 1.15;
    let mouth_top = MOUTH_Y - MOUTH_CURVE * 0.5 - MOUTH_T * 0.5 - MOUTH_WAVE;
    let mouth_bottom = MOUTH_Y + MOUTH_CURVE * 0.5 + MOUTH_T * 0.5 + MOUTH_DROP + MOUTH_WAVE;
    [
        [
            0.5 - brow_half_width - m,
            HEAD_CY + brow_top - m,
            0.5 + brow_half_width + m,
            HEAD_CY + eye_bottom + m,
        ],
        [
            0.5 - mouth_half_width - m,
            HEAD_CY + mouth_top - m,
            0.5 + mouth_half_width + m,
            HEAD_CY + mouth_bottom + m,
        ],
    ]
}

fn scale(c: Rgbf, k: f32) -> Rgbf {
    [c[0] * k, c[1] * k, c[2] * k]
}

fn blend(dst: &mut Rgbf, src: Rgbf, a: f32) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += (s - *d) * a;
    }
}

/// Coverage of a pixel by a shape at signed distance `d` (pixel size `px`).
fn cover(d: f32, px: f32) -> f32 {
    (0.5 - d / px).clamp(0.0, 1.0)
}

/// Approximate signed distance to an axis-aligned ellipse centred at the origin.
fn ellipse(u: f32, v: f32, rx: f32, ry: f32) -> f32 {
    let k = ((u / rx).powi(2) + (v / ry).powi(2)).sqrt();
    let g = ((u / (rx * rx)).powi(2) + (v / (ry * ry)).powi(2)).sqrt();
    if g < 1e-6 {
        return -rx.min(ry);
    }
    (k - 1.0) * k / g
}

/// Signed distance to a segment from `a` to `b` with radius `r`.
fn capsule(p: [f32; 2], a: [f32; 2], b: [f32; 2], r: f32) -> f32 {
    let pa = [p[0] - a[0], p[1] - a[1]];
    let ba = [b[0] - a[0], b[1] - a[1]];
    let h = ((pa[0] * ba[0] + pa[1] * ba[1]) / (ba[0] * ba[0] + ba[1] * ba[1])).clamp(0.0, 1.0);
    let dx = pa[0] - ba[0] * h;
    let dy = pa[1] - ba[1] * h;
    (dx * dx + dy * dy).sqrt() - r
}

/// Per-frame constants of the drawing.
struct Scene {
    skin: Rgbf,
    hair: Rgbf,
    brow: Rgbf,
    iris: Rgbf,
    shirt: Rgbf,
    mouth: Rgbf,
    style: HairStyle,
    rx: f32,
    cx: f32,
    cy: f32,
    cos: f32,
    sin: f32,
    light: [f32; 3],
    pose: FacePose,
}

/// Draws `character` in `pose` as a `size` x `size` image.
pub fn render(character: &Character, pose: &FacePose, size: u32) -> RgbImage {
    let skin = character.skin_rgb();
    let hair = character.hair_rgb();
    let brow = [
        (hair[0] * 0.55).min(skin[0] * 0.4),
        (hair[1] * 0.55).min(skin[1] * 0.4),
        (hair[2] * 0.55).min(skin[2] * 0.4),
    ];
    let mouth = [skin[0] * 0.3 + 0.08, skin[1] * 0.2, skin[2] * 0.22];
    let ld = pose.light_direction.clamp(-1.0, 1.0);
    let norm = (ld * ld * 0.5625 + 0.35 * 0.35 + 0.65 * 0.65).sqrt();
    let scene = Scene {
        skin,
        hair,
        brow,
        iris: character.eye_rgb(),
        shirt: character.shirt_rgb(),
        mouth,
        style: character.hair_style,
        rx: HEAD_RX * character.face_width,
        cx: 0.5 + pose.head_x,
        cy: HEAD_CY + pose.head_y,
        cos: pose.tilt.cos(),
        sin: pose.tilt.sin(),
        light: [ld * 0.75 / norm, -0.35 / norm, 0.65 / norm],
        pose: *pose,
    };
    let s = size.max(1) as f32;
    let px = 1.0 / s;
    let mut img = RgbImage::new(size, size);
    for (x, y, pixel) in img.enumerate_pixels_mut() {
        let c = shade(&scene, (x as f32 + 0.5) * px, (y as f32 + 0.5) * px, px);
        *pixel = Rgb(c.map(|v| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8));
    }
    img
}

/// The colour of the point (`fx`, `fy`) of the image.
fn shade(sc: &Scene, fx: f32, fy: f32, px: f32) -> Rgbf {
    let p = &sc.pose;
    let du = fx - sc.cx;
    let dv = fy - sc.cy;
    // Face-local coordinates (the head tilts about its centre).
    let u = du * sc.cos + dv * sc.sin;
    let v = -du * sc.sin + dv * sc.cos;
    let rx = sc.rx;

    // Background: a muted wall, brighter on the lit side and towards the top.
    let bg_light = (0.9 + 0.15 * p.light_direction * (fx - 0.5) * 2.0) * (1.05 - 0.2 * fy);
    let mut col = scale([0.46, 0.50, 0.54], bg_light);
    let mut figure = 0.0f32;

    // Long hair falls behind the head.
    if sc.style == HairStyle::Long {
        let d = ellipse(u, v - 0.04, rx + 0.07, 0.44).max(v - 0.42);
        let a = cover(d, px);
        blend(&mut col, scale(sc.hair, 0.8), a);
        figure = figure.max(a);
    }
    // Shoulders and neck.
    let a = cover(ellipse(u, v - 0.5, 0.42, 0.2), px);
    blend(&mut col, sc.shirt, a);
    figure = figure.max(a);
    let d = (u.abs() - 0.085).max(0.2 - v).max(v - 0.4);
    let a = cover(d, px);
    blend(&mut col, scale(sc.skin, 0.8), a);
    figure = figure.max(a);
    // Ears and head.
    for side in [-1.0f32, 1.0] {
        let a = cover(ellipse(u - side * rx, v - 0.02, 0.035, 0.06), px);
        blend(&mut col, scale(sc.skin, 0.92), a);
        figure = figure.max(a);
    }
    let a = cover(ellipse(u, v, rx, HEAD_RY), px);
    blend(&mut col, sc.skin, a);
    figure = figure.max(a);
    // Nose: a soft shadow.
    let a = cover(ellipse(u, v - 0.085, 0.028, 0.02), px);
    blend(&mut col, scale(sc.skin, 0.88), a);

    // Hair cap, clipped by a hairline that comes down at the temples.
    let hairline = -0.235 + 0.28 * (u / rx).powi(6);
    let cap = if sc.style == HairStyle::Curly {
        let ang = v.atan2(u);
        ellipse(u, v + 0.02, rx + 0.035, HEAD_RY + 0.04) + 0.012 * (ang * 14.0).sin()
    } else {
        ellipse(u, v + 0.015, rx + 0.025, HEAD_RY + 0.035)
    };
    let a = cover(cap.max(v - hairline), px);
    blend(&mut col, sc.hair, a);
    figure = figure.max(a);
    if sc.style == HairStyle::Bun {
        let a = cover(ellipse(u, v + 0.41, 0.085, 0.075), px);
        blend(&mut col, scale(sc.hair, 0.9), a);
        figure = figure.max(a);
    }

    draw_eyes(sc, &mut col, u, v, px);
    draw_brows(sc, &mut col, u, v, px);
    draw_mouth(sc, &mut col, u, v, px);

    // Light: a directional term on a bulging figure, then the tint and intensity.
    let nx = (u / (rx + 0.12)).clamp(-1.0, 1.0);
    let ny = (v / (HEAD_RY + 0.12)).clamp(-1.0, 1.0);
    let nz = (1.0 - nx * nx - ny * ny).max(0.0).sqrt();
    let diffuse = (nx * sc.light[0] + ny * sc.light[1] + nz * sc.light[2]).max(0.0);
    let fig_light = 0.55 + 0.5 * diffuse;
    let light = bg_light + (fig_light - bg_light) * figure;
    let k = light * p.light_intensity;
    [
        col[0] * k * p.light_tint[0],
        col[1] * k * p.light_tint[1],
        col[2] * k * p.light_tint[2],
    ]
}

fn draw_eyes(sc: &Scene, col: &mut Rgbf, u: f32, v: f32, px: f32) {
    let p = &sc.pose;
    let open = p.eye_open.max(0.0);
    let ry = EYE_RY * open.max(1.0);
    for side in [-1.0f32, 1.0] {
        let eu = u - side * EYE_DX;
        let ev = v - EYE_Y;
        if eu.abs() > EYE_RX + 0.02 || ev.abs() > ry + 0.02 {
            continue;
        }
        let d_eye = ellipse(eu, ev, EYE_RX, ry);
        // The upper lid comes down as the eye closes.
        let lid = -ry + (1.0 - open.min(1.0)) * 2.0 * ry;
        let d_vis = d_eye.max(lid - ev);
        blend(col, scale(sc.skin, 0.9), cover(d_eye, px));
        blend(col, [0.97, 0.97, 0.95], cover(d_vis, px));
        let d_iris = (eu * eu + (ev - 0.004).powi(2)).sqrt() - 0.024;
        blend(col, sc.iris, cover(d_iris.max(d_vis), px));
        let d_pupil = (eu * eu + (ev - 0.004).powi(2)).sqrt() - 0.011;
        blend(col, [0.03, 0.03, 0.04], cover(d_pupil.max(d_vis), px));
        let d_glint = ((eu + 0.008).powi(2) + (ev + 0.006).powi(2)).sqrt() - 0.005;
        blend(col, [1.0, 1.0, 1.0], cover(d_glint.max(d_vis), px));
        // Outline and lid edge (a closed eye is a line).
        let outline = d_eye.abs() - 0.003;
        blend(col, scale(sc.brow, 0.8), cover(outline, px) * 0.8);
        let edge = (ev - lid).abs().max(0.0) - 0.0035;
        blend(col, scale(sc.brow, 0.7), cover(edge.max(d_eye - 0.002), px));
    }
}

fn draw_brows(sc: &Scene, col: &mut Rgbf, u: f32, v: f32, px: f32) {
    let p = &sc.pose;
    let by = BROW_Y - p.brow_raise * BROW_RAISE;
    let tilt = p.brow_angle * BROW_TILT;
    for side in [-1.0f32, 1.0] {
        let inner = [side * BROW_INNER, by + tilt];
        let outer = [side * BROW_OUTER, by - tilt + 0.006];
        let d = capsule([u, v], inner, outer, BROW_R);
        blend(col, sc.brow, cover(d, px));
    }
}

fn draw_mouth(sc: &Scene, col: &mut Rgbf, u: f32, v: f32, px: f32) {
    let p = &sc.pose;
    let w = MOUTH_W * p.mouth_width.max(0.2);
    if u.abs() > w + 0.02 {
        return;
    }
    let t = (u / w).clamp(-1.0, 1.0);
    let k = p.mouth_curve * MOUTH_CURVE;
    // Centre line: the corners rise for a smile (positive curve), drop for a frown.
    let centre = MOUTH_Y + k * 0.5 - k * t * t
        + p.mouth_wave * MOUTH_WAVE * (t * std::f32::consts::PI).sin();
    let slope = (-2.0 * k * t
        + p.mouth_wave * MOUTH_WAVE * std::f32::consts::PI * (t * std::f32::consts::PI).cos())
        / w;
    let drop = p.mouth_open.max(0.0) * MOUTH_DROP * (1.0 - t * t).max(0.0).sqrt();
    let upper = centre - MOUTH_T * 0.5;
    let lower = centre + MOUTH_T * 0.5 + drop;
    let d_vert = (upper - v).max(v - lower) / (1.0 + slope * slope).sqrt();
    let d = d_vert.max(u.abs() - w);
    blend(col, sc.mouth, cover(d, px));
    // Teeth show along the top of a wide-open smile.
    if drop > 0.01 && p.mouth_curve > 0.3 {
        let d_teeth = (upper + 0.004 - v)
            .max(v - (upper + 0.4 * drop))
            .max(u.abs() - 0.85 * w);
        blend(col, [0.95, 0.93, 0.88], cover(d_teeth, px) * 0.9);
    }
}
