//! Conditioning inputs of `helios generate`: an image (`--image`) or a video (`--video`: a folder of
//! PNG/JPEG frames sorted by name, or a video file decoded by `ffmpeg`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use image::{ImageReader, RgbImage};

use crate::output::ffmpeg_available;

/// Reads a picture (PNG, JPEG or GIF) as RGB.
pub fn read_image(path: &Path) -> Result<RgbImage> {
    let reader = ImageReader::open(path)
        .with_context(|| format!("cannot open the image {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read the image {}", path.display()))?;
    let image = reader.decode().with_context(|| {
        format!(
            "cannot decode {} as an image (PNG, JPEG or GIF)",
            path.display()
        )
    })?;
    if image.width() == 0 || image.height() == 0 {
        bail!("the image {} is empty (0 pixels)", path.display());
    }
    Ok(image.to_rgb8())
}

fn is_frame_file(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

/// Reads a video: every PNG/JPEG of a folder in name order, or a video file through `ffmpeg`
/// (scaled to `width x height`).
pub fn read_video(path: &Path, width: usize, height: usize) -> Result<Vec<RgbImage>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list the video folder {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_frame_file(p))
            .collect();
        if files.is_empty() {
            bail!(
                "the video folder {} holds no .png / .jpg frames",
                path.display()
            );
        }
        files.sort();
        return files.iter().map(|f| read_image(f)).collect();
    }
    if !path.is_file() {
        bail!("the video {} does not exist", path.display());
    }
    if !ffmpeg_available() {
        bail!(
            "reading the video file {} needs `ffmpeg` on PATH, and it was not found: install it, or give a folder of PNG/JPEG frames",
            path.display()
        );
    }
    decode_with_ffmpeg(path, width, height)
}

fn decode_with_ffmpeg(path: &Path, width: usize, height: usize) -> Result<Vec<RgbImage>> {
    if width == 0 || height == 0 {
        bail!("cannot decode a video to {width}x{height} frames");
    }
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-vf",
            &format!("scale={width}:{height}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .context("cannot run ffmpeg")?;
    if !out.status.success() {
        bail!(
            "ffmpeg cannot decode the video {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let frame_bytes = width * height * 3;
    let frames: Vec<RgbImage> = out
        .stdout
        .chunks_exact(frame_bytes)
        .filter_map(|px| RgbImage::from_raw(width as u32, height as u32, px.to_vec()))
        .collect();
    if frames.is_empty() {
        bail!("the video {} has no frames", path.display());
    }
    Ok(frames)
}
