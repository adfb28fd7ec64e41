//! An NPC whose face quad is the generated video. Keys 1-4 switch its emotion, Space its line;
//! the prompt follows (see the caption).
//!
//! `cargo run --release --example npc_face [-- --model DIR --backend wgpu]`

use bevy::prelude::*;
use bevy_helios::prelude::*;
use clap::Parser;
use helios_examples::scene::{
    Caption, camera_transform, spawn_npc_face, switch_emotion, update_caption,
};
use helios_examples::{DemoArgs, window_plugins};

fn main() {
    let args = DemoArgs::parse();
    App::new()
        .add_plugins(window_plugins())
        .add_plugins(HeliosPlugin::default().with_settings(args.settings()))
        .add_systems(Startup, setup)
        .add_systems(Update, switch_emotion.before(HeliosSystems::CollectContext))
        .add_systems(Update, update_caption.after(HeliosSystems::Receive))
        .run();
}

fn setup(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut images: ResMut<Assets<Image>>,
    settings: Res<HeliosSettings>,
) {
    spawn_npc_face(
        &mut commands,
        &mut meshes,
        &mut materials,
        &mut images,
        &settings,
    );
    commands.spawn((Camera3d::default(), camera_transform()));
    commands.spawn((
        Caption,
        Text::new(""),
        TextFont {
            font_size: FontSize::Px(16.0),
            ..default()
        },
        Node {
            position_type: PositionType::Absolute,
            top: Val::Px(8.0),
            left: Val::Px(8.0),
            ..default()
        },
    ));
}
