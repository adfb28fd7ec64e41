//! Preview images written during training: VAE reconstructions beside their inputs.

use std::path::Path;

use burn::tensor::backend::Backend;
use helios_model::pipeline::Frames;
use helios_model::vae::WanVae;
use image::{RgbImage, imageops};

use crate::data::video_tensor;
use crate::error::{Result, TrainError};

/// For each video, a strip of frames 0, 8, 16, 24, 32 (input above, reconstruction below) as
/// `vae_<i>.png` in `dir`.
pub fn reconstructions<B: Backend>(
    vae: &WanVae<B>,
    videos: &[Vec<RgbImage>],
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    for (i, video) in videos.iter().enumerate() {
        let device = Default::default();
        let posterior = vae.encode(video_tensor::<B>(video, &device))?;
        let decoded = Frames::new(vae.decode_vae_space(posterior.mode())?).to_images()?;
        let picks: Vec<usize> = (0..video.len()).step_by(8).collect();
        let (w, h) = (video[0].width(), video[0].height());
        let mut strip = RgbImage::new(w * picks.len() as u32, h * 2);
        for (j, &f) in picks.iter().enumerate() {
            imageops::replace(&mut strip, &video[f], (j as u32 * w) as i64, 0);
            if let Some(img) = decoded.get(f) {
                imageops::replace(&mut strip, img, (j as u32 * w) as i64, h as i64);
            }
        }
        let path = dir.join(format!("vae_{i}.png"));
        strip.save(&path).map_err(|e| TrainError::Write {
            path,
            source: std::io::Error::other(e),
        })?;
    }
    Ok(())
}
