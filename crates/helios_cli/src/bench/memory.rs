//! Device memory of the GPU backends, from cubecl's memory pools (`ComputeClient::memory_usage`).
//!
//! cubecl reports what its pools hold now, not a high-water mark, so the bench samples after every
//! measurement and keeps the largest values. `reserved` (the pool pages) is the device memory the
//! process holds; `in_use` the live tensors. The CPU backend has no such pools: `None`.

use std::any::Any;

#[cfg(feature = "cuda")]
use burn::backend::cuda::CudaDevice;
use burn::backend::wgpu::WgpuDevice;
use cubecl::Runtime;
#[cfg(feature = "cuda")]
use cubecl::cuda::CudaRuntime;
use cubecl::wgpu::WgpuRuntime;

/// Bytes of device memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Bytes of live tensors.
    pub in_use: u64,
    /// Bytes the memory pools hold on the device.
    pub reserved: u64,
}

/// The device memory now, on a wgpu or CUDA device; `None` elsewhere (or if the query fails).
pub fn usage<D: Any>(device: &D) -> Option<DeviceMemory> {
    let device = device as &dyn Any;
    let usage = if let Some(d) = device.downcast_ref::<WgpuDevice>() {
        WgpuRuntime::client(d).memory_usage().ok()?
    } else {
        #[cfg(feature = "cuda")]
        if let Some(d) = device.downcast_ref::<CudaDevice>() {
            CudaRuntime::client(d).memory_usage().ok()?
        } else {
            return None;
        }
        #[cfg(not(feature = "cuda"))]
        return None;
    };
    Some(DeviceMemory {
        in_use: usage.bytes_in_use,
        reserved: usage.bytes_reserved,
    })
}

/// The largest usage seen over several samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeakMemory {
    peak: Option<DeviceMemory>,
}

impl PeakMemory {
    /// Takes a sample on `device` and returns it.
    pub fn sample<D: Any>(&mut self, device: &D) -> Option<DeviceMemory> {
        let now = usage(device)?;
        let peak = self.peak.get_or_insert(now);
        peak.in_use = peak.in_use.max(now.in_use);
        peak.reserved = peak.reserved.max(now.reserved);
        Some(now)
    }

    /// The largest values sampled, `None` when the backend has no device pools.
    pub fn peak(&self) -> Option<DeviceMemory> {
        self.peak
    }
}

/// `123456` or `n/a`.
pub fn bytes_field(value: Option<u64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |b| b.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_backend_has_no_device_pools() {
        let device = burn::backend::ndarray::NdArrayDevice::default();
        assert_eq!(usage(&device), None);
        let mut peak = PeakMemory::default();
        assert_eq!(peak.sample(&device), None);
        assert_eq!(bytes_field(peak.peak().map(|p| p.reserved)), "n/a");
        assert_eq!(bytes_field(Some(42)), "42");
    }
}
