//! Weight-only quantisation of the DiT, for cards with less memory than the 14B model needs.
//!
//! The linear layers of the transformer blocks (attention projections and feed-forward) hold
//! nearly all of the DiT's parameters. With [`WeightQuantization::Int8`] the loader stores each of
//! their weights as int8 with one float32 scale per block of 32 values (burn's `QuantScheme`,
//! symmetric `Q8S`) as soon as it is read ([`WeightQuantization::policy`]), so the device never
//! holds the unquantised model; [`quantize_blocks`] does the same to a model already built. The
//! matmul dequantises as it reads them: the arithmetic stays in the compute precision, only memory
//! and bandwidth shrink (about 3.8x against float32, 1.9x against bf16). Embeddings, norms, biases,
//! the modulation tables and the output projection keep their precision.

use std::any::Any;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::quantization::{
    Calibration, QuantLevel, QuantParam, QuantScheme, QuantStore, QuantValue, compute_q_params,
    compute_range,
};
use serde::{Deserialize, Serialize};

use super::HeliosTransformer3DModel;
use crate::weights::QuantizePolicy;

/// Values that share one scale.
pub const BLOCK: u8 = 32;

/// How the DiT's block weights are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WeightQuantization {
    /// As loaded (the DiT's precision).
    #[default]
    None,
    /// int8 with a float32 scale per block of [`BLOCK`] values.
    Int8,
}

/// What [`quantize_blocks`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuantizeReport {
    /// Weight tensors stored as int8.
    pub tensors: usize,
    /// Their values.
    pub values: usize,
}

impl WeightQuantization {
    /// The burn scheme on `device`: int8 values stored natively on the CPU backend, packed four
    /// to a `u32` on the GPU backends (which read int8 that way).
    pub fn scheme<B: Backend>(self, device: &B::Device) -> Option<QuantScheme> {
        match self {
            Self::None => None,
            Self::Int8 => {
                let cpu = (device as &dyn Any).is::<burn::backend::ndarray::NdArrayDevice>();
                let store = if cpu {
                    QuantStore::Native
                } else {
                    QuantStore::PackedU32(0)
                };
                Some(
                    QuantScheme::default()
                        .with_value(QuantValue::Q8S)
                        .with_param(QuantParam::F32)
                        .with_level(QuantLevel::block([BLOCK]))
                        .with_store(store),
                )
            }
        }
    }

    /// The loader's policy for it on `device` (`None` for [`WeightQuantization::None`]).
    pub fn policy<B: Backend>(self, device: &B::Device) -> Option<QuantizePolicy> {
        self.scheme::<B>(device).map(|scheme| QuantizePolicy {
            scheme,
            applies: is_block_linear,
        })
    }
}

/// Whether the parameter at burn path `path` with `shape` is quantised: a 2-D `weight` under
/// `blocks.N.` (attention projections, feed-forward; not the 1-D norms, nor the modulation
/// tables) whose last axis a block divides.
pub fn is_block_linear(path: &str, shape: &[usize]) -> bool {
    shape.len() == 2
        && path.starts_with("blocks.")
        && path.ends_with(".weight")
        && shape[1].is_multiple_of(usize::from(BLOCK))
}

/// Bytes `values` quantised values take: one byte each and a float32 scale per block of
/// [`BLOCK`] values.
pub fn stored_bytes(values: usize) -> usize {
    values + values.div_ceil(usize::from(BLOCK)) * 4
}

/// `tensor` quantised with `scheme` (min-max calibration).
pub fn quantize_tensor<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    scheme: &QuantScheme,
) -> Tensor<B, D> {
    let range = compute_range(scheme, &tensor, &Calibration::MinMax);
    let qparams = compute_q_params(scheme, range);
    tensor.quantize(scheme, qparams)
}

/// Quantises the block weights of an already built `model` (random weights for a benchmark; a
/// checkpoint is quantised as it loads, through [`WeightQuantization::policy`]).
pub fn quantize_blocks<B: Backend>(
    model: HeliosTransformer3DModel<B>,
    quantization: WeightQuantization,
    device: &B::Device,
) -> (HeliosTransformer3DModel<B>, QuantizeReport) {
    let Some(scheme) = quantization.scheme::<B>(device) else {
        return (model, QuantizeReport::default());
    };
    let mut mapper = BlockLinears {
        scheme,
        path: Vec::new(),
        report: QuantizeReport::default(),
    };
    let model = model.map(&mut mapper);
    (model, mapper.report)
}

struct BlockLinears {
    scheme: QuantScheme,
    path: Vec<String>,
    report: QuantizeReport,
}

impl<B: Backend> ModuleMapper<B> for BlockLinears {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.path.join(".");
        let (id, tensor, mapper) = param.consume();
        if !is_block_linear(&path, &tensor.dims()) {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        self.report.tensors += 1;
        self.report.values += tensor.shape().num_elements();
        Param::from_mapped_value(id, quantize_tensor(tensor, &self.scheme), mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_block_linear_weights_are_quantised() {
        assert!(is_block_linear("blocks.0.attn1.to_q.weight", &[64, 64]));
        assert!(is_block_linear("blocks.3.ffn.proj_in.weight", &[64, 128]));
        assert!(!is_block_linear("blocks.0.attn1.to_q.bias", &[64]));
        assert!(!is_block_linear("blocks.0.norm2.weight", &[64]));
        assert!(
            !is_block_linear("blocks.0.attn1.to_q.weight", &[64, 48]),
            "48 % 32"
        );
        assert!(!is_block_linear("proj_out.weight", &[64, 64]));
        assert!(!is_block_linear(
            "condition_embedder.time_proj.weight",
            &[64, 384]
        ));
    }

    #[test]
    fn the_setting_reads_as_a_word() {
        let q: WeightQuantization = serde_json::from_str("\"Int8\"").unwrap();
        assert_eq!(q, WeightQuantization::Int8);
        assert!(serde_json::from_str::<WeightQuantization>("\"Int4\"").is_err());
    }
}
