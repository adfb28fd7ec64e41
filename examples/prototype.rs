//! The NPC scene with the Helios inspector (`HeliosInspectorPlugin`): edit the keeper's
//! `SceneContext` in the panel and watch the compacted prompt, the worker's confirmation, the
//! current frame and the stream's counters follow; "Capture portrait" conditions the stream on
//! what a second camera sees of the NPC; "Restart stream" starts it over.
//!
//! `cargo run --release --example prototype [-- --model DIR --backend wgpu]`

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy_helios::inspector::bevy_egui::{EguiGlobalSettings, EguiPlugin, PrimaryEguiContext};
use bevy_helios::prelude::*;
use clap::Parser;
use helios_examples::scene::{camera_transform, spawn_npc_face};
use helios_examples::{DemoArgs, window_plugins};

fn main() {
    let args = DemoArgs::parse();
    App::new()
        .add_plugins(window_plugins())
        .add_plugins(HeliosPlugin::default().with_settings(args.settings()))
        .add_plugins((EguiPlugin::default(), HeliosInspectorPlugin::default()))
        .add_systems(Startup, setup)
        .run();
}

fn setup(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut images: ResMut<Assets<Image>>,
    mut egui_settings: ResMut<EguiGlobalSettings>,
    settings: Res<HeliosSettings>,
) {
    // The panel goes on the window's camera (below), not on whichever camera egui sees first.
    egui_settings.auto_create_primary_context = false;
    let npc = spawn_npc_face(
        &mut commands,
        &mut meshes,
        &mut materials,
        &mut images,
        &settings,
    );
    // The portrait that "Capture portrait" captures: a second camera on the NPC, rendering into
    // an image of the video's size (readable back: `COPY_SRC`).
    let (width, height) = settings.frame_size();
    let mut portrait =
        Image::new_target_texture(width, height, TextureFormat::Rgba8UnormSrgb, None);
    portrait.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    let portrait = images.add(portrait);
    commands.spawn((
        Camera3d::default(),
        Camera {
            order: -1,
            ..default()
        },
        RenderTarget::Image(portrait.clone().into()),
        Transform::from_xyz(0.0, 1.4, 1.4).looking_at(Vec3::new(0.0, 1.3, 0.0), Vec3::Y),
    ));
    commands.entity(npc).insert((
        Name::new("lighthouse keeper"),
        HeliosPortraitTarget(portrait),
    ));
    // The window's camera carries the panel (the primary egui context).
    commands.spawn((Camera3d::default(), camera_transform(), PrimaryEguiContext));
}
