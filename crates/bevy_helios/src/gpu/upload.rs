//! The render-world frame upload ([`UploadPath::GpuResident`](crate::UploadPath)).
//!
//! [`upload_frames`](crate::plugin::upload_frames) queues the frame in [`HeliosGpuUploads`]
//! instead of touching `Assets<Image>`; an `ExtractSchedule` system moves the queue into the
//! render world, where a system in `RenderSystems::PrepareResources` records
//! `copy_buffer_to_texture` into the image's `GpuImage` texture, submitted on Bevy's `RenderQueue`
//! before the frame's render passes. The main-world `Image` keeps its old pixels (no CPU
//! re-upload of the whole asset, no extraction clone). The copy source is either the frame's own
//! buffer on the shared device ([`FrameSource::Gpu`], no readback) or a per-image staging buffer
//! written from CPU bytes ([`FrameSource::Bytes`]).

use std::collections::HashMap;

use bevy::prelude::*;
use bevy::render::MainWorld;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    Buffer, BufferDescriptor, BufferUsages, CommandEncoderDescriptor, Extent3d, Origin3d,
    TexelCopyBufferInfo, TexelCopyBufferLayout, TexelCopyTextureInfo, TextureAspect,
};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use helios_worker::{GpuFrameRef, padded_bytes_per_row};

/// Where a frame to copy is.
#[derive(Debug)]
pub(crate) enum FrameSource {
    /// RGBA8 rows, tightly packed, on the CPU (written to a staging buffer first).
    Bytes(Vec<u8>),
    /// In a buffer of the shared device, rows already padded (copied as is).
    Gpu(GpuFrameRef),
}

/// One frame waiting for its GPU copy.
#[derive(Debug)]
struct GpuFrameUpload {
    image: AssetId<Image>,
    width: u32,
    height: u32,
    source: FrameSource,
}

/// Frames queued for the render-world copy this tick (main world; present only when the app
/// renders). Only the newest frame per image is kept.
#[derive(Resource, Default, Debug)]
pub struct HeliosGpuUploads(Vec<GpuFrameUpload>);

impl HeliosGpuUploads {
    /// Queues a frame for `image`, replacing one queued earlier for the same image.
    pub(crate) fn push(
        &mut self,
        image: AssetId<Image>,
        width: u32,
        height: u32,
        source: FrameSource,
    ) {
        self.0.retain(|u| u.image != image);
        self.0.push(GpuFrameUpload {
            image,
            width,
            height,
            source,
        });
    }

