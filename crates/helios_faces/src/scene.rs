//! The scene state a face follows: emotion, lighting, and the text that describes a scene.

use std::fmt;
use std::str::FromStr;

/// An emotion the face can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Emotion {
    /// Flat mouth, relaxed brows.
    Neutral,
    /// Big smile, slightly squinted eyes.
    Happy,
    /// Frown, inner brows raised, drooping lids.
    Sad,
    /// Brows down and in (a V), narrowed eyes, tight frown.
    Angry,
    /// Open round mouth, raised brows, wide eyes.
    Surprised,
    /// Slight wavy frown, raised inner brows, tight narrow mouth.
    Worried,
}

impl Emotion {
    /// Every emotion, in a fixed order (the order of [`crate::EmotionClassifier::scores`]).
    pub const ALL: [Emotion; 6] = [
        Emotion::Neutral,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Angry,
        Emotion::Surprised,
        Emotion::Worried,
    ];

    /// The lower-case word for the emotion ("neutral", "happy", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Emotion::Neutral => "neutral",
            Emotion::Happy => "happy",
            Emotion::Sad => "sad",
            Emotion::Angry => "angry",
            Emotion::Surprised => "surprised",
            Emotion::Worried => "worried",
        }
    }

    /// The position of the emotion in [`Emotion::ALL`].
    pub fn index(self) -> usize {
        match self {
            Emotion::Neutral => 0,
            Emotion::Happy => 1,
            Emotion::Sad => 2,
            Emotion::Angry => 3,
            Emotion::Surprised => 4,
            Emotion::Worried => 5,
        }
    }

    /// A mood word that goes with the emotion ("cheerful" for happy).
    pub fn mood_word(self) -> &'static str {
        match self {
            Emotion::Neutral => "calm",
            Emotion::Happy => "cheerful",
            Emotion::Sad => "melancholy",
            Emotion::Angry => "tense",
            Emotion::Surprised => "startled",
            Emotion::Worried => "anxious",
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no [`Emotion`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown emotion {0:?} (expected one of neutral, happy, sad, angry, surprised, worried)")]
pub struct UnknownEmotion(pub String);

impl FromStr for Emotion {
    type Err = UnknownEmotion;

    /// Parses the word of [`Emotion::as_str`], ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim().to_ascii_lowercase();
        Emotion::ALL
            .into_iter()
            .find(|e| e.as_str() == word)
            .ok_or_else(|| UnknownEmotion(s.to_string()))
    }
}

/// The colour of the light.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tint {
    /// Orange candle light.
    Warm,
    /// Blue moonlight.
    Cold,
    /// White daylight.
    Neutral,
}

/// Where the light comes from, as seen by the viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LightDirection {
    /// From the left side of the image.
    Left,
    /// From the front.
    Front,
    /// From the right side of the image.
    Right,
}

impl LightDirection {
    /// -1 for left, 0 for front, 1 for right.
    pub fn signum(self) -> f32 {
        match self {
            LightDirection::Left => -1.0,
            LightDirection::Front => 0.0,
            LightDirection::Right => 1.0,
        }
    }
}

/// The lighting of a scene.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lighting {
    /// Colour of the light.
    pub tint: Tint,
    /// A dim scene (darker overall).
    pub dim: bool,
    /// Where the light comes from.
    pub direction: LightDirection,
}

impl Default for Lighting {
    fn default() -> Self {
        Lighting {
            tint: Tint::Neutral,
            dim: false,
            direction: LightDirection::Front,
        }
    }
}

impl Lighting {
    /// All 18 lightings (3 tints x dim or not x 3 directions).
    pub fn all() -> Vec<Lighting> {
        let mut all = Vec::with_capacity(18);
        for tint in [Tint::Warm, Tint::Cold, Tint::Neutral] {
            for dim in [false, true] {
                for direction in [
                    LightDirection::Left,
                    LightDirection::Front,
                    LightDirection::Right,
                ] {
                    all.push(Lighting {
                        tint,
                        dim,
                        direction,
                    });
                }
            }
        }
        all
    }

    /// The lighting in words, with stable wording: "warm candle light from the left",
    /// "dim cold blue moonlight from the right", "soft daylight from the front".
    pub fn words(&self) -> String {
        let tint = match self.tint {
            Tint::Warm => "warm candle light",
            Tint::Cold => "cold blue moonlight",
            Tint::Neutral => "soft daylight",
        };
        let direction = match self.direction {
            LightDirection::Left => "from the left",
            LightDirection::Front => "from the front",
            LightDirection::Right => "from the right",
        };
        let dim = if self.dim { "dim " } else { "" };
        format!("{dim}{tint} {direction}")
    }

    /// The atmosphere word the lighting adds to a mood ("cosy" for warm light).
    pub fn ambience_word(&self) -> &'static str {
        match (self.tint, self.dim) {
            (Tint::Warm, false) => "cosy",
            (Tint::Warm, true) => "intimate",
            (Tint::Cold, false) => "chilly",
            (Tint::Cold, true) => "eerie",
            (Tint::Neutral, false) => "ordinary",
            (Tint::Neutral, true) => "gloomy",
        }
    }
}

/// The fixed short lines a character may speak.
pub const LINES: [&str; 6] = [
    "Welcome, traveller.",
    "Have you seen my cat?",
    "The road north is closed.",
    "I have wares, if you have coin.",
    "Stay away from the forest.",
    "What a lovely day!",
];

/// The framing of every rendered clip.
pub const FRAMING: &str = "close-up portrait, head and shoulders, facing the camera";

/// A scene described in words, field for field the plugin's scene context
/// (`character, emotion, line, lighting, mood, framing`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SceneText {
    /// Who the character is ("a pale round face with long red hair and green eyes").
    pub character: String,
    /// The emotion word ("worried").
    pub emotion: String,
    /// The line being spoken; `None` when the character is silent.
    pub line: Option<String>,
    /// The lighting in words ([`Lighting::words`]).
    pub lighting: String,
    /// The mood ("anxious and eerie").
    pub mood: String,
    /// The camera framing ([`FRAMING`]).
    pub framing: String,
}

impl SceneText {
    /// The words for a character description, an emotion, an optional line and a lighting.
    pub fn new(character: &str, emotion: Emotion, line: Option<&str>, lighting: Lighting) -> Self {
        SceneText {
            character: character.to_string(),
            emotion: emotion.as_str().to_string(),
            line: line.map(str::to_string),
            lighting: lighting.words(),
            mood: format!("{} and {}", emotion.mood_word(), lighting.ambience_word()),
            framing: FRAMING.to_string(),
        }
    }

    /// Whether the character speaks (a line is set).
    pub fn speaking(&self) -> bool {
        self.line.is_some()
    }
}
