//! The demo model's frozen text encoder: a randomly initialised UMT5, optionally one that keeps
//! each word where it is.
//!
//! A random UMT5 mixes a caption: each of its layers adds to every position a random blend of the
//! others (self-attention) and a random function of itself (the feed-forward), both as large as
//! the position's own embedding. After two such layers the one word that names the emotion is
//! smeared over the caption, and the DiT's cross-attention has to learn to undo the mix before it
//! can read it. Scaling each layer's output projections down (a layer scale below 1) keeps the
//! encoder a UMT5 (the same architecture, config and checkpoint layout) whose output at each
//! position is mostly that position's own word, with a little of its context.

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use helios_model::config::TextEncoderConfig;
use helios_model::random::random_text_encoder;
use helios_model::text::UMT5EncoderModel;

use crate::error::{Result, TrainError};

/// The demo model's text encoder: [`random_text_encoder`] from `seed`, with every layer's
/// attention output (`o`) and feed-forward output (`wo`) projections scaled by `layer_scale` (1:
/// the random UMT5 as it is, the shipped model's; 0.1: each position mostly its own word).
pub fn demo_text_encoder<B: Backend>(
    config: &TextEncoderConfig,
    seed: u64,
    layer_scale: f32,
    device: &B::Device,
) -> Result<UMT5EncoderModel<B>> {
    if !(layer_scale.is_finite() && layer_scale >= 0.0) {
        return Err(TrainError::Options(format!(
            "the text encoder's layer scale must be a number >= 0, not {layer_scale}"
        )));
    }
    let mut model = random_text_encoder::<B>(config, None, seed, device)?;
    let scale = |linear: &mut Linear<B>| {
        linear.weight = linear.weight.clone().map(|w| w.mul_scalar(layer_scale));
    };
    for block in &mut model.encoder.block {
        scale(&mut block.layer_0.self_attention.o);
        scale(&mut block.layer_1.dense_relu_dense.wo);
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use burn::tensor::{Int, Tensor};
    use helios_model::config::TextEncoderConfig;

    use super::demo_text_encoder;
    use crate::config;

    /// The cosine similarity of two vectors.
    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b)).max(f32::EPSILON)
    }

    #[test]
    fn each_position_keeps_its_own_word() {
        type B = NdArray<f32>;
        let device = Default::default();
        let config: TextEncoderConfig =
            serde_json::from_value(config::text_encoder(64)).expect("the built-in config parses");
        let model = demo_text_encoder::<B>(&config, 7, 0.1, &device).expect("a text encoder");
        assert!(demo_text_encoder::<B>(&config, 7, f32::NAN, &device).is_err());
        let d = config.d_model;
        let encode = |ids: [i64; 4]| -> Vec<f32> {
            let ids = Tensor::<B, 2, Int>::from_ints([ids], &device);
            let mask = Tensor::<B, 2, Int>::ones([1, 4], &device);
            model
                .forward(ids, mask)
                .into_data()
                .to_vec()
                .expect("f32 values")
        };
        // Position 1 holds word 20 in both, among different neighbours; position 2 holds
        // different words.
        let a = encode([10, 20, 30, 1]);
        let b = encode([11, 20, 31, 1]);
        let at = |v: &[f32], i: usize| v[i * d..(i + 1) * d].to_vec();
        let same_word = cosine(&at(&a, 1), &at(&b, 1));
        let other_words = cosine(&at(&a, 2), &at(&b, 2));
        assert!(same_word > 0.95, "the same word reads {same_word} alike");
        assert!(
            other_words < 0.9,
            "different words read {other_words} alike"
        );
    }
}