    /// Frames waiting for the next extraction.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The uploads moved into the render world.
#[derive(Resource, Default)]
pub(super) struct ExtractedUploads(Vec<GpuFrameUpload>);

/// One staging buffer per image (CPU frames).
#[derive(Resource, Default)]
pub(super) struct StagingBuffers(HashMap<AssetId<Image>, Buffer>);

/// Copies tightly packed RGBA8 rows into rows of `padded` bytes.
pub(crate) fn pad_rows(pixels: &[u8], width: u32, height: u32, padded: u32) -> Vec<u8> {
    let row = (width * 4) as usize;
    let mut out = vec![0u8; padded as usize * height as usize];
    for (dst, src) in out
        .chunks_exact_mut(padded as usize)
        .zip(pixels.chunks_exact(row))
    {
        dst[..row].copy_from_slice(src);
    }
    out
}

pub(super) fn extract_uploads(
    mut main: ResMut<MainWorld>,
    mut extracted: ResMut<ExtractedUploads>,
) {
    if let Some(mut uploads) = main.get_resource_mut::<HeliosGpuUploads>() {
        extracted.0.append(&mut uploads.0);
    }
}

pub(super) fn copy_frames_to_textures(
    mut uploads: ResMut<ExtractedUploads>,
    mut staging: ResMut<StagingBuffers>,
    images: Res<RenderAssets<GpuImage>>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
) {
    if uploads.0.is_empty() {
        return;
    }
    let mut encoder = device.create_command_encoder(&CommandEncoderDescriptor {
        label: Some("helios_frame_upload"),
    });
    // GPU-resident frames stay referenced until their copies are submitted: only then may the
    // model's memory pool reuse their slice.
    let mut submitted = Vec::new();
    for upload in uploads.0.drain(..) {
        let Some(gpu_image) = images.get(upload.image) else {
            continue;
        };
        let size = gpu_image.texture_descriptor.size;
        if size.width != upload.width || size.height != upload.height {
            continue;
        }
        let (buffer, offset, bytes_per_row): (&wgpu::Buffer, u64, u32) = match &upload.source {
            FrameSource::Gpu(frame) => {
                let chunk = &frame.buffer;
                if chunk.width() != upload.width
                    || chunk.height() != upload.height
                    || frame.index >= chunk.frames()
                {
                    continue;
                }
                (
                    chunk.buffer(),
                    chunk.frame_offset(frame.index),
                    chunk.bytes_per_row(),
                )
            }
            FrameSource::Bytes(pixels) => {
                if pixels.len() != (upload.width * upload.height * 4) as usize {
                    continue;
                }
                let padded = padded_bytes_per_row(upload.width);
                let buffer =
                    staging_buffer(&mut staging, &device, upload.image, padded, upload.height);
                if padded == upload.width * 4 {
                    queue.write_buffer(buffer, 0, pixels);
                } else {
                    queue.write_buffer(
                        buffer,
                        0,
                        &pad_rows(pixels, upload.width, upload.height, padded),
                    );
                }
                (buffer, 0, padded)
            }
        };
        encoder.copy_buffer_to_texture(
            TexelCopyBufferInfo {
                buffer,
                layout: TexelCopyBufferLayout {
                    offset,
                    bytes_per_row: Some(bytes_per_row),
                    rows_per_image: Some(upload.height),
                },
            },
            TexelCopyTextureInfo {
                texture: &gpu_image.texture,
                mip_level: 0,
                origin: Origin3d::ZERO,
                aspect: TextureAspect::All,
            },
            Extent3d {
                width: upload.width,
                height: upload.height,
                depth_or_array_layers: 1,
            },
        );
        submitted.push(upload);
    }
    if !submitted.is_empty() {
        queue.submit([encoder.finish()]);
    }
    drop(submitted);
}

/// The staging buffer of `image`, (re)created at `padded * height` bytes.
fn staging_buffer<'a>(
    staging: &'a mut StagingBuffers,
    device: &RenderDevice,
    image: AssetId<Image>,
    padded: u32,
    height: u32,
) -> &'a Buffer {
    let bytes = u64::from(padded) * u64::from(height);
    let buffer = staging
        .0
        .entry(image)
        .or_insert_with(|| create_staging(device, bytes));
    if buffer.size() != bytes {
        *buffer = create_staging(device, bytes);
    }
    buffer
}

fn create_staging(device: &RenderDevice, bytes: u64) -> Buffer {
    device.create_buffer(&BufferDescriptor {
        label: Some("helios_frame_staging"),
        size: bytes,
        usage: BufferUsages::COPY_SRC | BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_to_256() {
        let px: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
        let out = pad_rows(&px, 3, 2, 256);
        assert_eq!(out.len(), 512);
        assert_eq!(&out[..12], &px[..12]);
        assert_eq!(&out[256..268], &px[12..24]);
        assert!(out[12..256].iter().all(|&b| b == 0));
    }

    #[test]
    fn only_the_newest_frame_per_image_is_queued() {
        let mut uploads = HeliosGpuUploads::default();
        let (a, b) = (AssetId::<Image>::default(), AssetId::<Image>::invalid());
        uploads.push(a, 1, 1, FrameSource::Bytes(vec![1; 4]));
        uploads.push(b, 1, 1, FrameSource::Bytes(vec![2; 4]));
        uploads.push(a, 1, 1, FrameSource::Bytes(vec![3; 4]));
        assert_eq!(uploads.len(), 2);
        let newest: Vec<u8> = uploads
            .0
            .iter()
            .filter(|u| u.image == a)
            .map(|u| match &u.source {
                FrameSource::Bytes(p) => p[0],
                FrameSource::Gpu(_) => 0,
            })
            .collect();
        assert_eq!(newest, vec![3]);
    }
}
