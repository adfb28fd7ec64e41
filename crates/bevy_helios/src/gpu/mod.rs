//! The GPU side: the render-world frame upload ([`UploadPath::GpuResident`](crate::UploadPath)),
//! the shared wgpu device ([`GpuSharing::SharedDevice`](crate::GpuSharing)) and the frames that
//! never leave it ([`resident`]).
//!
//! **Upload.** [`upload_frames`](crate::plugin::upload_frames) queues the frame in
//! [`HeliosGpuUploads`] instead of touching `Assets<Image>`; an `ExtractSchedule` system moves the
//! queue into the render world, where a system in `RenderSystems::PrepareResources` records
//! `copy_buffer_to_texture` into the image's `GpuImage` texture, submitted on Bevy's
//! `RenderQueue` before the frame's render passes. The main-world `Image` keeps its old pixels
//! (no CPU re-upload of the whole asset, no extraction clone). The copy source is either
//!
//! * the frame itself, left on the GPU by the worker ([`FrameSource::Gpu`]): with the wgpu
//!   backend on the shared device, the decoded chunk is packed to RGBA8 rows in a buffer of that
//!   device and copied buffer-to-texture with **no readback**; or
//! * a per-image staging buffer (`COPY_SRC`, rows padded to 256 bytes) written from CPU bytes
//!   ([`FrameSource::Bytes`]): the NdArray backend, or wgpu on a device of its own.
//!
//! **Shared device.** Another `ExtractSchedule` system builds a `burn::backend::wgpu::WgpuSetup`
//! from Bevy's `RenderInstance` / `RenderAdapter` / `RenderDevice` / `RenderQueue` and hands it
//! to the main world ([`SharedWgpuDevice`]); the worker then runs burn on that device
//! (`burn::backend::wgpu::init_device`), so model and renderer share one wgpu 29 device.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    Buffer, BufferDescriptor, BufferUsages, CommandEncoderDescriptor, Extent3d, Origin3d,
    TexelCopyBufferInfo, TexelCopyBufferLayout, TexelCopyTextureInfo, TextureAspect,
};
use bevy::render::renderer::{
    RenderAdapter, RenderAdapterInfo, RenderDevice, RenderInstance, RenderQueue,
};
use bevy::render::texture::GpuImage;
use bevy::render::{ExtractSchedule, MainWorld, Render, RenderApp, RenderSystems};
use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, WgpuSetup};

pub mod resident;

pub use resident::{GpuFrameBuffer, GpuFrameRef};

/// wgpu's required alignment of `bytes_per_row` in buffer-texture copies.
pub const COPY_ROW_ALIGNMENT: u32 = 256;

/// `width * 4` rounded up to [`COPY_ROW_ALIGNMENT`].
pub fn padded_bytes_per_row(width: u32) -> u32 {
    (width * 4).div_ceil(COPY_ROW_ALIGNMENT) * COPY_ROW_ALIGNMENT
}

/// A frame side as the `u32` textures use; an error when it does not fit.
pub(crate) fn texture_side(pixels: usize) -> crate::HeliosResult<u32> {
    u32::try_from(pixels).map_err(|_| {
        crate::HeliosError::from(helios_model::Error::InvalidRequest(format!(
            "frame side {pixels} does not fit a texture"
        )))
    })
}

