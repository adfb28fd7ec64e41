//! Frames as the client asked for them: raw RGBA8 rows, PNG or JPEG.

use std::io::Cursor;

use helios_worker::Frame;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};

use crate::protocol::FrameFormat;

/// JPEG quality of [`FrameFormat::Jpeg`].
pub const JPEG_QUALITY: u8 = 85;

/// Each frame's payload in `format`. A frame whose pixels do not match its size (which the
/// worker never produces) is sent as an empty payload rather than failing the chunk.
pub(crate) fn encode_frames(frames: &[Frame], format: FrameFormat) -> Vec<Vec<u8>> {
    frames.iter().map(|f| encode(f, format)).collect()
}

fn encode(frame: &Frame, format: FrameFormat) -> Vec<u8> {
    let (w, h) = (frame.width, frame.height);
    if frame.pixels.len() != w as usize * h as usize * 4 {
        tracing::warn!(
            "helios serve: a {w}x{h} frame has {} bytes",
            frame.pixels.len()
        );
        return Vec::new();
    }
    let mut out = Cursor::new(Vec::new());
    let written = match format {
        FrameFormat::Rgba8 => return frame.pixels.clone(),
        FrameFormat::Png => {
            PngEncoder::new(&mut out).write_image(&frame.pixels, w, h, ExtendedColorType::Rgba8)
        }
        FrameFormat::Jpeg => {
            let rgb: Vec<u8> = frame
                .pixels
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).write_image(
                &rgb,
                w,
                h,
                ExtendedColorType::Rgb8,
            )
        }
    };
    match written {
        Ok(()) => out.into_inner(),
        Err(e) => {
            tracing::warn!("helios serve: encoding a frame as {format:?}: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn frame() -> Frame {
        let pixels: Vec<u8> = (0..8 * 4 * 4).map(|i| (i * 7 % 256) as u8).collect();
        Frame::from_rgba(pixels, 8, 4)
    }

    #[test]
    fn png_decodes_to_the_same_pixels() {
        let f = frame();
        let png = &encode_frames(std::slice::from_ref(&f), FrameFormat::Png)[0];
        let back = image::load_from_memory(png).unwrap().to_rgba8();
        assert_eq!((back.width(), back.height()), (8, 4));
        assert_eq!(back.into_raw(), f.pixels);
    }

    #[test]
    fn jpeg_and_raw_have_the_frame_size() {
        let f = frame();
        let raw = &encode_frames(std::slice::from_ref(&f), FrameFormat::Rgba8)[0];
        assert_eq!(raw, &f.pixels);
        let jpeg = &encode_frames(std::slice::from_ref(&f), FrameFormat::Jpeg)[0];
        let back = image::load_from_memory(jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (8, 4));
    }
}
