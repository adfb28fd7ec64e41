//! The causal convolution cache of the Wan VAE: runtime state, not a [`burn::module::Module`].
//!
//! Port of the `feat_cache` / `feat_idx` lists of diffusers `AutoencoderKLWan` (autoencoder_kl_wan.py,
//! diffusers 0.42.1). The VAE runs a video in temporal chunks (decode: one latent frame at a time;
//! encode: frame 0 alone, then groups of 4); every cached layer keeps the last frames of its input so
//! that the next chunk sees the same temporal context as one pass over the whole video would. Layers
//! take their slot in call order, exactly like upstream's running `feat_idx`: call
//! [`CausalConvCache::begin_chunk`] before each chunk.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// What one cached layer remembers between chunks.
#[derive(Debug, Clone, Default)]
pub enum CacheSlot<B: Backend> {
    /// Nothing seen yet (upstream `None`); a causal convolution treats it as zero frames.
    #[default]
    Fresh,
    /// The up-sampler's first chunk passed through without its time convolution (upstream `"Rep"`);
    /// for the convolution it still means zero frames.
    Skipped,
    /// The last input frames of the layer, `[b, c, t, h, w]` with `t` = 1 or 2.
    Frames(Tensor<B, 5>),
}

/// The per-layer caches of one encode or decode call. Create a fresh one per call.
#[derive(Debug, Clone)]
pub struct CausalConvCache<B: Backend> {
    slots: Vec<CacheSlot<B>>,
    cursor: usize,
}

impl<B: Backend> Default for CausalConvCache<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> CausalConvCache<B> {
    /// An empty cache (every layer fresh).
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            cursor: 0,
        }
    }

    /// Starts a new temporal chunk: layers take their slots from the first one again.
    pub fn begin_chunk(&mut self) {
        self.cursor = 0;
    }

    /// The slot of the next cached layer (in call order), created fresh on the first chunk.
    pub(crate) fn next_slot(&mut self) -> &mut CacheSlot<B> {
        if self.cursor == self.slots.len() {
            self.slots.push(CacheSlot::Fresh);
        }
        let i = self.cursor;
        self.cursor += 1;
        &mut self.slots[i]
    }

    /// Number of cached layers seen so far.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no layer has used the cache yet.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn slots_are_taken_in_call_order_per_chunk() {
        let device = Default::default();
        let mut cache = CausalConvCache::<TestBackend>::new();
        cache.begin_chunk();
        *cache.next_slot() = CacheSlot::Skipped;
        *cache.next_slot() = CacheSlot::Frames(Tensor::zeros([1, 1, 1, 1, 1], &device));
        assert_eq!(cache.len(), 2);
        cache.begin_chunk();
        assert!(matches!(cache.next_slot(), CacheSlot::Skipped));
        assert!(matches!(cache.next_slot(), CacheSlot::Frames(_)));
        assert!(matches!(cache.next_slot(), CacheSlot::Fresh));
        assert_eq!(cache.len(), 3);
    }
}
