//! The safetensors files of one model part, memory-mapped, and reading a tensor out of them in the
//! dtype it is stored in on the device.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::tensor::{DType, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::StoreAs;
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
pub(super) struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    pub(super) offsets: (usize, usize),
}

/// The safetensors files of one model part: a single file, or the shards listed by
/// `<stem>.safetensors.index.json`.
pub struct SafetensorsSet {
    pub(super) part: &'static str,
    pub(super) location: PathBuf,
    shards: Vec<Shard>,
    pub(super) entries: BTreeMap<String, Entry>,
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

    /// A tensor's entry, the shard that holds it and its stored bytes.
    fn locate(&self, key: &str) -> Result<(&Entry, &Shard, &[u8])> {
        let entry = self.entries.get(key).ok_or_else(|| Error::MissingTensor {
            part: self.part,
            key: key.to_string(),
            path: self.location.clone(),
        })?;
        let shard = &self.shards[entry.shard];
        let bytes =
            &shard.mmap[shard.data_start + entry.offsets.0..shard.data_start + entry.offsets.1];
        Ok((entry, shard, bytes))
    }

    /// Reads a tensor, converted to float32 (from bf16, f16, f32 or f64).
    pub fn read_f32(&self, key: &str) -> Result<TensorData> {
        let (entry, shard, bytes) = self.locate(key)?;
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
        let (entry, _, bytes) = self.locate(key)?;
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
        let (entry, shard, bytes) = self.locate(key)?;
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
