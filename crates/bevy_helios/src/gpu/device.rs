//! One Vulkan device for burn and Bevy, created by cubecl.
//!
//! burn's wgpu backend compiles its kernels to SPIR-V on a Vulkan adapter, and those kernels may
//! use device extensions (cooperative matrices, 16-bit storage, buffer device address, 64-bit
//! indexing) that Bevy's own device does not enable: `burn::backend::wgpu::init_device` reads the
//! *adapter's* features, not the device's. So the device is made the other way round:
//! [`HeliosGpuDevice::create`] lets cubecl create the Vulkan device with everything its SPIR-V
//! compiler uses (plus every adapter feature and limit, a superset of what Bevy asks for),
//! registers burn's compute client on it, and [`HeliosGpuDevice::render_plugin`] hands the same
//! device to Bevy through `RenderCreation::Manual`.
//!
//! The plugin finds the burn device again from Bevy's `RenderDevice` (a process-wide registry
//! keyed by the wgpu device), so an app only has to use the render plugin. An app that builds its
//! own `RenderPlugin` keeps the fallback: burn is built on Bevy's device with `init_device`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use bevy::render::RenderPlugin;
use bevy::render::renderer::{
    RenderAdapter, RenderAdapterInfo, RenderDevice, RenderInstance, RenderQueue, WgpuWrapper,
};
use bevy::render::settings::RenderCreation;
use bevy::tasks::block_on;
use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, WgpuSetup, init_device};

use crate::error::{HeliosError, HeliosResult};
use crate::settings::{GpuSharing, HeliosBackend, HeliosSettings};

/// Burn devices created on a wgpu device of [`HeliosGpuDevice`], by instance and wgpu device.
/// Burn's compute clients live for the whole process anyway, so entries are never removed.
///
/// The instance is part of the key because wgpu compares devices by their id alone, and ids
/// are numbered per instance: the first device of every instance compares equal. Instances
/// compare by identity.
static CREATED: Mutex<Vec<(wgpu::Instance, wgpu::Device, WgpuDevice)>> = Mutex::new(Vec::new());

/// The burn device that [`HeliosGpuDevice::create`] registered on `device` of `instance`, if any.
pub(crate) fn burn_device_on(
    instance: &wgpu::Instance,
    device: &wgpu::Device,
) -> Option<WgpuDevice> {
    let created = CREATED.lock().ok()?;
    created
        .iter()
        .find(|(i, d, _)| i == instance && d == device)
        .map(|(_, _, burn)| burn.clone())
}

/// A Vulkan device created by cubecl for burn's SPIR-V kernels, to be shared with Bevy.
///
/// ```no_run
/// use bevy::prelude::*;
/// use bevy_helios::prelude::*;
/// use bevy_helios::gpu::HeliosGpuDevice;
///
/// let gpu = HeliosGpuDevice::create().expect("a Vulkan adapter");
/// App::new()
///     .add_plugins(DefaultPlugins.set(gpu.render_plugin()))
///     .add_plugins(HeliosPlugin::default().with_settings(HeliosSettings {
///         backend: HeliosBackend::Wgpu,
///         upload: UploadPath::GpuResident,
///         ..default()
///     }))
///     .run();
/// ```
#[derive(Clone)]
pub struct HeliosGpuDevice {
    setup: WgpuSetup,
    burn: WgpuDevice,
}

impl std::fmt::Debug for HeliosGpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeliosGpuDevice")
            .field("adapter", &self.setup.adapter.get_info().name)
            .field("burn", &self.burn)
            .finish_non_exhaustive()
    }
}

fn device_error(what: impl Into<String>) -> HeliosError {
    HeliosError::GpuDevice(what.into())
}

/// The Vulkan adapter Bevy would pick: the one named by `WGPU_ADAPTER_NAME` (a substring, as
/// Bevy reads it), else the high-performance one.
async fn select_adapter(instance: &wgpu::Instance) -> HeliosResult<wgpu::Adapter> {
    if let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") {
        let name = name.to_lowercase();
        return instance
            .enumerate_adapters(wgpu::Backends::VULKAN)
            .await
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&name))
            .ok_or_else(|| device_error(format!("no Vulkan adapter named like `{name}`")));
    }
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
        })
        .await
        .map_err(|e| device_error(format!("no Vulkan adapter: {e}")))
}

impl HeliosGpuDevice {
    /// Creates the Vulkan device with cubecl and burn's compute client on it (default runtime
    /// options). Fails, without touching any global state, when there is no Vulkan adapter or it
    /// lacks what cubecl's SPIR-V path needs; the caller then lets Bevy create its device.
    pub fn create() -> HeliosResult<Self> {
        Self::create_with(RuntimeOptions::default())
    }

