//! The scheduler golden cases `scheduler_steps` and `scheduler_tables` on NdArray and on wgpu
//! (lavapipe where there is no GPU): every check line must be OK.

use crate::common::assert_case;
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};

#[test]
fn scheduler_steps_ndarray() {
    assert_case::<NdArray<f32>>("scheduler_steps", &Default::default());
}

#[test]
fn scheduler_tables_ndarray() {
    assert_case::<NdArray<f32>>("scheduler_tables", &Default::default());
}

#[test]
fn scheduler_steps_wgpu() {
    assert_case::<Wgpu>("scheduler_steps", &WgpuDevice::default());
}

#[test]
fn scheduler_tables_wgpu() {
    assert_case::<Wgpu>("scheduler_tables", &WgpuDevice::default());
}
