//! What a demo checkpoint draws for each emotion, one row each (frames 0, 8, 16, 24 and 32 of the
//! first chunk) under a different light (warm, warm and dim, cold, cold and dim, daylight, dim
//! daylight), for prompts the plugin's template writes. The model is the folder given, else
//! `HELIOS_MODEL_DIR`, else the embedded one.
//!
//! `cargo run --release -p helios_train --example demo_strip -- strip.png [model_dir]`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::NdArray;
use helios_faces::{Character, Emotion, Lighting, SceneText};
use helios_model::embedded;
use helios_model::pipeline::{ChunkStream, GenerationParams, HeliosPipeline, StreamRequest};
use helios_train::data::caption;
use image::{RgbImage, imageops};

type B = NdArray<f32>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: demo_strip OUT.png [model_dir]")?);
    let dir = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => embedded::default_model_dir()?,
    };
    let pipeline = Arc::new(HeliosPipeline::<B>::load(&dir, &Default::default())?);
    let who = Character::from_seed(10).description();
    let picks = [0usize, 8, 16, 24, 32];
    let mut rows: Vec<Vec<RgbImage>> = Vec::new();
    for (i, emotion) in Emotion::ALL.into_iter().enumerate() {
        let text = caption(&SceneText::new(&who, emotion, None, Lighting::all()[i * 3]));
        let params = GenerationParams {
            height: Some(128),
            width: Some(128),
            seed: 1,
            ..GenerationParams::default()
        };
        let mut stream =
            ChunkStream::new(pipeline.clone(), StreamRequest::with_params(text, params))?;
        let frames = stream
            .next_chunk(&AtomicBool::new(false))?
            .frames
            .to_images()?;
        rows.push(
            picks
                .iter()
                .filter_map(|&f| frames.get(f).cloned())
                .collect(),
        );
        println!("{emotion}: {}", lighting_words(i));
    }
    let (w, h) = (128u32, 128u32);
    let mut strip = RgbImage::new(w * picks.len() as u32, h * rows.len() as u32);
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

fn lighting_words(i: usize) -> String {
    Lighting::all()[i * 3].words()
}
