//! Scene-context compaction: a [`SceneContext`] (structured NPC state) becomes the text prompt the
//! model takes, through a RON [`PromptTemplate`] (the pure compaction lives in
//! [`helios_worker::prompt`], which the demo model's trainer captions its clips with).
//!
//! The plugin sends a prompt to the worker only when it changes *materially*
//! ([`prompt_key`]: case, punctuation and spacing do not count) and has been stable for the
//! debounce time ([`PromptTracker`]); the worker interpolates the switch over the next chunks.

use bevy::prelude::*;
pub use helios_worker::prompt::PromptTemplate;
use helios_worker::prompt::{SceneFields, prompt_key};
use serde::{Deserialize, Serialize};

/// Structured state of an NPC that the generated video should show.
///
/// Put it on the entity that has a [`HeliosScreen`](crate::screen::HeliosScreen); whenever it
/// changes materially, the stream's prompt follows.
#[derive(
    Component, Reflect, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize,
)]
#[reflect(Component)]
#[serde(default)]
pub struct SceneContext {
    /// Who the character is ("an old lighthouse keeper with a grey beard").
    pub character: String,
    /// The current emotion ("worried").
    pub emotion: String,
    /// The line being spoken, if any.
    pub line: Option<String>,
    /// Lighting ("warm candle light").
    pub lighting: String,
    /// Mood of the scene ("tense").
    pub mood: String,
    /// Camera framing ("close-up portrait").
    pub framing: String,
}

impl SceneContext {
    /// The fields as text, for [`helios_worker::prompt::compact_prompt`].
    pub fn fields(&self) -> SceneFields<'_> {
        SceneFields {
            character: &self.character,
            emotion: &self.emotion,
            line: self.line.as_deref(),
            lighting: &self.lighting,
            mood: &self.mood,
            framing: &self.framing,
        }
    }
}

/// Writes `ctx` as a prompt with `template` (see [`PromptTemplate`]).
pub fn compact_prompt(ctx: &SceneContext, template: &PromptTemplate) -> String {
    helios_worker::prompt::compact_prompt(&ctx.fields(), template)
}

/// Decides when a stream's prompt is (re)sent: only on a material change ([`prompt_key`]), and
/// only once the new prompt has been stable for the debounce time.
#[derive(Clone, Debug, Default)]
pub struct PromptTracker {
    sent_key: Option<u64>,
    pending: Option<(u64, String, f64)>,
}

impl PromptTracker {
    /// Offers the current prompt at time `now` (seconds); returns the prompt to send, if any.
    ///
    /// The first prompt of a stream is sent at once; later ones after `debounce` seconds of
    /// stability (a prompt that keeps changing is sent once it settles).
    pub fn offer(&mut self, prompt: &str, now: f64, debounce: f64) -> Option<String> {
        let key = prompt_key(prompt);
        if self.sent_key == Some(key) {
            self.pending = None;
            return None;
        }
        if self.sent_key.is_none() {
            self.sent_key = Some(key);
            self.pending = None;
            return Some(prompt.to_owned());
        }
        match &self.pending {
            Some((pending_key, _, since)) if *pending_key == key => {
                if now - since >= debounce {
                    self.sent_key = Some(key);
                    self.pending.take().map(|(_, text, _)| text)
                } else {
                    None
                }
            }
            _ => {
                self.pending = Some((key, prompt.to_owned(), now));
                if debounce <= 0.0 {
                    self.sent_key = Some(key);
                    return self.pending.take().map(|(_, text, _)| text);
                }
                None
            }
        }
    }

    /// Polls a pending prompt without a new offer (call every tick).
    pub fn poll(&mut self, now: f64, debounce: f64) -> Option<String> {
        let (key, text, since) = self.pending.clone()?;
        if now - since >= debounce {
            self.sent_key = Some(key);
            self.pending = None;
            Some(text)
        } else {
            None
        }
    }

    /// Forgets what was sent (a restarted stream gets its prompt again).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_context_compacts_through_its_fields() {
        let ctx = SceneContext {
            character: "an old lighthouse keeper".into(),
            emotion: "worried".into(),
            line: Some("The storm is coming.".into()),
            lighting: "warm candle light".into(),
            mood: "tense".into(),
            framing: "close-up portrait".into(),
        };
        assert_eq!(
            compact_prompt(&ctx, &PromptTemplate::default()),
            "close-up portrait of an old lighthouse keeper, worried expression, saying \"The storm is coming.\", \
             warm candle light, tense mood. Cinematic, detailed face, natural motion."
        );
    }

    #[test]
    fn tracker_sends_first_at_once_then_debounces() {
        let mut t = PromptTracker::default();
        assert_eq!(t.offer("happy", 0.0, 0.5).as_deref(), Some("happy"));
        assert_eq!(t.offer("Happy.", 0.1, 0.5), None, "not a material change");
        assert_eq!(t.offer("sad", 1.0, 0.5), None, "debounced");
        assert_eq!(
            t.offer("angry", 1.2, 0.5),
            None,
            "still changing: timer restarts"
        );
        assert_eq!(t.poll(1.6, 0.5), None);
        assert_eq!(t.poll(1.7, 0.5).as_deref(), Some("angry"));
        assert_eq!(t.offer("angry", 2.0, 0.5), None);
        t.reset();
        assert_eq!(t.offer("angry", 3.0, 0.5).as_deref(), Some("angry"));
    }
}
