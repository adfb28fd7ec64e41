//! The NPC-face scene shared by `npc_face`, `headless_capture` and the headless test.

use bevy::prelude::*;
use bevy_helios::prelude::*;

/// The NPC whose face quad shows the stream.
#[derive(Component)]
pub struct NpcFace;

/// The on-screen caption.
#[derive(Component)]
pub struct Caption;

/// Emotions the keys 1-4 switch to.
pub const EMOTIONS: [&str; 4] = ["calm", "joyful, laughing", "angry, shouting", "frightened"];
/// Lines Space cycles through.
pub const LINES: [&str; 3] = [
    "The storm is coming tonight.",
    "Have you seen my lantern?",
    "Leave this island while you can.",
];

/// The NPC's first scene context.
pub fn keeper_context() -> SceneContext {
    SceneContext {
        character: "an old lighthouse keeper with a grey beard".into(),
        emotion: EMOTIONS[0].into(),
        line: Some(LINES[0].into()),
        lighting: "warm lantern light from the left".into(),
        mood: "tense".into(),
        framing: "close-up portrait".into(),
    }
}

/// Where the camera looks at the NPC from.
pub fn camera_transform() -> Transform {
    Transform::from_xyz(0.0, 1.6, 2.2).looking_at(Vec3::new(0.0, 1.5, 0.0), Vec3::Y)
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
            NpcFace,
            HeliosScreen::new(face.clone()),
            keeper_context(),
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

/// Keys 1-4 switch the emotion, Space the line.
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
        for (i, key) in digits.iter().enumerate() {
            if keys.just_pressed(*key) {
                ctx.emotion = EMOTIONS[i].into();
            }
        }
        if keys.just_pressed(KeyCode::Space) {
            let next = LINES
                .iter()
                .position(|l| ctx.line.as_deref() == Some(*l))
                .map_or(0, |i| (i + 1) % LINES.len());
            ctx.line = Some(LINES[next].into());
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
        "[1-4] emotion  [space] line\n{:?} | chunks {} | shown {} | underruns {} | dropped {}\n{}",
        stream.status,
        stream.chunks,
        stream.frames_shown,
        stream.underruns,
        stream.dropped_frames,
        stream.prompt.as_deref().unwrap_or("")
    );
}
