//! What a demo checkpoint draws for each emotion, one row each under a different light (warm,
//! warm and dim, cold, cold and dim, daylight, dim daylight), for prompts the plugin's template
//! writes. Each stream starts from the character's neutral portrait (I2V, as the plugin's portrait
//! render does; `--text` starts from the prompt alone); a row is the portrait, then frames 0, 16
//! and 32 of the first chunk and of the second. The model is the folder given, else
//! `HELIOS_MODEL_DIR`, else the embedded one.
//!
//! `cargo run --release -p helios_train --example demo_strip -- strip.png [model_dir] [--text]`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::NdArray;
use helios_faces::{Character, Clip, Emotion, Lighting, SceneText};
use helios_model::embedded;
use helios_model::pipeline::{
    ChunkStream, Conditioning, GenerationParams, HeliosPipeline, StreamRequest,
};
use helios_train::data::{SIZE, caption};
use image::{RgbImage, imageops};

type B = NdArray<f32>;

const CHARACTER: u64 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text_only = args.iter().any(|a| a == "--text");
    let mut args = args.into_iter().filter(|a| a != "--text");
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: demo_strip OUT.png [model_dir] [--text]")?,
    );
    let dir = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => embedded::default_model_dir()?,
    };
    let pipeline = Arc::new(HeliosPipeline::<B>::load(&dir, &Default::default())?);
    let who = Character::from_seed(CHARACTER).description();
    let picks = [0usize, 16, 32];
    let mut rows: Vec<Vec<RgbImage>> = Vec::new();
    for (i, emotion) in Emotion::ALL.into_iter().enumerate() {
        let lighting = Lighting::all()[i * 3];
        let text = caption(&SceneText::new(&who, emotion, None, lighting));
        let portrait =
            Clip::with_script(CHARACTER, &[(0, Emotion::Neutral, lighting, None)], 1, SIZE)
                .frames
                .remove(0);
        let params = GenerationParams {
            height: Some(128),
            width: Some(128),
            seed: 1,
            ..GenerationParams::default()
        };
        let mut request = StreamRequest::with_params(text, params);
        if !text_only {
            request.conditioning = Conditioning::Image(portrait.clone());
        }
        let mut stream = ChunkStream::new(pipeline.clone(), request)?;
        let mut row = vec![portrait];
        for _ in 0..2 {
            let frames = stream
                .next_chunk(&AtomicBool::new(false))?
                .frames
                .to_images()?;
            row.extend(picks.iter().filter_map(|&f| frames.get(f).cloned()));
        }
        rows.push(row);
        println!("{emotion}: {}", lighting.words());
    }
    let (w, h) = (SIZE, SIZE);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut strip = RgbImage::new(w * columns, h * rows.len() as u32);
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            imageops::replace(
                &mut strip,
                img,
                (c as u32 * w) as i64,
                (r as u32 * h) as i64,
            );
        }
    }
    strip.save(&out)?;
    println!("wrote {}", out.display());
    Ok(())
}
