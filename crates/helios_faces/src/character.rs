//! Seeded character identities drawn from fixed word and colour lists.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Skin tones: (word, linear-ish RGB in 0..1).
const SKINS: [(&str, [f32; 3]); 6] = [
    ("pale", [0.96, 0.82, 0.72]),
    ("fair", [0.92, 0.74, 0.60]),
    ("olive", [0.80, 0.63, 0.45]),
    ("tan", [0.72, 0.52, 0.36]),
    ("brown", [0.56, 0.38, 0.26]),
    ("dark", [0.42, 0.28, 0.19]),
];

/// Hair colours: (word, RGB).
const HAIRS: [(&str, [f32; 3]); 6] = [
    ("black", [0.08, 0.07, 0.07]),
    ("brown", [0.36, 0.21, 0.10]),
    ("red", [0.72, 0.24, 0.08]),
    ("blond", [0.90, 0.76, 0.42]),
    ("grey", [0.70, 0.70, 0.72]),
    ("blue", [0.18, 0.32, 0.78]),
];

/// Eye colours: (word, RGB of the iris).
const EYES: [(&str, [f32; 3]); 4] = [
    ("brown", [0.35, 0.20, 0.08]),
    ("blue", [0.20, 0.45, 0.85]),
    ("green", [0.20, 0.60, 0.30]),
    ("grey", [0.50, 0.55, 0.58]),
];

/// Shirt colours (part of the identity, not described in words).
const SHIRTS: [[f32; 3]; 5] = [
    [0.55, 0.15, 0.15],
    [0.15, 0.40, 0.20],
    [0.20, 0.25, 0.55],
    [0.50, 0.42, 0.25],
    [0.35, 0.20, 0.45],
];

/// How the hair is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HairStyle {
    /// A short cap of hair.
    Short,
    /// Hair falling to the shoulders behind the head.
    Long,
    /// A bun on top of the head.
    Bun,
    /// A bumpy, curly cap.
    Curly,
}

impl HairStyle {
    /// Every style.
    pub const ALL: [HairStyle; 4] = [
        HairStyle::Short,
        HairStyle::Long,
        HairStyle::Bun,
        HairStyle::Curly,
    ];

    /// The style in words ("short", "long", "tied-up", "curly").
    pub fn as_str(self) -> &'static str {
        match self {
            HairStyle::Short => "short",
            HairStyle::Long => "long",
            HairStyle::Bun => "tied-up",
            HairStyle::Curly => "curly",
        }
    }
}

/// A character's identity: what stays the same while the expression and the light change.
#[derive(Clone, Debug, PartialEq)]
pub struct Character {
    /// Index into the skin tone list.
    pub skin: usize,
    /// Index into the hair colour list.
    pub hair: usize,
    /// The hair cut.
    pub hair_style: HairStyle,
    /// Index into the eye colour list.
    pub eyes: usize,
    /// Index into the shirt colour list.
    pub shirt: usize,
    /// Face width relative to the average face (0.9 narrow .. 1.1 round).
    pub face_width: f32,
}

impl Character {
    /// The character of a seed; equal seeds give equal characters.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0c4a_5ac7_e5f0_0d11);
        Character {
            skin: rng.random_range(0..SKINS.len()),
            hair: rng.random_range(0..HAIRS.len()),
            hair_style: HairStyle::ALL[rng.random_range(0..HairStyle::ALL.len())],
            eyes: rng.random_range(0..EYES.len()),
            shirt: rng.random_range(0..SHIRTS.len()),
            face_width: if rng.random_bool(0.5) { 0.92 } else { 1.08 },
        }
    }

    /// Eight clearly distinct characters (different skin, hair colour or cut for each pair).
    pub fn roster() -> Vec<Character> {
        let styles = HairStyle::ALL;
        (0..8)
            .map(|i| Character {
                skin: (i * 5) % SKINS.len(),
                hair: i % HAIRS.len(),
                hair_style: styles[i % styles.len()],
                eyes: i % EYES.len(),
                shirt: i % SHIRTS.len(),
                face_width: if i % 2 == 0 { 0.92 } else { 1.08 },
            })
            .collect()
    }

    /// A short description from fixed word lists:
    /// "a pale round face with long red hair and green eyes".
    pub fn description(&self) -> String {
        let shape = if self.face_width > 1.0 {
            "round"
        } else {
            "narrow"
        };
        format!(
            "a {} {} face with {} {} hair and {} eyes",
            SKINS[self.skin % SKINS.len()].0,
            shape,
            self.hair_style.as_str(),
            HAIRS[self.hair % HAIRS.len()].0,
            EYES[self.eyes % EYES.len()].0,
        )
    }

    /// Skin colour (RGB in 0..1).
    pub fn skin_rgb(&self) -> [f32; 3] {
        SKINS[self.skin % SKINS.len()].1
    }

    /// Hair colour (RGB in 0..1).
    pub fn hair_rgb(&self) -> [f32; 3] {
        HAIRS[self.hair % HAIRS.len()].1
    }

    /// Iris colour (RGB in 0..1).
    pub fn eye_rgb(&self) -> [f32; 3] {
        EYES[self.eyes % EYES.len()].1
    }

    /// Shirt colour (RGB in 0..1).
    pub fn shirt_rgb(&self) -> [f32; 3] {
        SHIRTS[self.shirt % SHIRTS.len()]
    }
}