/// Copies tightly packed RGBA8 rows into rows of `padded` bytes.
pub fn pad_rows(pixels: &[u8], width: u32, height: u32, padded: u32) -> Vec<u8> {
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

/// Where a frame to copy is.
#[derive(Debug)]
pub enum FrameSource {
    /// RGBA8 rows, tightly packed, on the CPU (written to a staging buffer first).
    Bytes(Vec<u8>),
    /// In a buffer of the shared device, rows already padded (copied as is).
    Gpu(GpuFrameRef),
}

/// One frame waiting for its GPU copy.
#[derive(Debug)]
pub struct GpuFrameUpload {
    /// The target image.
    pub image: AssetId<Image>,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The frame.
    pub source: FrameSource,
}

/// Frames queued for the render-world copy this tick (main world; present only when the app
/// renders). Only the newest frame per image is kept.
#[derive(Resource, Default, Debug)]
pub struct HeliosGpuUploads(pub Vec<GpuFrameUpload>);

impl HeliosGpuUploads {
    /// Queues a frame for `image`, replacing one queued earlier for the same image.
    pub fn push(&mut self, image: AssetId<Image>, width: u32, height: u32, source: FrameSource) {
        self.0.retain(|u| u.image != image);
        self.0.push(GpuFrameUpload {
            image,
            width,
            height,
            source,
        });
    }
}

/// Bevy's wgpu device, offered to burn (main world; present only when the app renders).
#[derive(Resource, Default)]
pub struct SharedWgpuDevice {
    setup: Mutex<Option<WgpuSetup>>,
    device: OnceLock<Option<WgpuDevice>>,
}

impl SharedWgpuDevice {
    /// Whether the render world has handed over its device yet.
    pub fn ready(&self) -> bool {
        self.device.get().is_some() || self.setup.lock().is_ok_and(|s| s.is_some())
    }

    /// The burn device on Bevy's wgpu device (initialised once; `None` before the first extract).
    pub fn device(&self) -> Option<WgpuDevice> {
        if !self.ready() {
            return None;
        }
        self.device
            .get_or_init(|| {
                let setup = self.setup.lock().ok()?.take()?;
                Some(burn::backend::wgpu::init_device(
                    setup,
                    RuntimeOptions::default(),
                ))
            })
            .clone()
    }
}

/// Whether the app renders (the render plugin was there when `HeliosPlugin` was built).
pub(crate) fn renders(shared: Option<&SharedWgpuDevice>) -> bool {
    shared.is_some()
}

#[derive(Resource, Default)]
struct ExtractedUploads(Vec<GpuFrameUpload>);

#[derive(Resource, Default)]
struct StagingBuffers(HashMap<AssetId<Image>, Buffer>);

pub(crate) fn build(app: &mut App) {
    let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
        return;
    };
    render_app
        .init_resource::<ExtractedUploads>()
        .init_resource::<StagingBuffers>()
        .add_systems(ExtractSchedule, (extract_uploads, share_device))
        .add_systems(
            Render,
            copy_frames_to_textures.in_set(RenderSystems::PrepareResources),
        );
    app.init_resource::<HeliosGpuUploads>()
        .init_resource::<SharedWgpuDevice>();
}

fn extract_uploads(mut main: ResMut<MainWorld>, mut extracted: ResMut<ExtractedUploads>) {
    if let Some(mut uploads) = main.get_resource_mut::<HeliosGpuUploads>() {
        extracted.0.append(&mut uploads.0);
    }
}

#[allow(clippy::too_many_arguments)]
fn share_device(
    main: Res<MainWorld>,
    instance: Option<Res<RenderInstance>>,
    adapter: Option<Res<RenderAdapter>>,
    info: Option<Res<RenderAdapterInfo>>,
    device: Option<Res<RenderDevice>>,
    queue: Option<Res<RenderQueue>>,
    mut done: Local<bool>,
) {
    if *done {
        return;
    }
    let (Some(instance), Some(adapter), Some(info), Some(device), Some(queue)) =
        (instance, adapter, info, device, queue)
    else {
        return;
    };
    let Some(shared) = main.get_resource::<SharedWgpuDevice>() else {
        return;
    };
    let setup = WgpuSetup {
        instance: (**instance.0).clone(),
        adapter: (**adapter.0).clone(),
        device: device.wgpu_device().clone(),
        queue: (**queue.0).clone(),
        backend: info.backend,
    };
    if let Ok(mut slot) = shared.setup.lock() {
        *slot = Some(setup);
    }
    *done = true;
}

fn copy_frames_to_textures(
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
        let (buffer, offset, bytes_per_row) = match &upload.source {
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
                (&*buffer, 0, padded)
            }
        };
        encoder.copy_buffer_to_texture(
            TexelCopyBufferInfo {
                buffer: &**buffer,
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
        assert_eq!(padded_bytes_per_row(64), 256);
        assert_eq!(padded_bytes_per_row(65), 512);
        assert_eq!(padded_bytes_per_row(640), 2560);
        let px: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
        let out = pad_rows(&px, 3, 2, 256);
        assert_eq!(out.len(), 512);
        assert_eq!(&out[..12], &px[..12]);
        assert_eq!(&out[256..268], &px[12..24]);
        assert!(out[12..256].iter().all(|&b| b == 0));
    }
}
