//! The burn device on the renderer's wgpu device ([`GpuSharing::SharedDevice`](crate::GpuSharing)),
//! handed from the render world to the main world.
//!
//! An `ExtractSchedule` system looks at Bevy's `RenderDevice` once it exists: if cubecl created
//! it ([`HeliosGpuDevice`](super::HeliosGpuDevice), the app rendering with its
//! `render_plugin`), burn's compute client is already on it and is used as is; otherwise a
//! `WgpuSetup` is built from Bevy's `RenderInstance` / `RenderAdapter` / `RenderDevice` /
//! `RenderQueue` and burn is initialised on it (`burn::backend::wgpu::init_device`) when the
//! worker first asks.

use std::sync::{Mutex, OnceLock};

use bevy::prelude::*;
use bevy::render::MainWorld;
use bevy::render::renderer::{
    RenderAdapter, RenderAdapterInfo, RenderDevice, RenderInstance, RenderQueue,
};
use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, WgpuSetup};

/// Who created the wgpu device that burn and Bevy share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedDeviceOrigin {
    /// cubecl, with the device extensions of its SPIR-V kernels
    /// ([`HeliosGpuDevice`](super::HeliosGpuDevice)); Bevy renders on it.
    Cubecl,
    /// Bevy's renderer; burn runs on it with whatever features Bevy enabled.
    Bevy,
}

enum Handover {
    /// A burn device already on the renderer's device.
    Created(WgpuDevice),
    /// Bevy's device, for `init_device`.
    Bevy(WgpuSetup),
}

/// The renderer's wgpu device, offered to burn (main world; present only when the app renders).
#[derive(Resource, Default)]
pub struct SharedWgpuDevice {
    handover: Mutex<Option<Handover>>,
    device: OnceLock<Option<(WgpuDevice, SharedDeviceOrigin)>>,
}

impl SharedWgpuDevice {
    /// Whether the render world has handed over its device yet.
    pub fn ready(&self) -> bool {
        self.device.get().is_some() || self.handover.lock().is_ok_and(|h| h.is_some())
    }

    /// Who created the shared device (`None` before the render world handed it over).
    pub fn origin(&self) -> Option<SharedDeviceOrigin> {
        if let Some(device) = self.device.get() {
            return device.as_ref().map(|(_, origin)| *origin);
        }
        match self.handover.lock().ok()?.as_ref()? {
            Handover::Created(_) => Some(SharedDeviceOrigin::Cubecl),
            Handover::Bevy(_) => Some(SharedDeviceOrigin::Bevy),
        }
    }

    /// The burn device on the renderer's wgpu device (initialised once; `None` before the first
    /// extract).
    pub fn device(&self) -> Option<WgpuDevice> {
        if !self.ready() {
            return None;
        }
        self.device
            .get_or_init(|| match self.handover.lock().ok()?.take()? {
                Handover::Created(device) => Some((device, SharedDeviceOrigin::Cubecl)),
                Handover::Bevy(setup) => Some((
                    burn::backend::wgpu::init_device(setup, RuntimeOptions::default()),
                    SharedDeviceOrigin::Bevy,
                )),
            })
            .as_ref()
            .map(|(device, _)| device.clone())
    }
}

/// Whether the app renders (the render plugin was there when `HeliosPlugin` was built).
pub(crate) fn renders(shared: Option<&SharedWgpuDevice>) -> bool {
    shared.is_some()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn share_device(
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
    let handover = match super::device::burn_device_on(&instance.0, device.wgpu_device()) {
        Some(burn) => Handover::Created(burn),
        None => Handover::Bevy(WgpuSetup {
            instance: (**instance.0).clone(),
            adapter: (**adapter.0).clone(),
            device: device.wgpu_device().clone(),
            queue: (**queue.0).clone(),
            backend: info.backend,
        }),
    };
    if let Ok(mut slot) = shared.handover.lock() {
        *slot = Some(handover);
    }
    *done = true;
}
