//! Weight loading: memory-mapped (sharded) safetensors applied onto burn modules.
//!
//! A part's module is first built from its config (`XConfig::init`, lazily initialised, so nothing is
//! allocated yet); [`load_module`] then walks its parameters with a [`ModuleMapper`], maps each burn
//! path to the diffusers key through the part's [`KeyMap`], checks the stored shape against the shape
//! the config implies, converts bf16 / f16 / f32 / f64 to the parameter's dtype and replaces the value.
//! Shards are memory-mapped: a tensor's bytes are read from the page cache once, converted and moved
//! to the device, so the process never holds a second full copy of the checkpoint. Missing keys,
//! unused keys, bad shapes and corrupt files are typed [`Error`]s naming the file and tensor.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// One memory-mapped safetensors file.
struct Shard {
    path: PathBuf,
    mmap: Mmap,
    /// Start of the data section (8 + header length).
    data_start: usize,
}

/// Where a tensor lives.
#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    offsets: (usize, usize),
}

/// The safetensors files of one model part: a single file, or the shards listed by
/// `<stem>.safetensors.index.json`.
pub struct SafetensorsSet {
    part: &'static str,
    location: PathBuf,
    shards: Vec<Shard>,
    entries: BTreeMap<String, Entry>,
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl SafetensorsSet {
    /// Opens `<dir>/<stem>.safetensors.index.json` and its shards if the index exists, else
    /// `<dir>/<stem>.safetensors`.
    pub fn open(part: &'static str, dir: &Path, stem: &str) -> Result<Self> {
        let index_path = dir.join(format!("{stem}.safetensors.index.json"));
        if index_path.exists() {
            let index: ShardIndex = crate::config::read_json(&index_path)?;
            let files: BTreeSet<&String> = index.weight_map.values().collect();
            let paths: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
            let set = Self::open_files(part, index_path.clone(), &paths)?;
            for (key, file) in &index.weight_map {
                if !set.entries.contains_key(key) {
                    return Err(Error::MissingTensor { part, key: key.clone(), path: dir.join(file) });
                }
            }
            Ok(set)
        } else {
            let path = dir.join(format!("{stem}.safetensors"));
            Self::open_files(part, path.clone(), &[path])
        }
    }

    /// Opens the given files as one set.
    pub fn open_files(part: &'static str, location: PathBuf, paths: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut entries = BTreeMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the mapping is read-only and lives as long as `Shard`; a checkpoint file being
            // modified while it is loaded is outside what any loader can guard against.
            #[allow(unsafe_code)]
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let corrupt = |source: safetensors::SafeTensorError| Error::Safetensors { path: path.clone(), source };
            // Full validation: header, offsets, and that the data section matches the file length.
            SafeTensors::deserialize(&mmap).map_err(corrupt)?;
            let (header_len, meta) = SafeTensors::read_metadata(&mmap).map_err(corrupt)?;
            for (name, info) in meta.tensors() {
                entries.insert(
                    name,
                    Entry { shard: i, dtype: info.dtype, shape: info.shape.clone(), offsets: info.data_offsets },
                );
            }
            shards.push(Shard { path: path.clone(), mmap, data_start: 8 + header_len });
        }
        Ok(Self { part, location, shards, entries })
    }

