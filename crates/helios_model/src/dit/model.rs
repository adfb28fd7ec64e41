//! The Helios DiT: `HeliosTransformer3DModel`.
//!
//! Port of diffusers `HeliosTransformer3DModel` (transformer_helios.py, diffusers 0.42.1) for any
//! config: patch embedding of the current chunk, the three-scale history compaction
//! ([`super::memory`]), 3-axis RoPE, time/text conditioning with the t = 0 embedding for history
//! tokens, the blocks, the output norm and unpatchify. Loading a checkpoint into it is
//! [`super::load`].

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::attention::Rotary;
use super::block::{BlockSettings, HeliosTransformerBlock, Segment, layer_norm};
use super::embed::{HeliosTimeTextEmbedding, PatchEmbed};
use super::memory::{History, compact_history};
use super::offload::HostBlock;
use super::precision::Precision;
use super::rope::{HeliosRope, RopeTable};
use crate::config::TransformerConfig;
use crate::error::{Error, Result};
use crate::weights::lazy_zeros;

/// diffusers `HeliosOutputNorm`: affine-free LayerNorm modulated by `scale_shift_table + temb`.
#[derive(Module, Debug)]
pub struct HeliosOutputNorm<B: Backend> {
    /// `[1, 2, dim]` (shift, scale).
    pub scale_shift_table: Param<Tensor<B, 3>>,
}

/// Receives named intermediate tensors of a forward pass (for conformance and debugging).
pub trait Tap {
    /// Called with each named intermediate.
    fn tap(&mut self, name: &str, value: TensorData);
}

/// The inputs of one DiT call.
#[derive(Debug, Clone)]
pub struct DitInput<B: Backend> {
    /// Noisy latents of the current chunk `[b, c, t, h, w]`.
    pub hidden_states: Tensor<B, 5>,
    /// The timestep of each batch row (int64 timesteps are passed as their f64 value).
    pub timesteps: Vec<f64>,
    /// Prompt embeddings `[b, l, text_dim]`.
    pub encoder_hidden_states: Tensor<B, 3>,
    /// RoPE frame index of each current frame (post-patch).
    pub indices: Vec<i64>,
    /// The compacted history (None: no history tokens).
    pub history: Option<History<B>>,
}

/// Port of diffusers `HeliosTransformer3DModel`.
#[derive(Module, Debug)]
pub struct HeliosTransformer3DModel<B: Backend> {
    /// Current-chunk patch embedding.
    pub patch_embedding: PatchEmbed<B>,
    /// Short-history patch embedding (base patch).
    pub patch_short: PatchEmbed<B>,
    /// Mid-history patch embedding (2x patch).
    pub patch_mid: PatchEmbed<B>,
    /// Long-history patch embedding (4x patch).
    pub patch_long: PatchEmbed<B>,
    /// Time and text conditioning.
    pub condition_embedder: HeliosTimeTextEmbedding<B>,
    /// Transformer blocks.
    pub blocks: Vec<HeliosTransformerBlock<B>>,
    /// Output norm.
    pub norm_out: HeliosOutputNorm<B>,
    /// Output projection to `out_channels * prod(patch)`.
    pub proj_out: Linear<B>,
    #[module(skip)]
    pub(super) config: TransformerConfig,
    #[module(skip)]
    pub(super) rope: HeliosRope,
    #[module(skip)]
    pub(super) precision: Precision,
    /// The hyper-parameters of a block (to rebuild offloaded blocks).
    #[module(skip)]
    pub(super) settings: BlockSettings,
    /// The last blocks, kept in host memory (layer offload); they run after `blocks`.
    #[module(skip)]
    pub(super) offloaded: Vec<HostBlock>,
}

