//! One optimiser step, the same for both parts.

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};

use crate::error::{Result, TrainError};
use crate::{Progress, TrainPart};

/// Where a step is: the part, the step (0-based), the steps in all and the learning rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepAt {
    pub part: TrainPart,
    pub step: usize,
    pub steps: usize,
    pub learning_rate: f64,
}

/// Checks that `loss` is finite, applies its gradients to `model` and reports the step.
pub(crate) fn optimiser_step<B, M, O>(
    model: M,
    optim: &mut O,
    loss: Tensor<B, 1>,
    at: StepAt,
    progress: &mut dyn FnMut(Progress),
) -> Result<M>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let value: f32 = loss.clone().into_scalar().elem();
    if !value.is_finite() {
        return Err(TrainError::Diverged {
            part: match at.part {
                TrainPart::Vae => "vae",
                TrainPart::Transformer => "transformer",
            },
            step: at.step,
            loss: value,
        });
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(at.learning_rate, model, grads);
    progress(Progress {
        part: at.part,
        step: at.step + 1,
        steps: at.steps,
        loss: value,
    });
    Ok(model)
}

/// Standard normal noise of `shape` drawn from the trainer's own generator (not the backend's
/// process-wide one), so a run depends on its seed alone.
pub(crate) fn normal<B: burn::tensor::backend::Backend, const D: usize>(
    rng: &mut rand::rngs::StdRng,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    use rand_distr::{Distribution, StandardNormal};
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_data(burn::tensor::TensorData::new(values, shape), device)
}
