//! Prompt embeddings for a stream: a small cache keyed by prompt text, and the switch from one
//! prompt to another interpolated over the next chunks (as Helios' interactive mode does).

use std::collections::VecDeque;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::error::Result;
use crate::text::TextEncoder;

/// Prompts kept by a [`PromptCache`]: a game cycling through a few emotions or lines re-uses them,
/// and the cache stays small however many prompts a long session sees.
pub const PROMPT_CACHE_CAPACITY: usize = 32;

/// Prompt embeddings `[1, max_sequence_length, d]` by prompt text, least recently used dropped
/// first.
#[derive(Debug)]
pub struct PromptCache<B: Backend> {
    max_sequence_length: usize,
    entries: VecDeque<(String, Tensor<B, 3>)>,
}

impl<B: Backend> PromptCache<B> {
    /// An empty cache for embeddings of `max_sequence_length` rows.
    pub fn new(max_sequence_length: usize) -> Self {
        Self {
            max_sequence_length,
            entries: VecDeque::new(),
        }
    }

    /// The embeddings of `prompt`, encoded on a miss.
    pub fn get(&mut self, text: &TextEncoder<B>, prompt: &str) -> Result<Tensor<B, 3>> {
        if let Some(pos) = self.entries.iter().position(|(p, _)| p == prompt)
            && let Some(entry) = self.entries.remove(pos)
        {
            let embeds = entry.1.clone();
            self.entries.push_front(entry);
            return Ok(embeds);
        }
        let embeds = text.encode(&[prompt], self.max_sequence_length)?;
        self.entries.push_front((prompt.to_owned(), embeds.clone()));
        self.entries.truncate(PROMPT_CACHE_CAPACITY);
        Ok(embeds)
    }

    /// Prompts cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The positive prompt of a stream over time.
#[derive(Debug, Clone)]
pub struct PromptTrack<B: Backend> {
    prompt: String,
    current: Tensor<B, 3>,
    transition: Option<Transition<B>>,
}

#[derive(Debug, Clone)]
struct Transition<B: Backend> {
    from: Tensor<B, 3>,
    chunks: usize,
    done: usize,
}

impl<B: Backend> PromptTrack<B> {
    /// Starts on `prompt` with its embeddings.
    pub fn new(prompt: String, embeds: Tensor<B, 3>) -> Self {
        Self {
            prompt,
            current: embeds,
            transition: None,
        }
    }

    /// The prompt being moved to (or held).
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Switches to `prompt` over the next `chunks` chunks: chunk `k` (from 1) of the switch uses
    /// `lerp(from, to, k / chunks)`, so the last one is the new prompt alone; 0 or 1 switches at
    /// once. A switch during a switch starts from the embeddings the last chunk used.
    pub fn switch(&mut self, prompt: String, embeds: Tensor<B, 3>, chunks: usize) {
        let from = self.last_used();
        self.prompt = prompt;
        self.current = embeds;
        self.transition = (chunks > 1).then_some(Transition {
            from,
            chunks,
            done: 0,
        });
    }

    /// The embeddings for the next chunk (not advancing: call [`PromptTrack::advance`] once the
    /// chunk is done, so a cancelled chunk does not skip a step of the switch).
    pub fn for_next_chunk(&self) -> Tensor<B, 3> {
        match &self.transition {
            Some(t) => Self::lerp(
                &t.from,
                &self.current,
                (t.done + 1) as f32 / t.chunks as f32,
            ),
            None => self.current.clone(),
        }
    }

    /// Marks one chunk done.
    pub fn advance(&mut self) {
        if let Some(t) = &mut self.transition {
            t.done += 1;
            if t.done >= t.chunks {
                self.transition = None;
            }
        }
    }

    /// True while a switch is being interpolated.
    pub fn in_transition(&self) -> bool {
        self.transition.is_some()
    }

    fn last_used(&self) -> Tensor<B, 3> {
        match &self.transition {
            Some(t) if t.done > 0 => {
                Self::lerp(&t.from, &self.current, t.done as f32 / t.chunks as f32)
            }
            Some(t) => t.from.clone(),
            None => self.current.clone(),
        }
    }

    fn lerp(from: &Tensor<B, 3>, to: &Tensor<B, 3>, w: f32) -> Tensor<B, 3> {
        from.clone().mul_scalar(1.0 - w) + to.clone().mul_scalar(w)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::TestBackend;

    fn constant(v: f32) -> Tensor<TestBackend, 3> {
        Tensor::from_data(TensorData::new(vec![v; 4], [1, 2, 2]), &Default::default())
    }

    fn first(t: Tensor<TestBackend, 3>) -> f32 {
        t.into_data().to_vec::<f32>().unwrap_or_default()[0]
    }

    #[test]
    fn switch_interpolates_over_n_chunks_then_holds() {
        let mut track = PromptTrack::new("a".into(), constant(0.0));
        assert_eq!(first(track.for_next_chunk()), 0.0);
        track.switch("b".into(), constant(4.0), 4);
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(first(track.for_next_chunk()));
            track.advance();
        }
        assert_eq!(seen, vec![1.0, 2.0, 3.0, 4.0, 4.0, 4.0]);
        assert!(!track.in_transition());
        track.switch("c".into(), constant(0.0), 1);
        assert_eq!(first(track.for_next_chunk()), 0.0);
    }

    #[test]
    fn a_switch_mid_switch_starts_where_the_last_chunk_was() {
        let mut track = PromptTrack::new("a".into(), constant(0.0));
        track.switch("b".into(), constant(4.0), 4);
        track.advance(); // a chunk used 1.0
        track.switch("c".into(), constant(-2.0), 2);
        assert_eq!(first(track.for_next_chunk()), (1.0 + -2.0) / 2.0);
        // Not advanced: the same embeddings again (a cancelled chunk is retried the same).
        assert_eq!(first(track.for_next_chunk()), -0.5);
    }
}