impl<B: Backend> HeliosTransformer3DModel<B> {
    /// Builds the (uninitialised, nothing allocated) model for `config`.
    pub fn new(config: &TransformerConfig, device: &B::Device) -> Self {
        let dim = config.inner_dim();
        let [pt, ph, pw] = config.patch_size;
        let cin = config.in_channels;
        let settings = BlockSettings {
            dim,
            ffn_dim: config.ffn_dim,
            heads: config.num_attention_heads,
            eps: config.eps,
            cross_attn_norm: config.cross_attn_norm,
            guidance_cross_attn: config.guidance_cross_attn,
            history_scale: config
                .is_amplify_history
                .then(|| config.history_scale_mode.scales(config.num_attention_heads)),
        };
        Self {
            patch_embedding: PatchEmbed::new(cin, dim, [pt, ph, pw], device),
            patch_short: PatchEmbed::new(cin, dim, [pt, ph, pw], device),
            patch_mid: PatchEmbed::new(cin, dim, [2 * pt, 2 * ph, 2 * pw], device),
            patch_long: PatchEmbed::new(cin, dim, [4 * pt, 4 * ph, 4 * pw], device),
            condition_embedder: HeliosTimeTextEmbedding::new(
                dim,
                config.freq_dim,
                config.text_dim,
                device,
            ),
            blocks: (0..config.num_layers)
                .map(|_| HeliosTransformerBlock::new(settings, device))
                .collect(),
            norm_out: HeliosOutputNorm {
                scale_shift_table: lazy_zeros([1, 2, dim], device),
            },
            proj_out: LinearConfig::new(dim, config.out_channels * pt * ph * pw).init(device),
            config: config.clone(),
            rope: HeliosRope::new(config.rope_dim, config.rope_theta),
            precision: Precision::F32,
            settings,
            offloaded: Vec::new(),
        }
    }

    /// The model at compute precision `precision`: parameters outside diffusers'
    /// `_keep_in_fp32_modules` are cast (or rounded) to it on the device; inputs are cast as the
    /// pipeline does. Needs the float32 model first: to load a checkpoint at a precision, use
    /// [`Self::load_at`]. Offloaded blocks keep the dtype they were loaded at: load them at their
    /// precision ([`Self::load_offloaded`]).
    pub fn with_precision(self, precision: Precision) -> Self {
        let mut model = precision.apply(self);
        model.precision = precision;
        model
    }

    /// The compute precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The config.
    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    fn check_input(&self, input: &DitInput<B>) -> Result<()> {
        let [b, c, t, _, _] = input.hidden_states.dims();
        let shape_err = |what: &str, expected: String, got: String| {
            Err(Error::Shape {
                what: what.into(),
                expected,
                got,
            })
        };
        if c != self.config.in_channels {
            return shape_err(
                "DiT hidden_states channels",
                self.config.in_channels.to_string(),
                c.to_string(),
            );
        }
        let [eb, _, ed] = input.encoder_hidden_states.dims();
        if eb != b || ed != self.config.text_dim {
            return shape_err(
                "DiT encoder_hidden_states",
                format!("[{b}, l, {}]", self.config.text_dim),
                format!("{:?}", input.encoder_hidden_states.dims()),
            );
        }
        if input.timesteps.len() != b {
            return shape_err(
                "DiT timesteps",
                format!("{b} values"),
                input.timesteps.len().to_string(),
            );
        }
        let frames = t / self.config.patch_size[0];
        if input.indices.len() != frames {
            return shape_err(
                "DiT frame indices",
                format!("{frames} values"),
                input.indices.len().to_string(),
            );
        }
        if let Some(h) = &input.history {
            let terms = [Some(&h.short), h.mid.as_ref(), h.long.as_ref()];
            for term in terms.into_iter().flatten() {
                let d = term.latents.dims();
                if d[0] != b || d[1] != c || d[2] != term.indices.len() {
                    return shape_err(
                        "DiT history term [b, c, t, h, w] with t indices",
                        format!("[{b}, {c}, {}, h, w]", term.indices.len()),
                        format!("{d:?}"),
                    );
                }
            }
        }
        Ok(())
    }

    fn rope_tensor(&self, table: &RopeTable, device: &B::Device) -> Tensor<B, 3> {
        let values: Vec<f32> = table.values.iter().map(|v| *v as f32).collect();
        Tensor::from_data(
            TensorData::new(values, [1, table.tokens, table.width]),
            device,
        )
    }

    /// The flow velocity `[b, out_channels, t, h, w]` for `input`.
    pub fn forward(&self, input: DitInput<B>) -> Result<Tensor<B, 5>> {
        self.forward_tapped(input, None)
    }

