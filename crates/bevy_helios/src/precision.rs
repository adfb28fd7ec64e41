//! [`HeliosPrecision`]: the DiT's compute precision, a setting.

use bevy::prelude::*;
use helios_worker::EnginePrecision;
use serde::{Deserialize, Serialize};

/// The precision the DiT (the transformer, nearly all of the compute) runs at (the worker's
/// [`EnginePrecision`], as a reflected setting).
#[derive(Reflect, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeliosPrecision {
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

impl From<HeliosPrecision> for EnginePrecision {
    fn from(precision: HeliosPrecision) -> Self {
        match precision {
            HeliosPrecision::Auto => Self::Auto,
            HeliosPrecision::F32 => Self::F32,
            HeliosPrecision::Half => Self::Half,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_precision_maps_to_its_engine_precision() {
        assert_eq!(
            EnginePrecision::from(HeliosPrecision::default()),
            EnginePrecision::default()
        );
        assert_eq!(
            EnginePrecision::from(HeliosPrecision::F32),
            EnginePrecision::F32
        );
        assert_eq!(
            EnginePrecision::from(HeliosPrecision::Half),
            EnginePrecision::Half
        );
    }
}
