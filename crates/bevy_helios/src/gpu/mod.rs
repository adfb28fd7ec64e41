//! The render side of the GPU path: one wgpu device for burn and Bevy, and the render-world copy
//! of frames into their textures.
//!
//! * **Device** ([`HeliosGpuDevice`], [`helios_render_plugin`]): on Vulkan, cubecl creates the
//!   device with what its SPIR-V kernels need and Bevy renders on it (`RenderCreation::Manual`).
//!   An app that builds its own `RenderPlugin` keeps Bevy's device, and burn is built on it
//!   ([`SharedWgpuDevice`], `init_device`).
//! * **Upload** ([`UploadPath::GpuResident`](crate::UploadPath), [`HeliosGpuUploads`]): the frame
//!   is copied buffer-to-texture in the render world, from the model's own buffer on the shared
//!   device (a GPU frame buffer, **no readback**) or from a
//!   staging buffer written from CPU bytes (the NdArray and CUDA backends, or wgpu on a device of
//!   its own).
//!
//! The worker ([`helios_worker`]) knows nothing of this module, nor of Bevy: it hands over
//! [`helios_worker::Frame`]s, plain wgpu buffers included.

use bevy::prelude::*;
use bevy::render::{ExtractSchedule, Render, RenderApp, RenderSystems};

pub mod device;
mod shared;
mod upload;

pub use device::{HeliosGpuDevice, helios_render_plugin};
pub(crate) use shared::renders;
pub use shared::{SharedDeviceOrigin, SharedWgpuDevice};
pub(crate) use upload::FrameSource;
pub use upload::HeliosGpuUploads;

pub(crate) fn build(app: &mut App) {
    let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
        return;
    };
    render_app
        .init_resource::<upload::ExtractedUploads>()
        .init_resource::<upload::StagingBuffers>()
        .add_systems(
            ExtractSchedule,
            (upload::extract_uploads, shared::share_device),
        )
        .add_systems(
            Render,
            upload::copy_frames_to_textures.in_set(RenderSystems::PrepareResources),
        );
    app.init_resource::<HeliosGpuUploads>()
        .init_resource::<SharedWgpuDevice>();
}
