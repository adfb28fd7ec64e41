//! The five pipeline golden cases (Distilled T2V / I2V / V2V, Base T2V, Mid T2V), replayed from their
//! recorded draws, on NdArray and on wgpu (lavapipe where there is no GPU): every check must be OK.

use crate::common::assert_case;
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};

macro_rules! pipeline_case {
    ($($name:ident),* $(,)?) => {
        mod ndarray {
            use super::*;
            $(#[test] fn $name() { assert_case::<NdArray<f32>>(stringify!($name), &Default::default()); })*
        }
        mod wgpu {
            use super::*;
            $(#[test] fn $name() { assert_case::<Wgpu>(stringify!($name), &WgpuDevice::default()); })*
        }
    };
}

pipeline_case!(
    pipe_distilled_t2v,
    pipe_distilled_i2v,
    pipe_distilled_v2v,
    pipe_base_t2v,
    pipe_mid_t2v
);
