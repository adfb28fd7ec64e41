//! GPU-resident frames: a generated chunk packed to RGBA8 on the model's wgpu device, handed to
//! the render side as a buffer of that device, never read back to the CPU.
//!
//! [`pack_chunk`] turns the decoded video `[1, 3, t, h, w]` (in `[-1, 1]`, on burn's wgpu
//! backend) into one `i32` per pixel whose little-endian bytes are `r, g, b, 255`, quantised
//! exactly as `Frames::to_rgba8` does (`round(clamp(x / 2 + 0.5, 0, 1) * 255)`, ties to even),
//! with each row padded to 256 bytes as `copy_buffer_to_texture` needs. The only thing read back
//! is the 4x4 grid of mean colours per frame ([`FrameStats`], 48 floats a frame).
//!
//! The packed cubecl tensor stays alive inside the [`GpuFrameBuffer`], together with cubecl's
//! binding of its memory (which keeps the memory pool from handing the slice to another tensor),
//! until the last frame of the chunk has been copied into its texture and the copy submitted.
//!
//! This is only sound when the render side copies from a buffer of its own device, i.e. burn runs
//! on the renderer's device ([`EngineConfig::shared_wgpu`](crate::EngineConfig::shared_wgpu)).

use std::sync::Arc;

use burn::backend::Wgpu;
use burn::backend::wgpu::{CubeBackend, WgpuRuntime};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor};
use helios_model::pipeline::Frames;

use super::{
    Frame, FrameLayout, FrameStats, GpuFrameBuffer, GpuFrameRef, STATS_GRID, padded_bytes_per_row,
    texture_side,
};
use crate::error::{WorkerError, WorkerResult};

/// The cubecl backend under burn's `Wgpu` (fusion) backend, with its default element types.
type Inner = CubeBackend<WgpuRuntime, f32, i32, u32>;

fn gpu_error(what: &str, detail: impl std::fmt::Debug) -> WorkerError {
    WorkerError::GpuFrames(format!("{what}: {detail:?}"))
}

