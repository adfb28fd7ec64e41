//! I2V conditioning images: [`RequestPortraitCapture`] spawns a `Screenshot::image(target)`; when
//! the GPU readback arrives, the image becomes the stream's conditioning image. Images of
//! [`SetConditioningImage`](crate::messages::SetConditioningImage) wait here until their asset is
//! loaded.

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};

use crate::error::HeliosError;
use crate::messages::{HeliosWorkerError, RequestPortraitCapture};

/// A conditioning image on its way to the worker.
#[derive(Debug)]
pub(crate) enum PendingImage {
    /// Read back from the GPU, converted.
    Captured(image::RgbImage),
    /// An image asset, converted once loaded.
    Asset(Handle<Image>),
}

/// Conditioning images waiting to be sent to the worker, per screen entity.
#[derive(Resource, Default)]
pub(crate) struct PendingConditioning(pub(crate) Vec<(Entity, PendingImage)>);

/// Converts a Bevy image (RGBA8 / BGRA8, sRGB or not) to RGB8.
pub(crate) fn image_to_rgb(image: &Image) -> Result<image::RgbImage, HeliosError> {
    use bevy::render::render_resource::TextureFormat as F;
    let (w, h) = (image.width(), image.height());
    let data = image
        .data
        .as_deref()
        .ok_or_else(|| HeliosError::ConditioningImage("no pixel data".into()))?;
    let swap = match image.texture_descriptor.format {
        F::Rgba8Unorm | F::Rgba8UnormSrgb => false,
        F::Bgra8Unorm | F::Bgra8UnormSrgb => true,
        other => {
            return Err(HeliosError::ConditioningImage(format!(
                "unsupported format {other:?}"
            )));
        }
    };
    if data.len() < (w * h * 4) as usize {
        return Err(HeliosError::ConditioningImage(
            "truncated pixel data".into(),
        ));
    }
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for px in data.chunks_exact(4).take((w * h) as usize) {
        if swap {
            rgb.extend_from_slice(&[px[2], px[1], px[0]]);
        } else {
            rgb.extend_from_slice(&px[..3]);
        }
    }
    image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| HeliosError::ConditioningImage("bad size".into()))
}

/// Spawns a screenshot of each requested render target; its observer queues the image.
pub(crate) fn request_portrait_captures(
    mut commands: Commands,
    mut requests: MessageReader<RequestPortraitCapture>,
) {
    for request in requests.read() {
        let entity = request.entity;
        commands
            .spawn(Screenshot::image(request.target.clone()))
            .observe(
                move |captured: On<ScreenshotCaptured>,
                      mut pending: ResMut<PendingConditioning>,
                      mut errors: MessageWriter<HeliosWorkerError>| {
                    match image_to_rgb(&captured.image) {
                        Ok(rgb) => pending.0.push((entity, PendingImage::Captured(rgb))),
                        Err(error) => {
                            errors.write(HeliosWorkerError {
                                entity: Some(entity),
                                error,
                            });
                        }
                    }
                },
            );
    }
}
