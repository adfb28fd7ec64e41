//! The meaning checks of a demo checkpoint, as figures: how often each emotion is read back from
//! its chunks, mouth motion when speaking and silent, the light's warmth, identity over five
//! chunks and a prompt switch. Streams start from the character's portrait (`--text`: from the
//! prompt alone). The model is the folder given, else `HELIOS_MODEL_DIR`, else the embedded one.
//!
//! `cargo run --release -p helios_train --example demo_eval -- [model_dir] [seeds] [--text]`

use helios_faces::{
    Emotion, EmotionClassifier, LINES, LightDirection, Lighting, Tint, identity_distance, measure,
    mouth_motion,
};
use helios_model::embedded;
use helios_train::eval::{DemoModel, Scene, next_frames, read_emotion};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let portrait = !args.iter().any(|a| a == "--text");
    let mut args = args.into_iter().filter(|a| a != "--text");
    let dir = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => embedded::default_model_dir()?,
    };
    let seeds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let model = DemoModel::load(&dir)?;
    let classifier = EmotionClassifier::calibrate(7);
    let warm = Lighting {
        tint: Tint::Warm,
        dim: false,
        direction: LightDirection::Left,
    };
    let cold = Lighting {
        tint: Tint::Cold,
        ..warm
    };
    let scene = |character: u64, emotion: Emotion| Scene {
        character,
        emotion,
        line: None,
        lighting: warm,
    };

    println!("emotion read back (chunk 0, chunk 1) of {seeds} seeds:");
    for emotion in Emotion::ALL {
        let (mut first, mut second) = (0, 0);
        let mut read = Vec::new();
        for seed in 0..seeds {
            let mut stream = model.stream(&scene(seed, emotion), seed, portrait)?;
            let a = read_emotion(&classifier, &next_frames(&mut stream)?);
            let b = read_emotion(&classifier, &next_frames(&mut stream)?);
            first += usize::from(a == emotion);
            second += usize::from(b == emotion);
            read.push(format!("{a}/{b}"));
        }
        println!(
            "  {emotion:>9}: {first}/{seeds}, {second}/{seeds}  [{}]",
            read.join(" ")
        );
    }

    println!("mouth motion of chunk 0, speaking vs silent:");
    for seed in 0..seeds.min(5) {
        let mut motion = [0.0f32; 2];
        for (m, line) in motion.iter_mut().zip([Some(LINES[0]), None]) {
            let s = Scene {
                line,
                ..scene(seed, Emotion::Neutral)
            };
            *m = mouth_motion(&next_frames(&mut model.stream(&s, seed, portrait)?)?);
        }
        println!("  seed {seed}: {:.4} vs {:.4}", motion[0], motion[1]);
    }

    println!("mean warmth of chunk 0, warm vs cold light:");
    for seed in 0..seeds.min(5) {
        let mut warmth = [0.0f32; 2];
        for (w, lighting) in warmth.iter_mut().zip([warm, cold]) {
            let s = Scene {
                lighting,
                ..scene(seed, Emotion::Neutral)
            };
            let frames = next_frames(&mut model.stream(&s, seed, portrait)?)?;
            *w = frames.iter().map(|f| measure(f).warmth).sum::<f32>() / frames.len() as f32;
        }
        println!("  seed {seed}: {:.4} vs {:.4}", warmth[0], warmth[1]);
    }

    println!("identity over 5 chunks (distance of chunk 4 to chunk 0, to another character):");
    for seed in 0..seeds.min(5) {
        let mut stream = model.stream(&scene(seed, Emotion::Neutral), seed, portrait)?;
        let first = next_frames(&mut stream)?;
        let mut last = first.clone();
        for _ in 1..5 {
            last = next_frames(&mut stream)?;
        }
        let other = seed + 100;
        let mut stranger = model.stream(&scene(other, Emotion::Neutral), seed, portrait)?;
        let stranger = next_frames(&mut stranger)?;
        println!(
            "  seed {seed}: {:.3} vs {:.3}",
            identity_distance(&first[16], &last[16]),
            identity_distance(&first[16], &stranger[16])
        );
    }

    println!("prompt switch happy -> angry after chunk 0 (chunks 0, 1, 2):");
    for seed in 0..seeds.min(5) {
        let mut stream = model.stream(&scene(seed, Emotion::Happy), seed, portrait)?;
        let a = read_emotion(&classifier, &next_frames(&mut stream)?);
        stream.set_prompt(&scene(seed, Emotion::Angry).prompt(), 1)?;
        let b = read_emotion(&classifier, &next_frames(&mut stream)?);
        let c = read_emotion(&classifier, &next_frames(&mut stream)?);
        println!("  seed {seed}: {a} {b} {c}");
    }
    Ok(())
}
