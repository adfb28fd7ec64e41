//! Scene-context compaction: a [`SceneContext`] (structured NPC state) becomes the text prompt the
//! model takes, through a RON [`PromptTemplate`]. Pure functions, no ECS access.
//!
//! The plugin sends a prompt to the worker only when it changes *materially*
//! ([`prompt_key`]: case, punctuation and spacing do not count) and has been stable for the
//! debounce time ([`PromptTracker`]); the worker interpolates the switch over the next chunks.

use std::hash::{Hash, Hasher};

use bevy::prelude::*;
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

/// How a [`SceneContext`] is written as a prompt, loadable from RON (`assets/prompts/*.ron`).
///
/// Placeholders: `{character}`, `{emotion}`, `{line}`, `{lighting}`, `{mood}`, `{framing}`.
/// A clause of [`PromptTemplate::clauses`] whose placeholders are all empty is left out, so an
/// NPC that says nothing does not get "saying ''" in its prompt.
#[derive(Reflect, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptTemplate {
    /// The clauses, joined with `separator`.
    pub clauses: Vec<String>,
    /// Put between two kept clauses.
    pub separator: String,
    /// Appended once at the end (style words), may be empty.
    pub suffix: String,
    /// The prompt is cut at a word boundary to at most this many characters.
    pub max_chars: usize,
}

impl Default for PromptTemplate {
    fn default() -> Self {
        Self {
            clauses: vec![
                "{framing} of {character}".into(),
                "{emotion} expression".into(),
                "saying \"{line}\"".into(),
                "{lighting}".into(),
                "{mood} mood".into(),
            ],
            separator: ", ".into(),
            suffix: ". Cinematic, detailed face, natural motion.".into(),
            max_chars: 480,
        }
    }
}

impl PromptTemplate {
    /// Parses a template from RON text.
    pub fn from_ron_str(text: &str) -> Result<Self, ron::error::SpannedError> {
        ron::from_str(text)
    }
}

/// Collapses runs of whitespace to one space and trims.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes `ctx` as a prompt with `template` (see [`PromptTemplate`]).
pub fn compact_prompt(ctx: &SceneContext, template: &PromptTemplate) -> String {
    let line = ctx.line.as_deref().unwrap_or("");
    let fields: [(&str, &str); 6] = [
        ("{character}", &ctx.character),
        ("{emotion}", &ctx.emotion),
        ("{line}", line),
        ("{lighting}", &ctx.lighting),
        ("{mood}", &ctx.mood),
        ("{framing}", &ctx.framing),
    ];
    let mut kept = Vec::new();
    for clause in &template.clauses {
        let mut text = clause.clone();
        let mut any_placeholder = false;
        let mut any_value = false;
        for (key, value) in fields {
            if text.contains(key) {
                any_placeholder = true;
                let value = squash(value);
                any_value |= !value.is_empty();
                text = text.replace(key, &value);
            }
        }
        let text = squash(&text);
        if (any_value || !any_placeholder) && !text.is_empty() {
            kept.push(text);
        }
    }
    let mut prompt = kept.join(&template.separator);
    if !prompt.is_empty() {
        prompt.push_str(&template.suffix);
    }
    truncate_words(&squash(&prompt), template.max_chars)
}

/// Cuts `text` at a word boundary so it has at most `max_chars` characters.
fn truncate_words(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out = String::new();
    for word in text.split(' ') {
        let extra = if out.is_empty() { 0 } else { 1 };
        if out.chars().count() + extra + word.chars().count() > max_chars {
            break;
        }
        if extra == 1 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A hash of what a prompt *means* to the model: lower-case words, punctuation dropped.
pub fn prompt_key(prompt: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for word in prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        word.to_lowercase().hash(&mut hasher);
    }
    hasher.finish()
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

    fn keeper() -> SceneContext {
        SceneContext {
            character: "an old   lighthouse keeper".into(),
            emotion: "worried".into(),
            line: Some("The storm is coming.".into()),
            lighting: "warm candle light".into(),
            mood: "tense".into(),
            framing: "close-up portrait".into(),
        }
    }

    #[test]
    fn compacts_all_fields() {
        let p = compact_prompt(&keeper(), &PromptTemplate::default());
        assert_eq!(
            p,
            "close-up portrait of an old lighthouse keeper, worried expression, saying \"The storm is coming.\", \
             warm candle light, tense mood. Cinematic, detailed face, natural motion."
        );
    }

    #[test]
    fn empty_fields_drop_their_clause() {
        let mut ctx = keeper();
        ctx.line = None;
        ctx.mood = "  ".into();
        let p = compact_prompt(&ctx, &PromptTemplate::default());
        assert!(!p.contains("saying"), "{p}");
        assert!(!p.contains("mood"), "{p}");
        assert!(p.contains("worried expression, warm candle light."), "{p}");
        assert_eq!(
            compact_prompt(&SceneContext::default(), &PromptTemplate::default()),
            ""
        );
    }

    #[test]
    fn truncates_at_word_boundary() {
        let t = PromptTemplate {
            max_chars: 30,
            ..Default::default()
        };
        let p = compact_prompt(&keeper(), &t);
        assert!(p.chars().count() <= 30, "{p}");
        assert_eq!(p, "close-up portrait of an old");
    }

    #[test]
    fn key_ignores_case_and_punctuation() {
        assert_eq!(prompt_key("A cat, smiling."), prompt_key("a  CAT smiling"));
        assert_ne!(prompt_key("a cat smiling"), prompt_key("a cat frowning"));
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

    #[test]
    fn shipped_template_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/prompts/npc_portrait.ron");
        let text = std::fs::read_to_string(path).unwrap();
        let t = PromptTemplate::from_ron_str(&text).unwrap();
        assert_eq!(t, PromptTemplate::default());
    }
}
