//! Small tensor functions shared by the model parts.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: torch's `gelu(approximate="tanh")`, which is
/// also transformers' `gelu_new`.
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    // x*x*x rather than powf: WGSL `pow` is undefined for negative bases.
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube * 0.044715) * c;
    x * 0.5 * (inner.tanh() + 1.0)
}
