//! Writes a contact sheet of the six emotions for a few characters and lightings:
//! `cargo run -p helios_faces --example contact_sheet -- sheet.png`.

use helios_faces::{Character, Emotion, FacePose, LightDirection, Lighting, Tint, render};
use image::{GenericImage, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "contact_sheet.png".to_string());
    let size = 128;
    let roster = Character::roster();
    let lightings = [
        Lighting::default(),
        Lighting {
            tint: Tint::Warm,
            dim: false,
            direction: LightDirection::Left,
        },
        Lighting {
            tint: Tint::Cold,
            dim: true,
            direction: LightDirection::Right,
        },
        Lighting {
            tint: Tint::Neutral,
            dim: false,
            direction: LightDirection::Right,
        },
    ];
    let rows = roster.len();
    let mut sheet = RgbImage::new(size * 6, size * rows as u32);
    for (r, character) in roster.iter().enumerate() {
        let lighting = lightings[r % lightings.len()];
        for (c, emotion) in Emotion::ALL.into_iter().enumerate() {
            let img = render(character, &FacePose::target(emotion, lighting), size);
            sheet.copy_from(&img, c as u32 * size, r as u32 * size)?;
        }
    }
    sheet.save(&path)?;
    println!("wrote {path}");
    Ok(())
}