    /// [`Self::create`] with burn's runtime options (memory pool layout, task batching).
    pub fn create_with(options: RuntimeOptions) -> HeliosResult<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            flags: wgpu::InstanceFlags::from_build_config().with_env(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = block_on(select_adapter(&instance))?;
        // cubecl panics (rather than returning an error) when the driver refuses the device.
        let created = catch_unwind(AssertUnwindSafe(|| {
            block_on(cubecl::wgpu::vulkan::request_vulkan_device(&adapter))
        }))
        .map_err(|_| device_error("the Vulkan driver refused cubecl's device"))?;
        let (device, queue) = created.ok_or_else(|| {
            device_error(format!(
                "the Vulkan adapter {} lacks features cubecl's SPIR-V kernels need",
                adapter.get_info().name
            ))
        })?;
        let setup = WgpuSetup {
            instance,
            adapter,
            device,
            queue,
            backend: wgpu::Backend::Vulkan,
        };
        let burn = init_device(setup.clone(), options);
        CREATED
            .lock()
            .map_err(|_| device_error("the device registry is poisoned"))?
            .push((setup.instance.clone(), setup.device.clone(), burn.clone()));
        Ok(Self { setup, burn })
    }

    /// The burn device (`burn::backend::Wgpu`) on this wgpu device.
    pub fn burn_device(&self) -> &WgpuDevice {
        &self.burn
    }

    /// The wgpu instance the device was created on.
    pub fn wgpu_instance(&self) -> &wgpu::Instance {
        &self.setup.instance
    }

    /// The wgpu device burn and Bevy share.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.setup.device
    }

    /// Its queue (burn's and Bevy's).
    pub fn wgpu_queue(&self) -> &wgpu::Queue {
        &self.setup.queue
    }

    /// The adapter the device is on.
    pub fn adapter_info(&self) -> wgpu::AdapterInfo {
        self.setup.adapter.get_info()
    }

    /// Bevy's `RenderPlugin` rendering on this device (`RenderCreation::Manual`): put it in
    /// `DefaultPlugins.set(..)`. [`HeliosPlugin`](crate::HeliosPlugin) then runs a
    /// [`HeliosBackend::Wgpu`] model on [`Self::burn_device`] and its frames go buffer-to-texture
    /// on this one device.
    pub fn render_plugin(&self) -> RenderPlugin {
        let setup = self.setup.clone();
        let info = setup.adapter.get_info();
        RenderPlugin {
            render_creation: RenderCreation::manual(
                RenderDevice::from(setup.device),
                RenderQueue(Arc::new(WgpuWrapper::new(setup.queue))),
                RenderAdapterInfo(WgpuWrapper::new(info)),
                RenderAdapter(Arc::new(WgpuWrapper::new(setup.adapter))),
                RenderInstance(Arc::new(WgpuWrapper::new(setup.instance))),
            ),
            ..Default::default()
        }
    }
}

/// The `RenderPlugin` an app with these settings should render with: on a device created by
/// cubecl ([`HeliosGpuDevice`]) when the model runs on the wgpu backend sharing the renderer's
/// device (the default [`GpuSharing::SharedDevice`]); `Ok(None)` for the other settings (Bevy
/// creates its device as usual). On `Err` the app may still use Bevy's default render plugin:
/// burn then runs on Bevy's device (`init_device`), without the SPIR-V device extensions.
pub fn helios_render_plugin(settings: &HeliosSettings) -> HeliosResult<Option<RenderPlugin>> {
    if settings.backend != HeliosBackend::Wgpu || settings.gpu_sharing != GpuSharing::SharedDevice {
        return Ok(None);
    }
    Ok(Some(HeliosGpuDevice::create()?.render_plugin()))
}

#[cfg(test)]
mod tests {
    use burn::backend::Wgpu;
    use burn::tensor::{Tensor, TensorData};

    use super::*;

    /// The device cubecl creates runs burn's kernels, is found again from its wgpu device (as
    /// the plugin finds it from Bevy's `RenderDevice`), and is a distinct burn device each time.
    #[test]
    fn created_device_runs_burn_and_is_registered() {
        let gpu = HeliosGpuDevice::create().unwrap();
        assert_eq!(gpu.adapter_info().backend, wgpu::Backend::Vulkan);
        assert_eq!(
            burn_device_on(gpu.wgpu_instance(), gpu.wgpu_device()),
            Some(gpu.burn_device().clone())
        );
        let x =
            Tensor::<Wgpu, 1>::from_data(TensorData::from([1.0f32, 2.0, 3.0]), gpu.burn_device());
        let y: Vec<f32> = (x.clone() * x).sum().into_data().to_vec().unwrap();
        assert_eq!(y, vec![14.0]);

        // Each device is the first of its own instance, which wgpu alone cannot tell apart (it
        // compares devices by id): the registry keys them by instance too.
        let other = HeliosGpuDevice::create().unwrap();
        assert_ne!(other.burn_device(), gpu.burn_device());
        assert_eq!(
            burn_device_on(other.wgpu_instance(), other.wgpu_device()),
            Some(other.burn_device().clone())
        );
        // Bevy's render plugin takes this very device.
        let RenderCreation::Manual(resources) = gpu.render_plugin().render_creation else {
            panic!("a manual render creation");
        };
        assert!(resources.0.wgpu_device() == gpu.wgpu_device());
    }

    #[test]
    fn only_the_shared_wgpu_settings_create_a_device() {
        let cpu = HeliosSettings::default();
        assert!(helios_render_plugin(&cpu).unwrap().is_none());
        let separate = HeliosSettings {
            backend: HeliosBackend::Wgpu,
            gpu_sharing: GpuSharing::Separate,
            ..HeliosSettings::default()
        };
        assert!(helios_render_plugin(&separate).unwrap().is_none());
    }
}
