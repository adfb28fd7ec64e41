//! The `npc_face` scene's keys through the plugin, in a real headless Bevy `App` (input, assets,
//! the real worker on the embedded demo model): pressing an emotion key changes the expression
//! the screen's texture shows, as the emotion classifier `helios_faces` calibrates on its
//! renderer reads it.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use bevy::input::ButtonState;
use bevy::input::InputPlugin;
use bevy::input::keyboard::{Key, KeyboardInput};
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_helios::prelude::*;
use helios_examples::scene::{EMOTIONS, NpcFace, npc_stream, switch_emotion};
use helios_faces::{Emotion, EmotionClassifier};
use image::RgbImage;

/// Frames of one chunk of the demo model.
const CHUNK_FRAMES: u64 = 33;

fn app() -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default(), InputPlugin))
        .init_asset::<Image>()
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / 24.0,
        )))
        .add_plugins(HeliosPlugin::default().with_settings(HeliosSettings {
            prompt_debounce_secs: 0.0,
            ..default()
        }))
        .add_systems(Update, switch_emotion.before(HeliosSystems::CollectContext));
    let (w, h) = app.world().resource::<HeliosSettings>().frame_size();
    let mut images = app.world_mut().resource_mut::<Assets<Image>>();
    let face = images.add(HeliosScreen::blank_image(w, h));
    let bundle = npc_stream(&mut images, face);
    app.world_mut().spawn(bundle);
    app
}

fn press(app: &mut App, key_code: KeyCode) {
    for state in [ButtonState::Pressed, ButtonState::Released] {
        app.world_mut().write_message(KeyboardInput {
            key_code,
            logical_key: Key::Unidentified(bevy::input::keyboard::NativeKey::Unidentified),
            state,
            text: None,
            repeat: false,
            window: Entity::PLACEHOLDER,
        });
        app.update();
    }
}

fn stream(app: &mut App) -> HeliosStream {
    let mut q = app
        .world_mut()
        .query_filtered::<&HeliosStream, With<NpcFace>>();
    q.single(app.world()).unwrap().clone()
}

/// The screen's texture as a picture.
fn screen(app: &mut App) -> RgbImage {
    let mut q = app
        .world_mut()
        .query_filtered::<&HeliosScreen, With<NpcFace>>();
    let handle = q.single(app.world()).unwrap().image.clone();
    let image = app
        .world()
        .resource::<Assets<Image>>()
        .get(&handle)
        .unwrap();
    let (w, h) = (image.width(), image.height());
    let rgba = image.data.clone().unwrap();
    RgbImage::from_fn(w, h, |x, y| {
        let i = ((y * w + x) * 4) as usize;
        image::Rgb([rgba[i], rgba[i + 1], rgba[i + 2]])
    })
}

/// Reads the emotion the screen shows in the second half of its chunk `chunk` (0 is the
/// stream's first), as the sum of the classifier's scores over those frames (the face eases into
/// a new expression over a chunk's first frames).
fn emotion_of_chunk(app: &mut App, chunk: u64, classifier: &EmotionClassifier) -> Emotion {
    let (from, to) = (
        chunk * CHUNK_FRAMES + CHUNK_FRAMES / 2,
        (chunk + 1) * CHUNK_FRAMES,
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut frames = Vec::new();
    let mut shown = stream(app).frames_shown;
    while shown < to {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for frame {to}"
        );
        app.update();
        let now = stream(app).frames_shown;
        if now != shown && (from..to).contains(&now) {
            frames.push(screen(app));
        }
        shown = now;
        std::thread::sleep(Duration::from_millis(2));
    }
    let stream = stream(app);
    assert_eq!(
        stream.dropped_frames, 0,
        "frames were dropped: the count is off"
    );
    classifier.classify_frames(&frames)
}

/// Presses `key`, waits for the worker to take the prompt naming `word`, and reads the emotion
/// of the second chunk made with it.
fn emotion_after(
    app: &mut App,
    key: KeyCode,
    word: &str,
    classifier: &EmotionClassifier,
) -> Emotion {
    press(app, key);
    let deadline = Instant::now() + Duration::from_secs(600);
    while !stream(app)
        .applied_prompt
        .as_deref()
        .is_some_and(|p| p.contains(word))
    {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the {word} prompt"
        );
        app.update();
        std::thread::sleep(Duration::from_millis(2));
    }
    // The chunks made before the worker took the prompt.
    let before = stream(app).chunks;
    emotion_of_chunk(app, before + 1, classifier)
}

#[test]
#[ignore = "the shipped demo model draws happy as asked 6 times in 10, and the NPC after key 2 reads sad; for a retrained one: HELIOS_MODEL_DIR=DIR cargo test -- --ignored"]
fn an_emotion_key_changes_the_expression_on_the_npc_screen() {
    let classifier = EmotionClassifier::calibrate(7);
    let mut app = app();
    assert_eq!(
        emotion_of_chunk(&mut app, 0, &classifier),
        EMOTIONS[0],
        "before any key"
    );
    for (key, emotion) in [
        (KeyCode::Digit2, EMOTIONS[1]),
        (KeyCode::Digit4, EMOTIONS[3]),
    ] {
        let read = emotion_after(&mut app, key, emotion.as_str(), &classifier);
        assert_eq!(read, emotion, "after {key:?}");
    }
}
