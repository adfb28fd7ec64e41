//! The DiT's starting point: adaLN-Zero with an identity read-out.
//!
//! At the distilled sampler's points the DiT must output `v = (x - x0) / sigma`: mostly its own
//! input, minus the picture it should draw. From random weights a small DiT spends most of a short
//! CPU training run learning to pass its input through. So training starts where DiT training
//! usually starts (every block's modulation, the time embedding and the cross-attention's output
//! at zero: each block is the identity, and learns its gate), with the patch embedding an orthonormal embedding of each
//! patch and the output projection its transpose: the model's first prediction is its input,
//! and it learns the difference.

use burn::module::Param;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use helios_model::dit::HeliosTransformer3DModel;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// `rows x cols` with orthonormal columns (`cols <= rows`), from a seeded Gaussian matrix.
fn orthonormal_columns(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut columns: Vec<Vec<f64>> = Vec::with_capacity(cols);
    for _ in 0..cols {
        let mut v: Vec<f64> = (0..rows).map(|_| StandardNormal.sample(&mut rng)).collect();
        for u in &columns {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        v.iter_mut().for_each(|a| *a /= norm);
        columns.push(v);
    }
    let mut out = vec![0.0; rows * cols];
    for (j, column) in columns.iter().enumerate() {
        for (i, &value) in column.iter().enumerate() {
            out[i * cols + j] = value;
        }
    }
    out
}

fn param<B: AutodiffBackend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    let inner = Tensor::<B::InnerBackend, D>::from_data(TensorData::new(values, shape), device);
    Param::from_tensor(Tensor::from_inner(inner))
}

fn zeros<B: AutodiffBackend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    param::<B, D>(vec![0.0; shape.iter().product()], shape, device)
}

/// `model` with the starting point described in the module docs.
pub fn identity_start<B: AutodiffBackend>(
    mut model: HeliosTransformer3DModel<B>,
    seed: u64,
    device: &B::Device,
) -> HeliosTransformer3DModel<B> {
    let [dim, channels, pt, ph, pw] = model.patch_embedding.weight.val().dims();
    let patch = channels * pt * ph * pw;
    let q = orthonormal_columns(dim, patch.min(dim), seed);
    let cols = patch.min(dim);
    // Patch embedding [dim, c, pt, ph, pw]: feature (c, pt, ph, pw) -> column of Q.
    let mut embed = vec![0.0f32; dim * patch];
    // Output projection, burn Linear [dim, patch] with features (pt, ph, pw, c), c fastest.
    let mut read = vec![0.0f32; dim * patch];
    for d in 0..dim {
        for c in 0..channels {
            for t in 0..pt {
                for y in 0..ph {
                    for x in 0..pw {
                        let conv = ((c * pt + t) * ph + y) * pw + x;
                        let out = ((t * ph + y) * pw + x) * channels + c;
                        if conv < cols {
                            let value = q[d * cols + conv] as f32;
                            embed[d * patch + conv] = value;
                            // The output norm scales a token to unit variance over `dim` values: a
                            // unit-variance patch comes back at its own scale.
                            read[d * patch + out] = value * (cols as f32 / dim as f32).sqrt();
                        }
                    }
                }
            }
        }
    }
    model.patch_embedding.weight = param::<B, 5>(embed, [dim, channels, pt, ph, pw], device);
    model.patch_embedding.bias = zeros::<B, 1>([dim], device);
    model.proj_out.weight = param::<B, 2>(read, [dim, patch], device);
    if let Some(bias) = model.proj_out.bias.as_mut() {
        *bias = zeros::<B, 1>([patch], device);
    }
    // temb starts at zero too (the output norm adds it to its scale and shift).
    let temb = model
        .condition_embedder
        .time_embedder
        .linear_2
        .weight
        .val()
        .dims();
    model.condition_embedder.time_embedder.linear_2.weight = zeros::<B, 2>(temb, device);
    if let Some(bias) = model
        .condition_embedder
        .time_embedder
        .linear_2
        .bias
        .as_mut()
    {
        *bias = zeros::<B, 1>([temb[1]], device);
    }
    let time_proj = model.condition_embedder.time_proj.weight.val().dims();
    model.condition_embedder.time_proj.weight = zeros::<B, 2>(time_proj, device);
    if let Some(bias) = model.condition_embedder.time_proj.bias.as_mut() {
        *bias = zeros::<B, 1>([time_proj[1]], device);
    }
    let table = model.norm_out.scale_shift_table.val().dims();
    model.norm_out.scale_shift_table = zeros::<B, 3>(table, device);
    for block in &mut model.blocks {
        let table = block.scale_shift_table.val().dims();
        block.scale_shift_table = zeros::<B, 3>(table, device);
        let out = block.attn2.to_out.weight.val().dims();
        block.attn2.to_out.weight = zeros::<B, 2>(out, device);
        if let Some(bias) = block.attn2.to_out.bias.as_mut() {
            *bias = zeros::<B, 1>([out[1]], device);
        }
    }
    model
}
