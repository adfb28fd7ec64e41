//! The game's own frames as context (V2V): a camera renders a small 3D scene (a turning red cube
//! on a floor) into an image; a `HeliosVideoContext` hands its latest frames to the model before
//! each chunk, so the generated video (right) continues what the game shows (left). Key C adds or
//! removes the cube, V turns the video context off and on.
//!
//! `cargo run --release --example v2v_scene [-- --model DIR --backend wgpu]`

use bevy::prelude::*;
use bevy_helios::prelude::*;
use clap::Parser;
use helios_examples::v2v::{Cube, GeneratedView, V2vScene, spawn_v2v_scene, spin_cube};
use helios_examples::{DemoArgs, window_plugins};

fn main() {
    let args = DemoArgs::parse();
    App::new()
        .add_plugins(window_plugins())
        .add_plugins(HeliosPlugin::default().with_settings(args.settings()))
        .insert_resource(V2vScene::default())
        .add_systems(Startup, setup)
        .add_systems(
            Update,
            (spin_cube, toggle).before(HeliosSystems::CollectContext),
        )
        .add_systems(Update, caption.after(HeliosSystems::Receive))
        .run();
}

/// The caption under the two pictures.
#[derive(Component)]
struct Caption;

fn setup(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut images: ResMut<Assets<Image>>,
    settings: Res<HeliosSettings>,
    scene: Res<V2vScene>,
) {
    let handles = spawn_v2v_scene(
        &mut commands,
        &mut meshes,
        &mut materials,
        &mut images,
        &settings,
        &scene,
    );
    // The window shows the two images side by side (UI), through its own camera.
    commands.spawn(Camera2d);
    let picture = |image: Handle<Image>, label: &str| {
        (
            Node {
                flex_direction: FlexDirection::Column,
                align_items: AlignItems::Center,
                margin: UiRect::all(Val::Px(12.0)),
                ..default()
            },
            children![
                (
                    ImageNode::new(image),
                    Node {
                        width: Val::Px(384.0),
                        height: Val::Px(384.0),
                        ..default()
                    },
                ),
                Text::new(label),
            ],
        )
    };
    commands.spawn((
        Node {
            width: Val::Percent(100.0),
            flex_direction: FlexDirection::Column,
            align_items: AlignItems::Center,
            ..default()
        },
        children![
            (
                Node::default(),
                children![
                    picture(handles.view, "the game's view"),
                    picture(handles.video, "generated, continuing it"),
                ],
            ),
            (Caption, Text::new("")),
        ],
    ));
}

/// C: the cube in or out of the scene; V: the video context on or off.
fn toggle(
    keys: Res<ButtonInput<KeyCode>>,
    mut cubes: Query<&mut Visibility, With<Cube>>,
    mut contexts: Query<&mut HeliosVideoContext>,
) {
    if keys.just_pressed(KeyCode::KeyC) {
        for mut visibility in &mut cubes {
            visibility.toggle_visible_hidden();
        }
    }
    if keys.just_pressed(KeyCode::KeyV) {
        for mut context in &mut contexts {
            context.enabled = !context.enabled;
        }
    }
}

fn caption(
    streams: Query<(&HeliosStream, &HeliosVideoContext), With<GeneratedView>>,
    mut captions: Query<&mut Text, With<Caption>>,
) {
    let Some((stream, context)) = streams.iter().next() else {
        return;
    };
    for mut text in &mut captions {
        text.0 = format!(
            "{:?} | chunks {} | game frames handed over {} times | video context {} (V) | cube (C)",
            stream.status,
            stream.chunks,
            stream.video_pushes,
            if context.enabled { "on" } else { "off" },
        );
    }
}
