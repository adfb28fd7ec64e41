//! Scene-context compaction: the fields of a scene (who, which emotion, what line, which light,
//! which mood, which framing) become the text prompt the model takes, through a RON
//! [`PromptTemplate`]. Pure functions: the Bevy plugin calls them with its `SceneContext`, and the
//! demo model's trainer captions its clips with them, so the model learns exactly the prompts the
//! plugin sends.

use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// The fields of a scene, as text (field for field the plugin's `SceneContext`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SceneFields<'a> {
    /// Who the character is ("an old lighthouse keeper with a grey beard").
    pub character: &'a str,
    /// The current emotion ("worried").
    pub emotion: &'a str,
    /// The line being spoken, if any.
    pub line: Option<&'a str>,
    /// Lighting ("warm candle light").
    pub lighting: &'a str,
    /// Mood of the scene ("tense").
    pub mood: &'a str,
    /// Camera framing ("close-up portrait").
    pub framing: &'a str,
}

/// How a scene ([`SceneFields`]) is written as a prompt, loadable from RON (`assets/prompts/*.ron`).
///
/// Placeholders: `{character}`, `{emotion}`, `{line}`, `{lighting}`, `{mood}`, `{framing}`.
/// A clause of [`PromptTemplate::clauses`] whose placeholders are all empty is left out, so an
/// NPC that says nothing does not get "saying ''" in its prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// Writes `scene` as a prompt with `template` (see [`PromptTemplate`]).
pub fn compact_prompt(scene: &SceneFields<'_>, template: &PromptTemplate) -> String {
    let line = scene.line.unwrap_or("");
    let fields: [(&str, &str); 6] = [
        ("{character}", scene.character),
        ("{emotion}", scene.emotion),
        ("{line}", line),
        ("{lighting}", scene.lighting),
        ("{mood}", scene.mood),
        ("{framing}", scene.framing),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keeper() -> SceneFields<'static> {
        SceneFields {
            character: "an old   lighthouse keeper",
            emotion: "worried",
            line: Some("The storm is coming."),
            lighting: "warm candle light",
            mood: "tense",
            framing: "close-up portrait",
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
        let mut scene = keeper();
        scene.line = None;
        scene.mood = "  ";
        let p = compact_prompt(&scene, &PromptTemplate::default());
        assert!(!p.contains("saying"), "{p}");
        assert!(!p.contains("mood"), "{p}");
        assert!(p.contains("worried expression, warm candle light."), "{p}");
        assert_eq!(
            compact_prompt(&SceneFields::default(), &PromptTemplate::default()),
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
    fn shipped_template_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/prompts/npc_portrait.ron");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
        let t = PromptTemplate::from_ron_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, PromptTemplate::default());
    }
}
