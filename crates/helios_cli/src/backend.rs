//! Backend and precision selection for the commands.

#[cfg(feature = "cuda")]
use std::panic::{AssertUnwindSafe, catch_unwind};

#[cfg(feature = "cuda")]
use anyhow::Result;
use anyhow::anyhow;
#[cfg(feature = "cuda")]
use burn::backend::cuda::CudaDevice;
#[cfg(feature = "cuda")]
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use clap::ValueEnum;
use helios_model::dit::Precision;

/// The burn backend a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// CPU (ndarray).
    Ndarray,
    /// GPU through wgpu (Vulkan SPIR-V, Metal, DX12; lavapipe on machines without a GPU).
    Wgpu,
    /// NVIDIA GPU through CUDA (a build with the `cuda` feature; needs the NVIDIA driver at run
    /// time, not at build time).
    Cuda,
}

/// The DiT's compute precision on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionChoice {
    /// float32 everywhere.
    F32,
    /// The backend's half type (bf16 on CUDA, f16 on wgpu, bf16 emulated in f32 on ndarray), with
    /// diffusers' float32 modules kept in float32.
    Half,
}

impl BackendChoice {
    /// The precision used when none is given: half on GPU backends, float32 on the CPU.
    pub fn default_precision(self) -> PrecisionChoice {
        match self {
            Self::Ndarray => PrecisionChoice::F32,
            Self::Wgpu | Self::Cuda => PrecisionChoice::Half,
        }
    }
}

impl PrecisionChoice {
    /// The DiT precision on backend `B`.
    pub fn resolve<B: Backend>(self, device: &B::Device) -> Precision {
        match self {
            Self::F32 => Precision::F32,
            Self::Half => Precision::half_for::<B>(device),
        }
    }
}

/// The CPU backend.
pub type Cpu = burn::backend::NdArray<f32>;
/// The wgpu backend.
pub type Gpu = burn::backend::Wgpu;
/// The CUDA backend.
#[cfg(feature = "cuda")]
pub type CudaGpu = burn::backend::Cuda;

/// The default CUDA device, after checking it works: cubecl-cuda panics when the driver library or
/// a device is missing, so the first use runs under `catch_unwind` and a failure becomes an error.
#[cfg(feature = "cuda")]
pub fn cuda_device() -> Result<CudaDevice> {
    let device = CudaDevice::default();
    let probe = device.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(move || {
        Tensor::<CudaGpu, 1>::zeros([1], &probe).into_data()
    }));
    std::panic::set_hook(hook);
    match result {
        Ok(_) => Ok(device),
        Err(payload) => {
            let reason = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown reason");
            Err(anyhow!(
                "the CUDA backend is not available (no NVIDIA driver or GPU?): {reason}; \
                 use --backend wgpu or --backend ndarray"
            ))
        }
    }
}

/// The error of `--backend cuda` in a build without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub fn cuda_not_built() -> anyhow::Error {
    anyhow!(
        "this helios was built without the CUDA backend: build it with `--features cuda` \
         (for example `cargo install --path crates/helios_cli --features cuda`), or use \
         --backend wgpu"
    )
}

/// Calls `$body` with `B` bound to the chosen backend type and `device` to its default device
/// (for CUDA, after [`cuda_device`] checked it; the enclosing function returns its error).
#[macro_export]
macro_rules! with_backend {
    ($choice:expr, |$device:ident : $b:ident| $body:expr) => {
        match $choice {
            $crate::backend::BackendChoice::Ndarray => {
                type $b = $crate::backend::Cpu;
                let $device = burn::backend::ndarray::NdArrayDevice::default();
                $body
            }
            $crate::backend::BackendChoice::Wgpu => {
                type $b = $crate::backend::Gpu;
                let $device = burn::backend::wgpu::WgpuDevice::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::BackendChoice::Cuda => {
                type $b = $crate::backend::CudaGpu;
                let $device = $crate::backend::cuda_device()?;
                $body
            }
            #[cfg(not(feature = "cuda"))]
            $crate::backend::BackendChoice::Cuda => return Err($crate::backend::cuda_not_built()),
        }
    };
}
