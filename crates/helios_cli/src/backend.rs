//! Backend selection for the commands.

use clap::ValueEnum;

/// The burn backend a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// CPU (ndarray).
    Ndarray,
    /// GPU through wgpu (Vulkan, Metal, DX12; lavapipe on machines without a GPU).
    Wgpu,
}

/// The CPU backend.
pub type Cpu = burn::backend::NdArray<f32>;
/// The wgpu backend.
pub type Gpu = burn::backend::Wgpu;

/// Calls `$body` with `B` bound to the chosen backend type and `device` to its default device.
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
        }
    };
}
