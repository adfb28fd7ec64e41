//! How well a trained VAE keeps what the emotion classifier reads: renders faces of each emotion
//! (random characters and lightings), passes them through the VAE of a checkpoint, and classifies
//! the input and its reconstruction.
//!
//! `cargo run --release -p helios_train --example vae_emotions -- CHECKPOINT [per_emotion] [sheet.png]`
//!
//! `sheet.png`: the first sample of each emotion (input above, reconstruction below).

use std::path::PathBuf;

use burn::backend::NdArray;
use helios_faces::classify::augmented_sample;
use helios_faces::{DEFAULT_SIZE, Emotion, EmotionClassifier};
use helios_model::pipeline::Frames;
use helios_model::vae::WanVae;
use helios_train::data::video_tensor;
use image::RgbImage;
use rand::SeedableRng;
use rand::rngs::StdRng;

type B = NdArray<f32>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: vae_emotions CHECKPOINT [per_emotion]")?,
    );
    let per: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let sheet_path = args.next();
    let mut sheet = RgbImage::new(DEFAULT_SIZE * 6, DEFAULT_SIZE * 2);
    let device = Default::default();
    let vae = WanVae::<B>::load(&dir.join("vae"), &device)?;
    let classifier = EmotionClassifier::calibrate(7);
    let mut rng = StdRng::seed_from_u64(99);
    let (mut hits_in, mut hits_out) = (0, 0);
    for emotion in Emotion::ALL {
        let (mut e_in, mut e_out) = (0, 0);
        let mut seen = Vec::new();
        for _ in 0..per {
            let img = augmented_sample(&mut rng, emotion, DEFAULT_SIZE);
            let posterior = vae.encode(video_tensor::<B>(std::slice::from_ref(&img), &device))?;
            let frames = Frames::new(vae.decode_vae_space(posterior.mode())?);
            let out = frames.to_images()?.into_iter().next().ok_or("no frame")?;
            if seen.is_empty() {
                let x = (emotion.index() as u32 * DEFAULT_SIZE) as i64;
                image::imageops::replace(&mut sheet, &img, x, 0);
                image::imageops::replace(&mut sheet, &out, x, DEFAULT_SIZE as i64);
            }
            e_in += usize::from(classifier.classify(&img) == emotion);
            let got = classifier.classify(&out);
            e_out += usize::from(got == emotion);
            seen.push(got.as_str());
        }
        println!("{emotion}: input {e_in}/{per}, reconstruction {e_out}/{per} {seen:?}");
        hits_in += e_in;
        hits_out += e_out;
    }
    let n = per * Emotion::ALL.len();
    println!("all: input {hits_in}/{n}, reconstruction {hits_out}/{n}");
    if let Some(path) = sheet_path {
        sheet.save(&path)?;
    }
    Ok(())
}
