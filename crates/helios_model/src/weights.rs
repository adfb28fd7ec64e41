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
                    return Err(Error::MissingTensor {
                        part,
                        key: key.clone(),
                        path: dir.join(file),
                    });
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
            let corrupt = |source: safetensors::SafeTensorError| Error::Safetensors {
                path: path.clone(),
                source,
            };
            // Full validation: header, offsets, and that the data section matches the file length.
            SafeTensors::deserialize(&mmap).map_err(corrupt)?;
            let (header_len, meta) = SafeTensors::read_metadata(&mmap).map_err(corrupt)?;
            for (name, info) in meta.tensors() {
                entries.insert(
                    name,
                    Entry {
                        shard: i,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        offsets: info.data_offsets,
                    },
                );
            }
            shards.push(Shard {
                path: path.clone(),
                mmap,
                data_start: 8 + header_len,
            });
        }
        Ok(Self {
            part,
            location,
            shards,
            entries,
        })
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
        self.entries
            .values()
            .map(|e| e.offsets.1 - e.offsets.0)
            .sum()
    }

    /// The file holding a tensor.
    pub fn file_of(&self, key: &str) -> Option<&Path> {
        self.entries
            .get(key)
            .map(|e| self.shards[e.shard].path.as_path())
    }

    /// Reads a tensor, converted to float32 (from bf16, f16, f32 or f64).
    pub fn read_f32(&self, key: &str) -> Result<TensorData> {
        let entry = self.entries.get(key).ok_or_else(|| Error::MissingTensor {
            part: self.part,
            key: key.to_string(),
            path: self.location.clone(),
        })?;
        let shard = &self.shards[entry.shard];
        let bytes =
            &shard.mmap[shard.data_start + entry.offsets.0..shard.data_start + entry.offsets.1];
        let values: Vec<f32> = match entry.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|b| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                })
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

    /// Reads a tensor converted on the host to the dtype `store` asks for; returns the data and
    /// the stored dtype's name. bf16 → f16 goes through f32 per element, never a whole f32 copy.
    pub fn read_as(&self, key: &str, store: StoreAs) -> Result<(TensorData, String)> {
        let entry = self.entries.get(key).ok_or_else(|| Error::MissingTensor {
            part: self.part,
            key: key.to_string(),
            path: self.location.clone(),
        })?;
        let shard = &self.shards[entry.shard];
        let bytes =
            &shard.mmap[shard.data_start + entry.offsets.0..shard.data_start + entry.offsets.1];
        let from = format!("{:?}", entry.dtype);
        let data = match store {
            StoreAs::F32 => return Ok((self.read_f32(key)?, from)),
            StoreAs::RoundedBf16 => {
                let data = self.read_f32(key)?;
                let values: Vec<f32> = data
                    .iter::<f32>()
                    .map(|v| half::bf16::from_f32(v).to_f32())
                    .collect();
                TensorData::new(values, entry.shape.clone())
            }
            StoreAs::Half(DType::BF16) => {
                let values: Vec<half::bf16> = match entry.dtype {
                    Dtype::BF16 => bytes
                        .chunks_exact(2)
                        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]))
                        .collect(),
                    _ => self
                        .read_f32(key)?
                        .iter::<f32>()
                        .map(half::bf16::from_f32)
                        .collect(),
                };
                TensorData::new(values, entry.shape.clone())
            }
            StoreAs::Half(_) => {
                let values: Vec<half::f16> = match entry.dtype {
                    Dtype::F16 => bytes
                        .chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]))
                        .collect(),
                    Dtype::BF16 => bytes
                        .chunks_exact(2)
                        .map(|b| {
                            half::f16::from_f32(half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                        })
                        .collect(),
                    _ => self
                        .read_f32(key)?
                        .iter::<f32>()
                        .map(half::f16::from_f32)
                        .collect(),
                };
                TensorData::new(values, entry.shape.clone())
            }
        };
        Ok((data, from))
    }

    /// Reads an integer tensor (i64 / i32 / u8 / bool) as i64 values.
    pub fn read_i64(&self, key: &str) -> Result<(Vec<i64>, Vec<usize>)> {
        let entry = self.entries.get(key).ok_or_else(|| Error::MissingTensor {
            part: self.part,
            key: key.to_string(),
            path: self.location.clone(),
        })?;
        let shard = &self.shards[entry.shard];
        let bytes =
            &shard.mmap[shard.data_start + entry.offsets.0..shard.data_start + entry.offsets.1];
        let values: Vec<i64> = match entry.dtype {
            Dtype::I64 => bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            Dtype::I32 => bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
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
/// (`blocks.0.attn1.to_out.0.weight`), by path only. A leaf named `gamma` / `beta` (burn's norms)
/// is renamed `weight` / `bias` first, then the rules are applied in order as plain substring
/// replacements. A 2-D parameter named `weight` is a linear layer's, stored `[out, in]` in the
/// checkpoint and `[in, out]` in burn, unless its path matches a [`KeyMap::keeping_layout`] pattern
/// (embeddings).
#[derive(Debug, Clone, Default)]
pub struct KeyMap {
    rules: Vec<(&'static str, &'static str)>,
    prefix: &'static str,
    ignore_unused: Vec<&'static str>,
    keep_layout: Vec<&'static str>,
}

impl KeyMap {
    /// A map with substring rules `(burn, checkpoint)`.
    pub fn new(rules: &[(&'static str, &'static str)]) -> Self {
        Self {
            rules: rules.to_vec(),
            ..Self::default()
        }
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

    /// 2-D `weight` parameters whose burn path contains any of these substrings are stored as in
    /// the checkpoint (embedding tables), not transposed as a linear layer's.
    pub fn keeping_layout(mut self, patterns: &[&'static str]) -> Self {
        self.keep_layout = patterns.to_vec();
        self
    }

    /// The checkpoint key of a burn path.
    pub fn checkpoint_key(&self, burn_path: &str) -> String {
        let mut key = match burn_path.rsplit_once('.') {
            Some((parent, "gamma")) => format!("{parent}.weight"),
            Some((parent, "beta")) => format!("{parent}.bias"),
            _ => burn_path.to_string(),
        };
        for (from, to) in &self.rules {
            key = key.replace(from, to);
        }
        format!("{}{}", self.prefix, key)
    }

    /// Whether the parameter at `burn_path` with `rank` axes is a linear weight (stored transposed).
    pub fn is_transposed(&self, burn_path: &str, rank: usize) -> bool {
        rank == 2
            && (burn_path == "weight" || burn_path.ends_with(".weight"))
            && !self.keep_layout.iter().any(|p| burn_path.contains(p))
    }
}

/// The dtype floats are stored in on the device as they are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreAs {
    /// float32.
    #[default]
    F32,
    /// A native half dtype (`F16` or `BF16`), converted on the host straight from the stored dtype.
    Half(DType),
    /// float32 values rounded to bf16 precision (bf16 emulated on a backend without half types).
    RoundedBf16,
}

/// Which parameters are loaded in which dtype: `store` for all, except the parameters with a path
/// segment in `keep_f32` (diffusers' `_keep_in_fp32_modules` matching), which stay float32.
#[derive(Debug, Clone, Copy, Default)]
pub struct DtypePolicy {
    /// The dtype of most parameters.
    pub store: StoreAs,
    /// Weight-only quantisation, applied to each matching tensor right after it is loaded (so
    /// the device never holds the unquantised model).
    pub quantize: Option<QuantizePolicy>,
    /// Module names kept in float32.
    pub keep_f32: &'static [&'static str],
}

impl DtypePolicy {
    /// Everything float32.
    pub const F32: Self = Self {
        store: StoreAs::F32,
        quantize: None,
        keep_f32: &[],
    };

    /// How the parameter at `burn_path` is stored.
    pub fn store_for(&self, burn_path: &str) -> StoreAs {
        if burn_path.split('.').any(|s| self.keep_f32.contains(&s)) {
            StoreAs::F32
        } else {
            self.store
        }
    }
}

/// Which parameters are quantised as they are loaded, and how.
#[derive(Debug, Clone, Copy)]
pub struct QuantizePolicy {
    /// burn's quantisation scheme.
    pub scheme: burn::tensor::quantization::QuantScheme,
    /// Whether the parameter at this burn path (`blocks.0.attn1.to_q.weight`) with this shape
    /// is quantised.
    pub applies: fn(&str, &[usize]) -> bool,
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
    /// The model part.
    pub part: &'static str,
    /// Checkpoint keys applied.
    pub applied: Vec<String>,
    /// Checkpoint keys present but unused (only ignorable ones; others are an error).
    pub ignored: Vec<String>,
    /// Bytes read from the checkpoint.
    pub bytes_read: usize,
    /// Bytes of the parameters as stored on the device.
    pub bytes_stored: usize,
    /// Tensors per dtype conversion, `"BF16 -> F16"` (unchanged dtypes are listed too, `"F32 -> F32"`).
    pub conversions: BTreeMap<String, usize>,
    /// Tensors stored quantised ([`DtypePolicy::quantize`]).
    pub quantized: usize,
    /// Bytes of the parameters kept in host memory and moved to the device only while they are
    /// used (offloaded DiT blocks); not counted in `bytes_stored`.
    pub bytes_offloaded: usize,
}

impl LoadReport {
    /// Adds what another load of the same part applied.
    pub fn merge(&mut self, other: LoadReport) {
        self.applied.extend(other.applied);
        self.ignored.extend(other.ignored);
        self.bytes_read += other.bytes_read;
        self.bytes_stored += other.bytes_stored;
        self.bytes_offloaded += other.bytes_offloaded;
        self.quantized += other.quantized;
        for (conversion, n) in other.conversions {
            *self.conversions.entry(conversion).or_default() += n;
        }
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "{}: {} tensors, {:.1} MiB read, {:.1} MiB on the device",
            self.part,
            self.applied.len(),
            mib(self.bytes_read),
            mib(self.bytes_stored)
        )?;
        for (conversion, n) in &self.conversions {
            write!(f, ", {n} {conversion}")?;
        }
        if self.quantized > 0 {
            write!(f, ", {} quantised", self.quantized)?;
        }
        if self.bytes_offloaded > 0 {
            write!(
                f,
                ", {:.1} MiB offloaded to host memory",
                mib(self.bytes_offloaded)
            )?;
        }
        if !self.ignored.is_empty() {
            write!(f, ", {} unused keys ignored", self.ignored.len())?;
        }
        Ok(())
    }
}

struct Loader<'a, B: Backend> {
    set: &'a SafetensorsSet,
    map: &'a KeyMap,
    policy: DtypePolicy,
    path: Vec<String>,
    used: BTreeSet<String>,
    error: Option<Error>,
    report: LoadReport,
    progress: &'a mut dyn FnMut(LoadProgress),
    _b: std::marker::PhantomData<B>,
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
fn transpose_2d(data: TensorData) -> TensorData {
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

/// Loads every float parameter of `module` from `set` in float32, mapping burn paths to
/// checkpoint keys with `map`. Fails on the first missing tensor or wrong shape, and when the set
/// holds tensors the module does not use (other than those `map` ignores).
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    set: &SafetensorsSet,
    map: &KeyMap,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(M, LoadReport)> {
    load_module_as(module, set, map, DtypePolicy::F32, progress)
}

/// [`load_module`] with the parameters stored as `policy` says: each tensor is converted on the
/// host from the checkpoint's dtype straight into its device dtype (no float32 copy of a half
/// checkpoint is made). The report is logged (`tracing::info!`) and returned.
pub fn load_module_as<B: Backend, M: Module<B>>(
    module: M,
    set: &SafetensorsSet,
    map: &KeyMap,
    policy: DtypePolicy,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(M, LoadReport)> {
    let (module, report) = load_module_part(module, set, map, policy, &[], progress)?;
    let report = check_all_used(set, map, report, &BTreeSet::new())?;
    log_report(&report);
    Ok((module, report))
}

/// Loads the float parameters of `module`, a part of a larger model found at the burn path `root`
/// (`["blocks", "38"]`), from `set`: paths are `root` joined with the module's own. Keys of `set`
/// outside the module are not checked (see [`check_all_used`]); `report.applied` lists what was read.
pub fn load_module_part<B: Backend, M: Module<B>>(
    module: M,
    set: &SafetensorsSet,
    map: &KeyMap,
    policy: DtypePolicy,
    root: &[String],
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(M, LoadReport)> {
    let mut loader = Loader::<B> {
        set,
        map,
        policy,
        path: root.to_vec(),
        used: BTreeSet::new(),
        error: None,
        report: LoadReport {
            part: set.part,
            ..LoadReport::default()
        },
        progress,
        _b: std::marker::PhantomData,
    };
    let module = module.map(&mut loader);
    if let Some(e) = loader.error {
        return Err(e);
    }
    let mut report = loader.report;
    report.applied = loader.used.into_iter().collect();
    Ok((module, report))
}

/// Fails when `set` holds tensors that neither `report.applied` nor `also_used` name and that
/// `map` does not ignore; lists the ignored ones in the report.
pub fn check_all_used(
    set: &SafetensorsSet,
    map: &KeyMap,
    mut report: LoadReport,
    also_used: &BTreeSet<String>,
) -> Result<LoadReport> {
    let applied: BTreeSet<&str> = report.applied.iter().map(String::as_str).collect();
    let mut unexpected = Vec::new();
    let mut ignored = Vec::new();
    for key in set.keys() {
        if applied.contains(key) || also_used.contains(key) {
            continue;
        }
        if map.ignore_unused.iter().any(|p| key.contains(p)) {
            ignored.push(key.to_string());
        } else {
            unexpected.push(key.to_string());
        }
    }
    if !unexpected.is_empty() {
        return Err(Error::UnexpectedTensors {
            part: set.part,
            path: set.location.clone(),
            keys: unexpected,
        });
    }
    report.ignored = ignored;
    Ok(report)
}

/// Logs what a load applied.
pub fn log_report(report: &LoadReport) {
    tracing::info!(
        part = report.part,
        tensors = report.applied.len(),
        bytes_read = report.bytes_read,
        bytes_stored = report.bytes_stored,
        bytes_offloaded = report.bytes_offloaded,
        conversions = ?report.conversions,
        "weights loaded"
    );
}

/// A lazily zero-initialised parameter: nothing is allocated until the loader replaces it (or the
/// value is first read).
pub fn lazy_zeros<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
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
    fn linear_weights_are_transposed_on_the_host() {
        let f32s = TensorData::new((0..6).map(|v| v as f32).collect::<Vec<_>>(), [2, 3]);
        let t = transpose_2d(f32s);
        assert_eq!(t.shape.to_vec(), vec![3, 2]);
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
        let bf16s: Vec<half::bf16> = (0..6).map(|v| half::bf16::from_f32(v as f32)).collect();
        let t = transpose_2d(TensorData::new(bf16s, [3, 2]));
        assert_eq!(t.shape.to_vec(), vec![2, 3]);
        let got: Vec<f32> = t.iter::<f32>().collect();
        assert_eq!(got, vec![0., 2., 4., 1., 3., 5.]);
    }

    #[test]
    fn key_map_applies_rules_in_order_then_the_prefix() {
        let map = KeyMap::new(&[
            (".ffn.proj_in.", ".ffn.net.0.proj."),
            (".to_out.", ".to_out.0."),
        ])
        .with_prefix("model.");
        assert_eq!(
            map.checkpoint_key("blocks.3.ffn.proj_in.weight"),
            "model.blocks.3.ffn.net.0.proj.weight"
        );
        assert_eq!(
            map.checkpoint_key("blocks.0.attn1.to_out.bias"),
            "model.blocks.0.attn1.to_out.0.bias"
        );
        assert_eq!(
            map.checkpoint_key("proj_out.weight"),
            "model.proj_out.weight"
        );
    }

    #[test]
    fn norm_parameters_and_linear_weights_are_recognised_by_path() {
        let map = KeyMap::new(&[]).keeping_layout(&["shared."]);
        assert_eq!(
            map.checkpoint_key("blocks.0.norm2.gamma"),
            "blocks.0.norm2.weight"
        );
        assert_eq!(
            map.checkpoint_key("blocks.0.norm2.beta"),
            "blocks.0.norm2.bias"
        );
        assert_eq!(
            map.checkpoint_key("gamma_table.weight"),
            "gamma_table.weight"
        );
        assert!(map.is_transposed("blocks.0.attn1.to_q.weight", 2));
        assert!(!map.is_transposed("blocks.0.attn1.to_q.bias", 1));
        assert!(!map.is_transposed("patch_embedding.weight", 5));
        assert!(!map.is_transposed("shared.weight", 2));
        assert!(!map.is_transposed("blocks.0.attn1.to_q.weightless", 2));
    }

    fn one_tensor_set(
        dtype: Dtype,
        bytes: Vec<u8>,
        shape: Vec<usize>,
    ) -> (tempfile::TempDir, SafetensorsSet) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let view = safetensors::tensor::TensorView::new(dtype, shape, &bytes).unwrap();
        safetensors::serialize_to_file([("w", view)], None, &path).unwrap();
        let set = SafetensorsSet::open_files("test", path.clone(), &[path]).unwrap();
        (dir, set)
    }

    #[test]
    fn bf16_converts_straight_to_the_half_dtypes() {
        let values = [1.0f32, -2.5, 3.140625, 65504.0, 1.0e-3];
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        let (_dir, set) = one_tensor_set(Dtype::BF16, bytes, vec![5]);
        let (f16, from) = set.read_as("w", StoreAs::Half(DType::F16)).unwrap();
        assert_eq!(from, "BF16");
        assert_eq!(f16.dtype, DType::F16);
        let expected: Vec<half::f16> = values
            .iter()
            .map(|v| half::f16::from_f32(half::bf16::from_f32(*v).to_f32()))
            .collect();
        assert_eq!(f16.to_vec::<half::f16>().unwrap(), expected);
        let (bf16, _) = set.read_as("w", StoreAs::Half(DType::BF16)).unwrap();
        assert_eq!(bf16.dtype, DType::BF16);
        let expected: Vec<half::bf16> = values.iter().map(|v| half::bf16::from_f32(*v)).collect();
        assert_eq!(bf16.to_vec::<half::bf16>().unwrap(), expected);
    }

    #[test]
    fn f32_rounds_to_bf16_values_when_bf16_is_emulated() {
        let values = [1.0039f32, -1234.567];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (_dir, set) = one_tensor_set(Dtype::F32, bytes, vec![2]);
        let (data, from) = set.read_as("w", StoreAs::RoundedBf16).unwrap();
        assert_eq!(from, "F32");
        let expected: Vec<f32> = values
            .iter()
            .map(|v| half::bf16::from_f32(*v).to_f32())
            .collect();
        assert_eq!(data.to_vec::<f32>().unwrap(), expected);
        assert_ne!(expected, values.to_vec());
    }
}
