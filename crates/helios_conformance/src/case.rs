//! One golden case: its JSON sidecar and its tensors.

use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use helios_model::weights::SafetensorsSet;
use serde_json::Value;

use crate::{ConformanceError, Result};

/// A recommended tolerance of a case (`tolerances[*].recommended`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    /// The check's name (`float32 forward`, ...).
    pub what: String,
    /// The tensors it covers.
    pub tensors: Vec<String>,
    /// Largest allowed max-abs error.
    pub max_abs: f64,
    /// Largest allowed relative L2 error.
    pub rel_l2: f64,
}

/// A golden case: `cases/<name>.json` and, where present, `cases/<name>.safetensors`.
pub struct Case {
    /// The case name (file stem).
    pub name: String,
    /// The JSON sidecar.
    pub json: Value,
    json_path: PathBuf,
    tensors: Option<SafetensorsSet>,
}

impl Case {
    /// Opens `<fixture_dir>/cases/<name>.json` (+ `.safetensors`).
    pub fn open(fixture_dir: &Path, name: &str) -> Result<Self> {
        let dir = fixture_dir.join("cases");
        let json_path = dir.join(format!("{name}.json"));
        let json: Value = helios_model::config::read_json(&json_path)?;
        let st = dir.join(format!("{name}.safetensors"));
        let tensors = if st.exists() {
            Some(SafetensorsSet::open_files("case", st.clone(), &[st])?)
        } else {
            None
        };
        Ok(Self {
            name: name.to_string(),
            json,
            json_path,
            tensors,
        })
    }

    /// An error about this case file.
    pub fn error(&self, message: impl Into<String>) -> ConformanceError {
        ConformanceError::Case {
            path: self.json_path.clone(),
            message: message.into(),
        }
    }

    /// An error about a field of this case that does not deserialise.
    pub fn field_error(
        &self,
        field: impl Into<String>,
        source: serde_json::Error,
    ) -> ConformanceError {
        ConformanceError::Field {
            path: self.json_path.clone(),
            field: field.into(),
            source,
        }
    }

    /// An error about a tensor of this case that cannot be converted.
    pub fn data_error(
        &self,
        tensor: impl Into<String>,
        source: burn::tensor::DataError,
    ) -> ConformanceError {
        ConformanceError::TensorData {
            path: self.json_path.clone(),
            tensor: tensor.into(),
            source,
        }
    }

    fn set(&self) -> Result<&SafetensorsSet> {
        self.tensors
            .as_ref()
            .ok_or_else(|| self.error("the case has no .safetensors file"))
    }

    /// Whether the case stores a tensor.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.as_ref().is_some_and(|s| s.contains(name))
    }

    /// A float tensor, as f32.
    pub fn f32(&self, name: &str) -> Result<TensorData> {
        Ok(self.set()?.read_f32(name)?)
    }

    /// An integer tensor as i64 values and its shape.
    pub fn i64(&self, name: &str) -> Result<(Vec<i64>, Vec<usize>)> {
        Ok(self.set()?.read_i64(name)?)
    }

    /// A JSON field, or an error naming it.
    pub fn field(&self, key: &str) -> Result<&Value> {
        self.json
            .get(key)
            .ok_or_else(|| self.error(format!("missing field `{key}`")))
    }

    /// A JSON field deserialised.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        serde_json::from_value(self.field(key)?.clone()).map_err(|e| self.field_error(key, e))
    }

    /// Every recommended tolerance of the case.
    pub fn tolerances(&self) -> Result<Vec<Tolerance>> {
        let list = self
            .field("tolerances")?
            .as_array()
            .ok_or_else(|| self.error("`tolerances` is not a list"))?;
        list.iter()
            .map(|t| {
                let num = |k: &str| {
                    t.get("recommended")
                        .and_then(|r| r.get(k))
                        .and_then(Value::as_f64)
                };
                Ok(Tolerance {
                    what: t
                        .get("what")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    tensors: t
                        .get("tensors")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    max_abs: num("max_abs")
                        .ok_or_else(|| self.error("a tolerance lacks recommended.max_abs"))?,
                    rel_l2: num("rel_l2")
                        .ok_or_else(|| self.error("a tolerance lacks recommended.rel_l2"))?,
                })
            })
            .collect()
    }

    /// The tolerance that covers `tensor`.
    pub fn tolerance(&self, tensor: &str) -> Result<Tolerance> {
        self.tolerances()?
            .into_iter()
            .find(|t| t.tensors.iter().any(|n| n == tensor))
            .ok_or_else(|| self.error(format!("no tolerance covers `{tensor}`")))
    }
}
