//! How the engine runs: [`EngineBackend`] (which burn backend) and [`EnginePrecision`] (the DiT's
//! compute precision).

use burn::tensor::backend::Backend;
use helios_model::dit::Precision;
use serde::{Deserialize, Serialize};

/// The burn backend the worker runs the model on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EngineBackend {
    /// CPU (`burn::backend::NdArray<f32>`): runs everywhere; fine for the embedded demo model.
    #[default]
    NdArray,
    /// GPU (`burn::backend::Wgpu`): wgpu 29, on a device of its own or on one shared with a
    /// renderer ([`EngineConfig::shared_wgpu`](crate::EngineConfig::shared_wgpu)).
    Wgpu,
    /// NVIDIA GPU (`burn::backend::Cuda`, the crate's `cuda` feature); frames are read back to
    /// the CPU. Without a CUDA driver, or in a build without the feature, loading fails with
    /// [`WorkerError::BackendUnavailable`](crate::WorkerError::BackendUnavailable).
    Cuda,
}

/// The precision the DiT (the transformer, nearly all of the compute) runs at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EnginePrecision {
    /// Half precision on a GPU backend, float32 on the CPU.
    #[default]
    Auto,
    /// Everything float32 (the reference path; slower, twice the memory on a GPU).
    F32,
    /// The half-precision path of the reference pipeline (diffusers runs Helios in bf16): bf16 on
    /// a backend that has it, else f16, else bf16 emulated in float32 (the CPU backend: as slow
    /// as float32, only the rounding of the real pipeline).
    Half,
}

impl EnginePrecision {
    /// The DiT precision on backend `B` (`gpu`: whether `B` is a GPU backend, for `Auto`).
    pub fn dit_precision<B: Backend>(self, device: &B::Device, gpu: bool) -> Precision {
        match self {
            Self::F32 => Precision::F32,
            Self::Auto if !gpu => Precision::F32,
            Self::Auto | Self::Half => Precision::half_for::<B>(device),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;

    use super::*;

    #[test]
    fn auto_is_half_on_a_gpu_and_f32_on_the_cpu() {
        let device = Default::default();
        let on = |p: EnginePrecision, gpu| p.dit_precision::<NdArray<f32>>(&device, gpu);
        assert_eq!(on(EnginePrecision::Auto, false), Precision::F32);
        assert_eq!(on(EnginePrecision::F32, true), Precision::F32);
        // NdArray has no half dtype: the half path is emulated bf16.
        assert_eq!(on(EnginePrecision::Half, false), Precision::EmulatedBf16);
        assert_eq!(on(EnginePrecision::Auto, true), Precision::EmulatedBf16);
    }
}