    /// The model part this set belongs to.
    pub fn part(&self) -> &'static str {
        self.part
    }

    /// The index file or single file the set was opened from.
    pub fn location(&self) -> &Path {
        &self.location
    }

    /// All tensor names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether a tensor exists.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The stored shape of a tensor.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.entries.get(key).map(|e| e.shape.as_slice())
    }

    /// The stored dtype of a tensor, as a string (`BF16`, `F32`, ...).
    pub fn dtype(&self, key: &str) -> Option<String> {
        self.entries.get(key).map(|e| format!("{:?}", e.dtype))
    }

    /// Total bytes of all tensors.
    pub fn total_bytes(&self) -> usize {
        self.entries.values().map(|e| e.offsets.1 - e.offsets.0).sum()
    }

    /// The file holding a tensor.
    pub fn file_of(&self, key: &str) -> Option<&Path> {
        self.entries.get(key).map(|e| self.shards[e.shard].path.as_path())
    }

    /// Reads a tensor, converted to float32 (from bf16, f16, f32 or f64).
    pub fn read_f32(&self, key: &str) -> Result<TensorData> {
        let entry = self.entries.get(key).ok_or_else(|| Error::MissingTensor {
            part: self.part,
            key: key.to_string(),
            path: self.location.clone(),
        })?;
        let shard = &self.shards[entry.shard];
        let bytes = &shard.mmap[shard.data_start + entry.offsets.0..shard.data_start + entry.offsets.1];
        let values: Vec<f32> = match entry.dtype {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                .collect(),
            other => {
                return Err(Error::UnsupportedDtype {
                    path: shard.path.clone(),
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(TensorData::new(values, entry.shape.clone()))
    }

    /// Reads an integer tensor (i64 / i32 / u8 / bool) as i64 values.
    pub fn read_i64(&self, key: &str) -> Result<(Vec<i64>, Vec<usize>)> {
        let entry = self.entries.get(key).ok_or_else(|| Error::MissingTensor {
            part: self.part,
            key: key.to_string(),
            path: self.location.clone(),
        })?;
        let shard = &self.shards[entry.shard];
        let bytes = &shard.mmap[shard.data_start + entry.offsets.0..shard.data_start + entry.offsets.1];
        let values: Vec<i64> = match entry.dtype {
            Dtype::I64 => bytes.chunks_exact(8).map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])).collect(),
            Dtype::I32 => bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64).collect(),
            Dtype::U8 | Dtype::BOOL => bytes.iter().map(|&b| b as i64).collect(),
            other => {
                return Err(Error::UnsupportedDtype {
                    path: shard.path.clone(),
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok((values, entry.shape.clone()))
    }
}

/// Maps burn parameter paths (`blocks.0.attn1.to_out.weight`) to checkpoint keys
/// (`blocks.0.attn1.to_out.0.weight`). Rules are applied in order as plain substring replacements;
/// norm parameters (`gamma` / `beta`) are renamed to `weight` / `bias` before the rules run.
#[derive(Debug, Clone, Default)]
pub struct KeyMap {
    rules: Vec<(&'static str, &'static str)>,
    prefix: &'static str,
    ignore_unused: Vec<&'static str>,
}

impl KeyMap {
    /// A map with substring rules `(burn, checkpoint)`.
    pub fn new(rules: &[(&'static str, &'static str)]) -> Self {
        Self { rules: rules.to_vec(), prefix: "", ignore_unused: Vec::new() }
    }

    /// Prepends `prefix` to every checkpoint key.
    pub fn with_prefix(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    /// Checkpoint keys containing any of these substrings may stay unused (tied or legacy weights).
    pub fn ignoring_unused(mut self, patterns: &[&'static str]) -> Self {
        self.ignore_unused = patterns.to_vec();
        self
    }

    /// The checkpoint key of a burn path.
    pub fn checkpoint_key(&self, burn_path: &str) -> String {
        let mut key = burn_path.to_string();
        for (from, to) in &self.rules {
            key = key.replace(from, to);
        }
        format!("{}{}", self.prefix, key)
    }
}

/// Progress of [`load_module`].
#[derive(Debug, Clone, Copy)]
pub struct LoadProgress {
    /// Tensors loaded so far.
    pub loaded: usize,
    /// Tensors in the set.
    pub total: usize,
    /// Bytes loaded so far.
    pub bytes: usize,
}

/// What [`load_module`] applied.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Checkpoint keys applied.
    pub applied: Vec<String>,
    /// Checkpoint keys present but unused (only ignorable ones; others are an error).
    pub ignored: Vec<String>,
}

struct Loader<'a, B: Backend> {
    set: &'a SafetensorsSet,
    map: &'a KeyMap,
    path: Vec<String>,
    containers: Vec<String>,
    used: BTreeSet<String>,
    error: Option<Error>,
    bytes: usize,
    progress: &'a mut dyn FnMut(LoadProgress),
    _b: std::marker::PhantomData<B>,
}

impl<B: Backend> Loader<'_, B> {
    /// The checkpoint key and whether the value is a Linear weight (stored `[out, in]`).
    fn key(&self) -> (String, bool) {
        let mut segments = self.path.clone();
        let parent = self.containers.last().map(String::as_str).unwrap_or("");
        let leaf = segments.last().cloned().unwrap_or_default();
        let is_norm = parent.contains("Norm");
        if let Some(last) = segments.last_mut() {
            if is_norm && leaf == "gamma" {
                *last = "weight".into();
            } else if is_norm && leaf == "beta" {
                *last = "bias".into();
            }
        }
        let transpose = parent == "Struct:Linear" && leaf == "weight";
        (self.map.checkpoint_key(&segments.join(".")), transpose)
    }

    fn load<const D: usize>(&mut self, shape: &[usize], device: &B::Device) -> Option<Tensor<B, D>> {
        if self.error.is_some() {
            return None;
        }
        let (key, transpose) = self.key();
        let data = match self.set.read_f32(&key) {
            Ok(d) => d,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        };
        let stored = data.shape.to_vec();
        let expected: Vec<usize> = if transpose && D == 2 { vec![shape[1], shape[0]] } else { shape.to_vec() };
        if stored != expected {
            self.error = Some(Error::TensorShape {
                part: self.set.part,
                path: self.set.file_of(&key).unwrap_or(self.set.location()).to_path_buf(),
                key,
                expected,
                got: stored,
            });
            return None;
        }
        self.bytes += data.bytes.len();
        let mut tensor = Tensor::<B, D>::from_data(data, (device, DType::F32));
        if transpose {
            tensor = tensor.transpose();
        }
        self.used.insert(key);
        (self.progress)(LoadProgress { loaded: self.used.len(), total: self.set.entries.len(), bytes: self.bytes });
        Some(tensor)
    }
}

impl<B: Backend> ModuleMapper<B> for Loader<'_, B> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
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

/// Loads every float parameter of `module` from `set`, mapping burn paths to checkpoint keys with
/// `map`. Fails on the first missing tensor or wrong shape, and when the set holds tensors the module
/// does not use (other than those `map` ignores).
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    set: &SafetensorsSet,
    map: &KeyMap,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(M, LoadReport)> {
    let mut loader = Loader::<B> {
        set,
        map,
        path: Vec::new(),
        containers: Vec::new(),
        used: BTreeSet::new(),
        error: None,
        bytes: 0,
        progress,
        _b: std::marker::PhantomData,
    };
    let module = module.map(&mut loader);
    if let Some(e) = loader.error {
        return Err(e);
    }
    let mut ignored = Vec::new();
    let mut unexpected = Vec::new();
    for key in set.keys() {
        if loader.used.contains(key) {
            continue;
        }
        if map.ignore_unused.iter().any(|p| key.contains(p)) {
            ignored.push(key.to_string());
        } else {
            unexpected.push(key.to_string());
        }
    }
    if !unexpected.is_empty() {
        return Err(Error::UnexpectedTensors { part: set.part, path: set.location.clone(), keys: unexpected });
    }
    tracing::debug!(part = set.part, tensors = loader.used.len(), bytes = loader.bytes, "weights loaded");
    Ok((module, LoadReport { applied: loader.used.into_iter().collect(), ignored }))
}

/// A lazily zero-initialised parameter: nothing is allocated until the loader replaces it (or the
/// value is first read).
pub fn lazy_zeros<B: Backend, const D: usize>(shape: [usize; D], device: &B::Device) -> Param<Tensor<B, D>> {
    Param::uninitialized(
        burn::module::ParamId::new(),
        move |d, _| Tensor::zeros(shape, d),
        device.clone(),
        false,
        shape.into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_applies_rules_in_order_then_the_prefix() {
        let map = KeyMap::new(&[(".ffn.proj_in.", ".ffn.net.0.proj."), (".to_out.", ".to_out.0.")]).with_prefix("model.");
        assert_eq!(map.checkpoint_key("blocks.3.ffn.proj_in.weight"), "model.blocks.3.ffn.net.0.proj.weight");
        assert_eq!(map.checkpoint_key("blocks.0.attn1.to_out.bias"), "model.blocks.0.attn1.to_out.0.bias");
        assert_eq!(map.checkpoint_key("proj_out.weight"), "model.proj_out.weight");
    }
}
