//! The [`ModuleMapper`] that replaces each float parameter of a module with its checkpoint tensor.

use std::collections::BTreeSet;

use burn::module::{ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::{DtypePolicy, KeyMap, LoadProgress, LoadReport, SafetensorsSet};
use crate::error::{Error, Result};

pub(super) struct Loader<'a, B: Backend> {
    pub(super) set: &'a SafetensorsSet,
    pub(super) map: &'a KeyMap,
    pub(super) policy: DtypePolicy,
    pub(super) path: Vec<String>,
    pub(super) used: BTreeSet<String>,
    pub(super) error: Option<Error>,
    pub(super) report: LoadReport,
    pub(super) progress: &'a mut dyn FnMut(LoadProgress),
    pub(super) _b: std::marker::PhantomData<B>,
}

impl<B: Backend> Loader<'_, B> {
    fn load<const D: usize>(
        &mut self,
        shape: &[usize],
        device: &B::Device,
    ) -> Option<Tensor<B, D>> {
        if self.error.is_some() {
            return None;
        }
        match self.try_load(shape, device) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }

    fn try_load<const D: usize>(
        &mut self,
        shape: &[usize],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let burn_path = self.path.join(".");
        let key = self.map.checkpoint_key(&burn_path);
        let transpose = self.map.is_transposed(&burn_path, D);
        let stored =
            self.set
                .shape(&key)
                .map(<[usize]>::to_vec)
                .ok_or_else(|| Error::MissingTensor {
                    part: self.set.part,
                    key: key.clone(),
                    path: self.set.location.clone(),
                })?;
        let expected: Vec<usize> = if transpose {
            vec![shape[1], shape[0]]
        } else {
            shape.to_vec()
        };
        if stored != expected {
            return Err(Error::TensorShape {
                part: self.set.part,
                path: self
                    .set
                    .file_of(&key)
                    .unwrap_or(self.set.location())
                    .to_path_buf(),
                key,
                expected,
                got: stored,
            });
        }
        let store = self.policy.store_for(&burn_path);
        let (data, from) = self.set.read_as(&key, store)?;
        let to = data.dtype;
        self.report.bytes_read += self
            .set
            .entries
            .get(&key)
            .map_or(0, |e| e.offsets.1 - e.offsets.0);
        self.report.bytes_stored += data.bytes.len();
        *self
            .report
            .conversions
            .entry(format!("{from} -> {to:?}"))
            .or_default() += 1;
        // A linear weight is transposed on the host, so the device holds it contiguous as
        // `[in, out]`: matmuls read it in order, and no backend sees a strided weight (burn's
        // fused wgpu matmul computes a wrong product from a transposed view of a loaded tensor).
        let data = if transpose { transpose_2d(data) } else { data };
        let mut tensor = Tensor::<B, D>::from_data(data, (device, to));
        if let Some(q) = self.policy.quantize
            && (q.applies)(&burn_path, shape)
        {
            let values = tensor.shape().num_elements();
            tensor = crate::dit::quantize::quantize_tensor(tensor, &q.scheme);
            self.report.quantized += 1;
            // One byte per value and a float32 scale per block, instead of the dtype's bytes.
            self.report.bytes_stored = self.report.bytes_stored - values * to.size()
                + crate::dit::quantize::stored_bytes(values);
        }
        self.used.insert(key);
        (self.progress)(LoadProgress {
            loaded: self.used.len(),
            total: self.set.entries.len(),
            bytes: self.report.bytes_read,
        });
        Ok(tensor)
    }
}

/// A `[rows, cols]` tensor of any element type as the contiguous `[cols, rows]` tensor.
pub(super) fn transpose_2d(data: TensorData) -> TensorData {
    let (rows, cols) = (data.shape[0], data.shape[1]);
    let size = data.dtype.size();
    let src = data.as_bytes();
    let mut out = vec![0u8; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            let from = (r * cols + c) * size;
            let to = (c * rows + r) * size;
            out[to..to + size].copy_from_slice(&src[from..from + size]);
        }
    }
    TensorData::from_bytes_vec(out, [cols, rows], data.dtype)
}

impl<B: Backend> ModuleMapper<B> for Loader<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let id = param.id;
        let device = param.lazy_device();
        let shape = param.lazy_shape();
        match self.load::<D>(&shape.to_vec(), &device) {
            Some(t) => param.transform_for_load(t, id),
            None => param,
        }
    }
}
