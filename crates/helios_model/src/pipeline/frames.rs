//! Decoded frames and their conversion to 8-bit pictures.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use image::RgbImage;

use crate::error::{Error, Result};

/// Decoded video frames `[1, 3, t, height, width]` in `[-1, 1]`.
#[derive(Debug, Clone)]
pub struct Frames<B: Backend> {
    video: Tensor<B, 5>,
}

impl<B: Backend> Frames<B> {
    /// Wraps a decoded video `[1, 3, t, h, w]`.
    pub fn new(video: Tensor<B, 5>) -> Self {
        Self { video }
    }

    /// The tensor `[1, 3, t, h, w]` in `[-1, 1]`.
    pub fn tensor(&self) -> &Tensor<B, 5> {
        &self.video
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.video.dims()[2]
    }

    /// True when there is no frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frame width in pixels.
    pub fn width(&self) -> usize {
        self.video.dims()[4]
    }

    /// Frame height in pixels.
    pub fn height(&self) -> usize {
        self.video.dims()[3]
    }

    /// The frames resampled to `height x width` (bilinear, frame by frame); themselves when they
    /// have that size.
    pub fn resized(&self, height: usize, width: usize) -> Self {
        if (self.height(), self.width()) == (height, width) {
            return self.clone();
        }
        Self {
            video: crate::scheduler::pyramid::resize_bilinear(self.video.clone(), height, width),
        }
    }

    /// The first `n` frames.
    pub fn take(&self, n: usize) -> Self {
        Self {
            video: self.video.clone().narrow(2, 0, n.min(self.len())),
        }
    }

    /// Frames concatenated in time.
    pub fn cat(parts: Vec<Self>) -> Result<Self> {
        if parts.is_empty() {
            return Err(Error::InvalidRequest("no frames to concatenate".into()));
        }
        Ok(Self {
            video: Tensor::cat(parts.into_iter().map(|f| f.video).collect(), 2),
        })
    }

    /// Interleaved 8-bit pixels per frame with `channels` (3: RGB, 4: RGBA with opaque alpha), as
    /// the pipelines' `postprocess_video` makes them: `round(clamp(x / 2 + 0.5, 0, 1) * 255)` (ties to even, as numpy).
    pub fn to_u8(&self, channels: usize) -> Result<Vec<Vec<u8>>> {
        let [_, c, t, h, w] = self.video.dims();
        if c != 3 || !(channels == 3 || channels == 4) {
            return Err(Error::Shape {
                what: "frames to 8-bit".into(),
                expected: "[1, 3, t, h, w] to 3 or 4 channels".into(),
                got: format!("{:?} to {channels}", self.video.dims()),
            });
        }
        let first = self.video.clone().narrow(0, 0, 1);
        let values = first
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| Error::InvalidRequest(format!("reading frames: {e:?}")))?;
        let plane = h * w;
        let to_u8 = |x: f32| ((x / 2.0 + 0.5).clamp(0.0, 1.0) * 255.0).round_ties_even() as u8;
        Ok((0..t)
            .map(|f| {
                let mut out = vec![255u8; plane * channels];
                for ch in 0..3 {
                    let src = &values[(ch * t + f) * plane..(ch * t + f + 1) * plane];
                    for (i, &x) in src.iter().enumerate() {
                        out[i * channels + ch] = to_u8(x);
                    }
                }
                out
            })
            .collect())
    }

    /// The frames as RGBA8, row-major (what a game texture takes).
    pub fn to_rgba8(&self) -> Result<Vec<Vec<u8>>> {
        self.to_u8(4)
    }

    /// The frames as RGB pictures.
    pub fn to_images(&self) -> Result<Vec<RgbImage>> {
        let (w, h) = (self.width() as u32, self.height() as u32);
        self.to_u8(3)?
            .into_iter()
            .map(|px| {
                RgbImage::from_raw(w, h, px)
                    .ok_or_else(|| Error::InvalidRequest("frame buffer of the wrong size".into()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::TestBackend;

    #[test]
    fn to_u8_maps_minus_one_one_to_bytes_per_channel() {
        // 2 frames of 1x2 pixels; channel c, frame f, pixel i = value.
        let v: Vec<f32> = vec![
            -1.0, 1.0, 0.0, 0.5, // R: f0, f1
            -2.0, 2.0, -0.5, 0.0, // G
            0.0, 0.0, 1.0, 1.0, // B
        ];
        let frames = Frames::new(Tensor::<TestBackend, 5>::from_data(
            TensorData::new(v, [1, 3, 2, 1, 2]),
            &Default::default(),
        ));
        let rgba = frames.to_rgba8().unwrap_or_default();
        assert_eq!(rgba.len(), 2);
        assert_eq!(rgba[0], vec![0, 0, 128, 255, 255, 255, 128, 255]);
        assert_eq!(rgba[1], vec![128, 64, 255, 255, 191, 128, 255, 255]);
        let images = frames.to_images().unwrap_or_default();
        assert_eq!(images[1].get_pixel(1, 0).0, [191, 128, 255]);
        assert_eq!(frames.take(1).len(), 1);
    }
}
