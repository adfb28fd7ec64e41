//! The embedded demo model, tested on meaning: what it draws is read back with the measurements
//! `helios_faces` calibrates on its own renderer (never on the model's output). Streams are asked
//! for as the plugin asks: the prompt is the plugin's template over a scene, and each stream starts
//! from the character's neutral portrait in the scene's light. Fixed seeds throughout.
//!
//! `HELIOS_MODEL_DIR` points these tests at another checkpoint folder (a retrained one).
//!
//! Not here yet, because the shipped model does not do it: drawing the emotion the prompt names
//! (it keeps the portrait's expression), and a mouth that moves more when speaking.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use helios_faces::{Emotion, LightDirection, Lighting, Tint, identity_distance, measure};
use helios_model::embedded;
use helios_train::eval::{DemoModel, Scene, next_frames};

fn model() -> DemoModel {
    DemoModel::load(&embedded::default_model_dir().unwrap()).unwrap()
}

const WARM: Lighting = Lighting {
    tint: Tint::Warm,
    dim: false,
    direction: LightDirection::Left,
};

const DAYLIGHT: Lighting = Lighting {
    tint: Tint::Neutral,
    dim: false,
    direction: LightDirection::Left,
};

fn scene(character: u64, emotion: Emotion) -> Scene {
    Scene {
        character,
        emotion,
        line: None,
        lighting: WARM,
    }
}

#[test]
fn a_warm_light_prompt_is_warmer_than_a_cold_one() {
    let model = model();
    for seed in 0..5 {
        let warmth = |lighting| {
            let s = Scene {
                lighting,
                ..scene(seed, Emotion::Neutral)
            };
            // Only the prompt says which light: both streams start from one daylight portrait.
            let portrait = Scene {
                lighting: DAYLIGHT,
                ..s
            }
            .portrait();
            let mut stream = model.stream_from(&s, seed, Some(portrait)).unwrap();
            let frames = next_frames(&mut stream).unwrap();
            let frames = &frames[frames.len() / 2..];
            frames.iter().map(|f| measure(f).warmth).sum::<f32>() / frames.len() as f32
        };
        let cold = Lighting {
            tint: Tint::Cold,
            ..WARM
        };
        let (warm, cold) = (warmth(WARM), warmth(cold));
        assert!(
            warm > cold,
            "seed {seed}: warmth {warm} (warm) vs {cold} (cold)"
        );
    }
}

#[test]
fn the_character_stays_recognisable_over_five_chunks() {
    let model = model();
    for seed in 0..5 {
        let mut stream = model
            .stream(&scene(seed, Emotion::Neutral), seed, true)
            .unwrap();
        let first = next_frames(&mut stream).unwrap();
        let mut last = Vec::new();
        for _ in 1..5 {
            last = next_frames(&mut stream).unwrap();
        }
        let stranger = {
            let mut s = model
                .stream(&scene(seed + 100, Emotion::Neutral), seed, true)
                .unwrap();
            next_frames(&mut s).unwrap()
        };
        let same = identity_distance(&first[16], &last[16]);
        let other = identity_distance(&first[16], &stranger[16]);
        assert!(
            same < other,
            "seed {seed}: chunk 4 is {same} from chunk 0, another character {other}"
        );
    }
}
