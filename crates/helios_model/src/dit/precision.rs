//! The DiT's compute precision: float32, or the half-precision path of the real pipeline.
//!
//! diffusers loads Helios with `torch_dtype=bfloat16` and keeps `_keep_in_fp32_modules`
//! (`time_embedder`, `scale_shift_table`, `norm1/2/3`, `history_key_scale`) in float32; the block
//! upcasts with `.float()` around the norms and the modulation and casts back with `.type_as`. This
//! module reproduces those casts. On a backend with native bf16 (or, failing that, f16) tensors the
//! half path computes in that dtype; on one with neither (the CPU ndarray backend) it emulates bf16:
//! values are rounded to bf16 precision at the same cast points while the arithmetic stays f32.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

use crate::weights::{DtypePolicy, StoreAs};

/// How the DiT computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything float32 (the golden reference path).
    #[default]
    F32,
    /// Half precision in a native dtype (`BF16` or `F16`), fp32-kept modules in float32.
    Native(DType),
    /// bf16 emulated in float32 storage (round-to-bf16 at every cast point).
    EmulatedBf16,
}

/// Parameter paths diffusers keeps in float32 (`_keep_in_fp32_modules`).
pub const KEEP_IN_FP32: [&str; 6] = [
    "time_embedder",
    "scale_shift_table",
    "norm1",
    "norm2",
    "norm3",
    "history_key_scale",
];

/// Rounds float32 values to the nearest bf16 value (Veltkamp splitting: only mul/sub, so it runs on
/// any backend). Values stay float32.
pub fn round_bf16<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    // 2^(24 - 8) + 1: keeps the top 8 significant bits of a float32.
    const SPLIT: f32 = 65537.0;
    let t = x.clone().mul_scalar(SPLIT);
    t.clone() - (t - x)
}

impl Precision {
    /// The half-precision path of backend `B`: bf16 if it has it, else f16, else emulated bf16.
    pub fn half_for<B: Backend>(device: &B::Device) -> Self {
        if B::supports_dtype(device, DType::BF16) {
            Self::Native(DType::BF16)
        } else if B::supports_dtype(device, DType::F16) {
            Self::Native(DType::F16)
        } else {
            Self::EmulatedBf16
        }
    }

    /// How the loader stores the DiT's weights at this precision: the compute dtype, float32 for
    /// [`KEEP_IN_FP32`].
    pub fn dtype_policy(&self) -> DtypePolicy {
        let store = match self {
            Self::F32 => StoreAs::F32,
            Self::Native(dt) => StoreAs::Half(*dt),
            Self::EmulatedBf16 => StoreAs::RoundedBf16,
        };
        DtypePolicy {
            store,
            quantize: None,
            keep_f32: &KEEP_IN_FP32,
        }
    }

    /// Whether the attention may run cubecl's flash kernels (see
    /// [`super::attention::fused_attention`]): on the native half path only. Those kernels compute
    /// in f16 tiles whatever the input dtype, so the float32 paths (the golden reference, and the
    /// CPU backend's emulated bf16) ask for the exact composition instead.
    pub fn flash_attention(&self) -> bool {
        matches!(self, Self::Native(_))
    }

    /// Whether this is a half-precision path.
    pub fn is_half(&self) -> bool {
        *self != Self::F32
    }

    /// To the compute dtype (torch's `.to(bfloat16)` / `.type_as(hidden_states)`).
    pub fn c<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::F32 => x,
            Self::Native(dt) => x.cast(*dt),
            Self::EmulatedBf16 => round_bf16(x),
        }
    }

    /// To float32 (torch's `.float()`).
    pub fn f<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Native(_) => x.cast(DType::F32),
            _ => x,
        }
    }

    /// Casts (or rounds) every parameter of `module` outside [`KEEP_IN_FP32`] to this precision.
    pub fn apply<B: Backend, M: Module<B>>(&self, module: M) -> M {
        if !self.is_half() {
            return module;
        }
        module.map(&mut Caster {
            precision: *self,
            path: Vec::new(),
        })
    }
}

struct Caster {
    precision: Precision,
    path: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Caster {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.path.iter().any(|p| KEEP_IN_FP32.contains(&p.as_str())) {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, self.precision.c(tensor), mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::TensorData;

    #[test]
    fn rounding_matches_bf16() {
        let values = vec![1.0f32, 1.0039, 1.001, 2.718_281_7, -1234.567, 1e-3, 0.0];
        let t = Tensor::<TestBackend, 1>::from_data(
            TensorData::new(values.clone(), [values.len()]),
            &Default::default(),
        );
        let rounded: Vec<f32> = round_bf16(t).into_data().to_vec().unwrap();
        assert_eq!(rounded.len(), values.len());
        for (v, r) in values.iter().zip(&rounded) {
            let expected = half::bf16::from_f32(*v).to_f32();
            assert!(
                (expected - r).abs() <= expected.abs() * 1e-7,
                "{v}: {r} vs {expected}"
            );
        }
    }
}