    /// [`Self::forward`], reporting named intermediates to `tap` (`rope_current`, `block0_input`,
    /// `block{i}_output`, `norm_out_output`, ...).
    pub fn forward_tapped(
        &self,
        input: DitInput<B>,
        mut tap: Option<&mut dyn Tap>,
    ) -> Result<Tensor<B, 5>> {
        self.check_input(&input)?;
        let p = self.precision;
        let device = input.hidden_states.device();
        // The pipeline casts the inputs to the transformer dtype.
        let mut input = input;
        input.hidden_states = p.c(input.hidden_states);
        input.encoder_hidden_states = p.c(input.encoder_hidden_states);
        if let Some(h) = input.history.as_mut() {
            for term in [Some(&mut h.short), h.mid.as_mut(), h.long.as_mut()]
                .into_iter()
                .flatten()
            {
                term.latents = p.c(term.latents.clone());
            }
        }
        let [b, _, _, _, _] = input.hidden_states.dims();
        let [pt, ph, pw] = self.config.patch_size;
        let mut emit = |name: &str, f: &dyn Fn() -> TensorData| {
            if let Some(t) = tap.as_deref_mut() {
                t.tap(name, f());
            }
        };

        // Current chunk tokens and RoPE.
        let (current, [tt, hh, ww]) = self.patch_embedding.forward(input.hidden_states)?;
        let current = p.c(current);
        let current_len = current.dims()[1];
        let rope_current = self.rope.table(&input.indices, hh, ww);
        emit("rope_current", &|| {
            self.rope_tensor(&rope_current, &device).into_data()
        });

        // History tokens [long | mid | short] and the full sequence.
        let (x, rope_all) = match &input.history {
            Some(history) => {
                let h = compact_history(
                    history,
                    &self.patch_short,
                    &self.patch_mid,
                    &self.patch_long,
                    &self.rope,
                )?;
                let [long, mid, short] = h.counts;
                let rows = |start: usize, n: usize| RopeTable {
                    tokens: n,
                    width: h.rope.width,
                    values: h.rope.values[start * h.rope.width..(start + n) * h.rope.width]
                        .to_vec(),
                };
                emit("rope_long_pooled", &|| {
                    self.rope_tensor(&rows(0, long), &device).into_data()
                });
                emit("rope_mid_pooled", &|| {
                    self.rope_tensor(&rows(long, mid), &device).into_data()
                });
                emit("rope_short", &|| {
                    self.rope_tensor(&rows(long + mid, short), &device)
                        .into_data()
                });
                let mut table = h.rope;
                table.append(&rope_current);
                (Tensor::cat(vec![p.c(h.tokens), current], 1), table)
            }
            None => (current, rope_current),
        };
        let total = x.dims()[1];
        let history_len = total - current_len;
        let rope_t = self.rope_tensor(&rope_all, &device);
        emit("rope_full", &|| rope_t.to_data());
        let rotary = Rotary::from_table(rope_t);

        // Conditioning.
        let time = self
            .condition_embedder
            .time_at(&input.timesteps, &device, p);
        emit("temb_t", &|| time.temb.to_data());
        emit("timestep_proj_t", &|| time.proj.to_data());
        let segments = if history_len > 0 && self.config.zero_history_timestep {
            let t0 = self.condition_embedder.time_at(&vec![0.0; b], &device, p);
            emit("temb_t0", &|| t0.temb.to_data());
            emit("timestep_proj_t0", &|| t0.proj.to_data());
            vec![
                Segment {
                    tokens: history_len,
                    proj: t0.proj,
                },
                Segment {
                    tokens: current_len,
                    proj: time.proj.clone(),
                },
            ]
        } else {
            vec![Segment {
                tokens: total,
                proj: time.proj.clone(),
            }]
        };
        let text = self.condition_embedder.text(input.encoder_hidden_states, p);
        emit("text_embedded", &|| text.to_data());

        // Blocks.
        emit("block0_input", &|| x.to_data());
        let mut x = x;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, text.clone(), &segments, &rotary, current_len, p);
            emit(&format!("block{i}_output"), &|| x.to_data());
        }
        for (j, host) in self.offloaded.iter().enumerate() {
            let block = host.upload::<B>(self.settings, &device)?;
            x = block.forward(x, text.clone(), &segments, &rotary, current_len, p);
            let i = self.blocks.len() + j;
            emit(&format!("block{i}_output"), &|| x.to_data());
        }

        // Output norm (current tokens, modulated by temb of t), projection, unpatchify.
        let dim = self.config.inner_dim();
        let cur = x.narrow(1, history_len, current_len);
        let table = self.norm_out.scale_shift_table.val();
        let temb = p.f(time.temb).reshape([b, 1, dim]);
        let shift = table.clone().narrow(1, 0, 1) + temb.clone();
        let scale = table.narrow(1, 1, 1) + temb;
        let normed = p.c(layer_norm(p.f(cur), self.config.eps) * scale.add_scalar(1.0) + shift);
        emit("norm_out_output", &|| p.f(normed.clone()).into_data());
        let out = p.f(p.c(self.proj_out.forward(normed)));
        let c = self.config.out_channels;
        // Unpatchify with at most 6 axes at a time; features are (pt, ph, pw, c), c fastest:
        // [b, tt hh, ww, pt ph, pw, c] -> [b, c, tt hh, pt ph, ww, pw] -> [b c, tt, hh, pt, ph, w]
        // -> [b c, tt, pt, hh, ph, w] -> [b, c, t, h, w].
        let w = ww * pw;
        let out: Tensor<B, 6> = out.reshape([b, tt * hh, ww, pt * ph, pw, c]);
        let out: Tensor<B, 6> = out
            .permute([0, 5, 1, 3, 2, 4])
            .reshape([b * c, tt, hh, pt, ph, w]);
        Ok(out
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b, c, tt * pt, hh * ph, w]))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::TestBackend;

    fn transformer_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("embedded/tiny-helios/transformer")
    }

    fn values<const D: usize>(t: Tensor<TestBackend, D>) -> Vec<f32> {
        t.into_data().to_vec().unwrap_or_default()
    }

    #[test]
    fn loading_at_a_precision_equals_casting_the_float32_model() {
        let device = Default::default();
        let precision = Precision::EmulatedBf16;
        let (direct, report) = HeliosTransformer3DModel::<TestBackend>::load_at(
            &transformer_dir(),
            &device,
            precision,
            &mut |_| {},
        )
        .unwrap();
        let f32_model =
            HeliosTransformer3DModel::<TestBackend>::load(&transformer_dir(), &device, &mut |_| {})
                .unwrap();
        let cast = f32_model.clone().with_precision(precision);
        assert_eq!(direct.precision(), precision);
        let (d, c, f) = (&direct.blocks[0], &cast.blocks[0], &f32_model.blocks[0]);
        let q = values(d.attn1.to_q.weight.val());
        assert!(!q.is_empty());
        assert_eq!(q, values(c.attn1.to_q.weight.val()));
        // `_keep_in_fp32_modules` are not rounded.
        assert_eq!(
            values(d.scale_shift_table.val()),
            values(f.scale_shift_table.val())
        );
        let te = |m: &HeliosTransformer3DModel<TestBackend>| {
            values(m.condition_embedder.time_embedder.linear_1.weight.val())
        };
        assert_eq!(te(&direct), te(&f32_model));
        assert_eq!(
            report.applied.len(),
            report.conversions.values().sum::<usize>()
        );
        // The tiny checkpoint is bf16; emulated bf16 stores float32.
        assert_eq!(report.bytes_stored, 2 * report.bytes_read, "{report}");
        assert_eq!(
            report.conversions.get("BF16 -> F32"),
            Some(&report.applied.len()),
            "{report}"
        );
    }

    #[test]
    fn the_dtype_policy_keeps_diffusers_float32_modules() {
        let policy = Precision::Native(burn::tensor::DType::F16).dtype_policy();
        let half = crate::weights::StoreAs::Half(burn::tensor::DType::F16);
        assert_eq!(policy.store_for("blocks.0.attn1.to_q.weight"), half);
        assert_eq!(policy.store_for("blocks.0.attn1.norm_q.gamma"), half);
        assert_eq!(
            policy.store_for("blocks.3.norm2.gamma"),
            crate::weights::StoreAs::F32
        );
        assert_eq!(
            policy.store_for("condition_embedder.time_embedder.linear_1.weight"),
            crate::weights::StoreAs::F32
        );
        assert_eq!(
            policy.store_for("blocks.1.scale_shift_table"),
            crate::weights::StoreAs::F32
        );
        assert_eq!(
            policy.store_for("norm_out.scale_shift_table"),
            crate::weights::StoreAs::F32
        );
        assert_eq!(
            policy.store_for("blocks.1.attn1.history_key_scale"),
            crate::weights::StoreAs::F32
        );
        assert_eq!(
            Precision::F32
                .dtype_policy()
                .store_for("blocks.0.attn1.to_q.weight"),
            crate::weights::StoreAs::F32
        );
    }
}