/// Packs a decoded chunk into GPU-resident frames (see the module docs). `Ok(None)` when the
/// frames cannot be packed this way (sides not divisible by the stats grid); the caller then
/// reads them back instead.
pub(crate) fn pack_chunk(frames: &Frames<Wgpu>) -> WorkerResult<Option<Vec<Frame>>> {
    let video = frames.tensor().clone();
    let [_, c, t, h, w] = video.dims();
    let g = STATS_GRID;
    if c != 3 || t == 0 || h == 0 || w == 0 || h % g != 0 || w % g != 0 {
        return Ok(None);
    }
    let (width, height) = (texture_side(w)?, texture_side(h)?);
    let count = u32::try_from(t).map_err(|_| gpu_error("too many frames in one chunk", t))?;
    let device = video.device();
    let quantised = video
        .narrow(0, 0, 1)
        .reshape([3, t, h, w])
        .div_scalar(2.0)
        .add_scalar(0.5)
        .clamp(0.0, 1.0)
        .mul_scalar(255.0)
        .round();

    // Mean colour of each grid cell: [3, t, g, h/g, g, w/g] -> [t, g*g, 3].
    let means = quantised
        .clone()
        .reshape([3, t, g, h / g, g, w / g])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([3, t, g * g])
        .permute([1, 2, 0])
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| gpu_error("reading frame statistics", e))?;

    // r + 256 g + 65536 b + 255 << 24, written as a negative i32 so nothing overflows.
    let q: Tensor<Wgpu, 4, Int> = quantised.int();
    let packed = q.clone().narrow(0, 0, 1)
        + q.clone().narrow(0, 1, 1).mul_scalar(256)
        + q.narrow(0, 2, 1).mul_scalar(65_536);
    let packed = packed.sub_scalar(16_777_216).reshape([t, h, w]);
    let bytes_per_row = padded_bytes_per_row(width);
    let row_pixels = (bytes_per_row / 4) as usize;
    let packed = if row_pixels == w {
        packed
    } else {
        Tensor::<Wgpu, 3, Int>::zeros([t, h, row_pixels], &device)
            .slice_assign([0..t, 0..h, 0..w], packed)
    };

    // `Wgpu` is burn's fusion decorator over the cubecl backend: resolving the (only) handle of
    // the packed tensor runs its queued operations and hands over the cubecl tensor, which then
    // owns the memory.
    let fused = packed.into_primitive();
    let client = fused.client.clone();
    let primitive = client.resolve_tensor_int::<Inner>(fused);
    if primitive.dtype != DType::I32 || !primitive.is_contiguous() {
        return Ok(None);
    }
    // Everything above is on the device's queue before the render world's copy is.
    <Wgpu as Backend>::sync(&device).map_err(|e| gpu_error("waiting for the frame packing", e))?;
    let managed = primitive
        .client
        .get_resource(primitive.handle.clone())
        .map_err(|e| gpu_error("locating the frame buffer", e))?;
    let resource = managed.resource();
    let needed = u64::from(bytes_per_row) * u64::from(height) * u64::from(count);
    if resource.size < needed {
        return Err(gpu_error(
            "frame buffer smaller than its frames",
            (resource.size, needed),
        ));
    }
    let layout = FrameLayout {
        offset: resource.offset,
        bytes_per_row,
        width,
        height,
        frames: count,
    };
    let buffer = Arc::new(GpuFrameBuffer::new(
        resource.buffer.clone(),
        layout,
        Box::new((primitive, managed)),
    ));

    let cells = g * g;
    Ok(Some(
        (0..count)
            .map(|index| {
                let mut stats = FrameStats::default();
                for (cell, out) in stats.grid.iter_mut().enumerate() {
                    let at = (index as usize * cells + cell) * 3;
                    for (k, v) in out.iter_mut().enumerate() {
                        *v = means[at + k] / 255.0;
                    }
                }
                Frame {
                    width,
                    height,
                    pixels: Vec::new(),
                    stats,
                    gpu: Some(GpuFrameRef {
                        buffer: buffer.clone(),
                        index,
                    }),
                }
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use burn::backend::wgpu::graphics::Vulkan;
    use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, WgpuSetup, init_setup};
    use burn::tensor::TensorData;

    use super::*;

    /// burn's default wgpu device on Vulkan (cubecl creates it with what its SPIR-V kernels need,
    /// as a renderer sharing it would get it), with its wgpu device and queue for the readback.
    struct TestGpu {
        setup: WgpuSetup,
        burn: WgpuDevice,
    }

    /// One device for every test here.
    fn gpu() -> &'static TestGpu {
        static GPU: std::sync::OnceLock<TestGpu> = std::sync::OnceLock::new();
        GPU.get_or_init(|| {
            let burn = WgpuDevice::DefaultDevice;
            let setup = init_setup::<Vulkan>(&burn, RuntimeOptions::default());
            TestGpu { setup, burn }
        })
    }

    /// Reads `bytes` bytes at `offset` of a buffer of `gpu`'s device (the test's own readback).
    fn read(gpu: &TestGpu, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> Vec<u8> {
        let device = &gpu.setup.device;
        let target = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("test_readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encoder.copy_buffer_to_buffer(buffer, offset, &target, 0, bytes);
        gpu.setup.queue.submit([encoder.finish()]);
        let slice = target.slice(..);
        slice.map_async(wgpu::MapMode::Read, |r| r.expect("map the readback buffer"));
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll the device");
        let out = slice.get_mapped_range().to_vec();
        target.unmap();
        out
    }

    /// The packed frames in the device buffer are, byte for byte, what `Frames::to_rgba8` reads
    /// back (quantisation, ties, clamping, opaque alpha), at the offsets and row pitch the
    /// texture copy uses; the statistics are the cell means of those bytes.
    #[test]
    fn packed_frames_match_the_cpu_conversion() {
        let gpu = gpu();
        let device: WgpuDevice = gpu.burn.clone();
        // 20 pixels a row: 80 bytes, padded to 256 in the buffer.
        let (t, h, w) = (3, 8, 20);
        let n = 3 * t * h * w;
        let values: Vec<f32> = (0..n)
            .map(|i| {
                // Cover clamping on both sides and exact halves of a quantisation step.
                let k = (i * 37 % 290) as f32 - 17.0;
                (k + if i % 3 == 0 { 0.5 } else { 0.25 }) / 255.0 * 2.0 - 1.0
            })
            .collect();
        let video = Tensor::<Wgpu, 5>::from_data(TensorData::new(values, [1, 3, t, h, w]), &device);
        let frames = Frames::new(video);
        let expected = frames.to_rgba8().unwrap();

        let packed = pack_chunk(&frames)
            .unwrap()
            .expect("8x20 frames can be packed");
        assert_eq!(packed.len(), t);
        for (index, (frame, want)) in packed.iter().zip(&expected).enumerate() {
            assert!(frame.pixels.is_empty(), "nothing read back");
            assert_eq!((frame.width, frame.height), (20, 8), "self-describing");
            let at = frame.gpu.as_ref().unwrap();
            assert_eq!(at.index as usize, index);
            let chunk = &at.buffer;
            assert_eq!((chunk.width(), chunk.height(), chunk.frames()), (20, 8, 3));
            assert_eq!(chunk.bytes_per_row(), 256);
            let pitch = chunk.bytes_per_row() as usize;
            let bytes = read(
                gpu,
                chunk.buffer(),
                chunk.frame_offset(at.index),
                (pitch * h) as u64,
            );
            for y in 0..h {
                assert_eq!(
                    &bytes[y * pitch..y * pitch + w * 4],
                    &want[y * w * 4..(y + 1) * w * 4],
                    "frame {index} row {y}"
                );
            }
            // Cell means of the exact bytes.
            let g = STATS_GRID;
            for cy in 0..g {
                for cx in 0..g {
                    let mut sum = [0f64; 3];
                    let mut count = 0.0;
                    for y in cy * h / g..(cy + 1) * h / g {
                        for x in cx * w / g..(cx + 1) * w / g {
                            for c in 0..3 {
                                sum[c] += f64::from(want[(y * w + x) * 4 + c]);
                            }
                            count += 1.0;
                        }
                    }
                    for (c, channel_sum) in sum.iter().enumerate() {
                        let mean = (channel_sum / count / 255.0) as f32;
                        let got = frame.stats.grid[cy * g + cx][c];
                        assert!(
                            (got - mean).abs() < 1e-4,
                            "cell {cx},{cy} channel {c}: {got} vs {mean}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sides_off_the_stats_grid_are_read_back_instead() {
        let device = gpu().burn.clone();
        let video = Tensor::<Wgpu, 5>::zeros([1, 3, 2, 6, 6], &device);
        assert!(pack_chunk(&Frames::new(video)).unwrap().is_none());
    }
}
