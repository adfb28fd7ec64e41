//! The five pipeline golden cases (Distilled T2V / I2V / V2V, Base T2V, Mid T2V), replayed from their
//! recorded draws: every check must be OK.
//!
//! All five run on NdArray. On wgpu the default run replays the Distilled T2V case, the product's
//! default path; the other four replay the same modules at other shapes and cost minutes each on
//! a CPU Vulkan driver (lavapipe compiles every fused kernel with LLVM), so they run with
//! `cargo test --test golden -- --ignored` (on a machine with a GPU, seconds).

use crate::common::assert_case;
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};

macro_rules! ndarray_cases {
    ($($name:ident),* $(,)?) => {
        mod ndarray {
            use super::*;
            $(#[test] fn $name() { assert_case::<NdArray<f32>>(stringify!($name), &Default::default()); })*
        }
    };
}

ndarray_cases!(
    pipe_distilled_t2v,
    pipe_distilled_i2v,
    pipe_distilled_v2v,
    pipe_base_t2v,
    pipe_mid_t2v
);

mod wgpu {
    use super::*;

    fn case(name: &str) {
        assert_case::<Wgpu>(name, &WgpuDevice::default());
    }

    #[test]
    fn pipe_distilled_t2v() {
        case("pipe_distilled_t2v");
    }

    #[test]
    #[ignore = "minutes on a CPU Vulkan driver: cargo test --test golden -- --ignored"]
    fn pipe_distilled_i2v() {
        case("pipe_distilled_i2v");
    }

    #[test]
    #[ignore = "minutes on a CPU Vulkan driver: cargo test --test golden -- --ignored"]
    fn pipe_distilled_v2v() {
        case("pipe_distilled_v2v");
    }

    #[test]
    #[ignore = "minutes on a CPU Vulkan driver: cargo test --test golden -- --ignored"]
    fn pipe_base_t2v() {
        case("pipe_base_t2v");
    }

    #[test]
    #[ignore = "minutes on a CPU Vulkan driver: cargo test --test golden -- --ignored"]
    fn pipe_mid_t2v() {
        case("pipe_mid_t2v");
    }
}
