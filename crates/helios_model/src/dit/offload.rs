//! Layer offload: DiT blocks whose weights stay in host memory and go to the device only for their
//! own forward pass, for a model that does not fit the card even quantised.
//!
//! Each offloaded block is loaded through the normal loader (dtype conversion and int8
//! quantisation included) onto the device, read back into host memory and dropped, one block at a
//! time, so the device never holds more than the resident model and one block. At each DiT call
//! the block is rebuilt on the device from its host copy, runs, and is dropped: the device holds
//! one offloaded block at a time, and each call moves the offloaded weights across the bus once.

use std::sync::Arc;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::block::{BlockSettings, HeliosTransformerBlock};
use crate::error::{Error, Result};

/// One DiT block's parameters in host memory, in the order a block's modules visit them.
#[derive(Debug, Clone)]
pub struct HostBlock {
    params: Arc<Vec<TensorData>>,
}

/// Reads every float parameter of a block back to host memory.
struct Reader {
    params: Vec<TensorData>,
}

impl<B: Backend> ModuleVisitor<B> for Reader {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.params.push(param.val().into_data());
    }
}

/// Puts host parameters into a block skeleton, in visiting order.
struct Writer<'a, B: Backend> {
    params: &'a [TensorData],
    next: usize,
    device: &'a B::Device,
    missing: bool,
}

impl<B: Backend> ModuleMapper<B> for Writer<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(data) = self.params.get(self.next) else {
            self.missing = true;
            return param;
        };
        self.next += 1;
        let id = param.id;
        param.transform_for_load(Tensor::from_data(data.clone(), self.device), id)
    }
}

impl HostBlock {
    /// Moves a loaded block into host memory (the device copy is dropped).
    pub fn from_block<B: Backend>(block: HeliosTransformerBlock<B>) -> Self {
        let mut reader = Reader { params: Vec::new() };
        block.visit(&mut reader);
        Self {
            params: Arc::new(reader.params),
        }
    }

    /// The block on `device`, rebuilt from the host copy.
    pub fn upload<B: Backend>(
        &self,
        settings: BlockSettings,
        device: &B::Device,
    ) -> Result<HeliosTransformerBlock<B>> {
        let mut writer = Writer::<B> {
            params: &self.params,
            next: 0,
            device,
            missing: false,
        };
        let block = HeliosTransformerBlock::new(settings, device).map(&mut writer);
        if writer.missing || writer.next != self.params.len() {
            return Err(Error::InvalidRequest(format!(
                "an offloaded DiT block holds {} parameters, the block has {}",
                self.params.len(),
                writer.next
            )));
        }
        Ok(block)
    }
}
