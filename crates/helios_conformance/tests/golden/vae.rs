//! The `vae` golden case (Wan VAE decode and encode) on NdArray and on wgpu (lavapipe where there is
//! no GPU): every check line must be OK.

use crate::common::assert_case;
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};

#[test]
fn vae_ndarray() {
    assert_case::<NdArray<f32>>("vae", &Default::default());
}

#[test]
fn vae_wgpu() {
    assert_case::<Wgpu>("vae", &WgpuDevice::default());
}
