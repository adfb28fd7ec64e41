//! The NPC-face scene shared by `npc_face`, `headless_capture` and the headless test.

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_helios::prelude::*;
use helios_faces::{
    Character, Clip, DEFAULT_SIZE, Emotion, LINES as FACE_LINES, LightDirection, Lighting,
    SceneText, Tint,
};

/// The NPC whose face quad shows the stream.
#[derive(Component)]
pub struct NpcFace;

/// The on-screen caption.
#[derive(Component)]
pub struct Caption;

/// Emotions the keys 1-4 switch to, in the words of the embedded demo model's data.
pub const EMOTIONS: [Emotion; 4] = [
    Emotion::Neutral,
    Emotion::Happy,
    Emotion::Angry,
    Emotion::Surprised,
];
/// Lines Space cycles through, then silence (lines of the demo model's data).
pub const LINES: [&str; 3] = [FACE_LINES[0], FACE_LINES[1], FACE_LINES[4]];
/// The NPC: a character of the demo model's data (its seed there).
pub const NPC_SEED: u64 = 3;

/// The scene's light: warm candle light from the left.
pub fn npc_lighting() -> Lighting {
    Lighting {
        tint: Tint::Warm,
        dim: false,
        direction: LightDirection::Left,
    }
}

/// The NPC's scene context for `emotion` and `line`, in the demo model's words (the fields the
/// training captions were written from).
pub fn npc_context(emotion: Emotion, line: Option<&str>) -> SceneContext {
    let scene = SceneText::new(
        &Character::from_seed(NPC_SEED).description(),
        emotion,
        line,
        npc_lighting(),
    );
    SceneContext {
        character: scene.character,
        emotion: scene.emotion,
        line: scene.line,
        lighting: scene.lighting,
        mood: scene.mood,
        framing: scene.framing,
    }
}

/// The NPC's first scene context: calm, greeting.
pub fn keeper_context() -> SceneContext {
    npc_context(EMOTIONS[0], Some(LINES[0]))
}

/// A portrait of the NPC (neutral, in the scene's light) drawn by the demo data's renderer: the
/// picture its stream starts from (image-to-video), as a game would render its character.
pub fn npc_portrait() -> Image {
    let portrait = Clip::portrait(NPC_SEED, npc_lighting(), DEFAULT_SIZE);
    let (width, height) = portrait.dimensions();
    let rgba = image::DynamicImage::ImageRgb8(portrait)
        .into_rgba8()
        .into_raw();
    Image::new(
        Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        rgba,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
    )
}

/// Where the camera looks at the NPC from.
pub fn camera_transform() -> Transform {
    Transform::from_xyz(0.0, 1.6, 2.2).looking_at(Vec3::new(0.0, 1.5, 0.0), Vec3::Y)
}

/// The NPC's stream: its screen (showing in `face`, starting from its portrait) and its first
/// scene context. [`spawn_npc_face`] puts these on the face quad.
pub fn npc_stream(images: &mut Assets<Image>, face: Handle<Image>) -> impl Bundle {
    let portrait = images.add(npc_portrait());
    (
        NpcFace,
        HeliosScreen::new(face).with_start_image(portrait),
        keeper_context(),
    )
}

/// Spawns the room, the NPC (body + face quad with the stream) and a light; returns the face entity.
pub fn spawn_npc_face(
    commands: &mut Commands,
    meshes: &mut Assets<Mesh>,
    materials: &mut Assets<StandardMaterial>,
    images: &mut Assets<Image>,
    settings: &HeliosSettings,
) -> Entity {
    let (width, height) = settings.frame_size();
    let face = images.add(HeliosScreen::blank_image(width, height));
    let aspect = width as f32 / height.max(1) as f32;
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(8.0, 8.0))),
        MeshMaterial3d(materials.add(Color::srgb(0.25, 0.22, 0.2))),
    ));
    commands.spawn((
        Mesh3d(meshes.add(Capsule3d::new(0.35, 1.0))),
        MeshMaterial3d(materials.add(Color::srgb(0.2, 0.25, 0.4))),
        Transform::from_xyz(0.0, 0.85, -0.1),
    ));
    let npc = commands
        .spawn((
            npc_stream(images, face.clone()),
            Mesh3d(meshes.add(Rectangle::new(0.6 * aspect, 0.6))),
            MeshMaterial3d(materials.add(StandardMaterial {
                base_color_texture: Some(face),
                unlit: true,
                ..default()
            })),
            Transform::from_xyz(0.0, 1.5, 0.3),
        ))
        .id();
    commands.spawn((
        PointLight {
            intensity: 300_000.0,
            shadow_maps_enabled: false,
            ..default()
        },
        HeliosLight::new(npc).with_max_intensity(400_000.0),
        Transform::from_xyz(1.0, 2.5, 1.5),
    ));
    npc
}

/// Keys 1-4 switch the emotion (and the mood that goes with it); Space cycles the lines, then
/// silence.
pub fn switch_emotion(
    keys: Res<ButtonInput<KeyCode>>,
    mut npcs: Query<&mut SceneContext, With<NpcFace>>,
) {
    let digits = [
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
    ];
    for mut ctx in &mut npcs {
        let mut emotion = EMOTIONS
            .into_iter()
            .find(|e| ctx.emotion == e.as_str())
            .unwrap_or(EMOTIONS[0]);
        let mut line = ctx.line.clone();
        for (i, key) in digits.iter().enumerate() {
            if keys.just_pressed(*key) {
                emotion = EMOTIONS[i];
            }
        }
        if keys.just_pressed(KeyCode::Space) {
            line = match LINES.iter().position(|l| line.as_deref() == Some(*l)) {
                None => Some(LINES[0].to_string()),
                Some(i) => LINES.get(i + 1).map(|l| l.to_string()),
            };
        }
        let wanted = npc_context(emotion, line.as_deref());
        if *ctx != wanted {
            *ctx = wanted;
        }
    }
}

/// Shows the prompt and the stream's counters.
pub fn update_caption(
    npcs: Query<&HeliosStream, With<NpcFace>>,
    mut captions: Query<&mut Text, With<Caption>>,
) {
    let (Ok(stream), Ok(mut text)) = (npcs.single(), captions.single_mut()) else {
        return;
    };
    text.0 = format!(
        "[1-4] neutral, happy, angry, surprised  [space] line\n{:?} | chunks {} | shown {} | underruns {} | dropped {}\n{}",
        stream.status,
        stream.chunks,
        stream.frames_shown,
        stream.underruns,
        stream.dropped_frames,
        stream.prompt.as_deref().unwrap_or("")
    );
}
