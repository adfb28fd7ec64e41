//! A room lit by the generated video: a `HeliosLight` drives a point light and the emissive
//! colour of a glowing "window" panel from the mean colour of the frames, smoothed over time.
//! The settings come from `assets/settings/default.helios.ron` (hot-reloaded: edit it while
//! this runs).
//!
//! `cargo run --release --example live_lighting [-- --model DIR]`

use bevy::prelude::*;
use bevy_helios::prelude::*;
use clap::Parser;
use helios_examples::{DemoArgs, window_plugins};

fn main() {
    let args = DemoArgs::parse();
    let mut plugin = HeliosPlugin::default().with_settings(args.settings());
    if args.model.is_none() {
        plugin = plugin.with_settings_asset("settings/default.helios.ron");
    }
    App::new()
        .add_plugins(window_plugins())
        .add_plugins(plugin)
        .add_systems(Startup, setup)
        .run();
}

fn setup(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut images: ResMut<Assets<Image>>,
    settings: Res<HeliosSettings>,
) {
    let wall = materials.add(Color::srgb(0.8, 0.8, 0.78));
    // Floor, back wall, side walls.
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(6.0, 6.0))),
        MeshMaterial3d(wall.clone()),
    ));
    for (pos, rot) in [
        (
            Vec3::new(0.0, 1.5, -3.0),
            Quat::from_rotation_x(std::f32::consts::FRAC_PI_2),
        ),
        (
            Vec3::new(-3.0, 1.5, 0.0),
            Quat::from_rotation_z(-std::f32::consts::FRAC_PI_2),
        ),
        (
            Vec3::new(3.0, 1.5, 0.0),
            Quat::from_rotation_z(std::f32::consts::FRAC_PI_2),
        ),
    ] {
        commands.spawn((
            Mesh3d(meshes.add(Plane3d::default().mesh().size(6.0, 3.0))),
            MeshMaterial3d(wall.clone()),
            Transform::from_translation(pos).with_rotation(rot),
        ));
    }
    commands.spawn((
        Mesh3d(meshes.add(Cuboid::new(0.8, 0.8, 0.8))),
        MeshMaterial3d(materials.add(Color::WHITE)),
        Transform::from_xyz(0.6, 0.4, -0.5),
    ));
    // The video, shown on a screen on the back wall.
    let (width, height) = settings.frame_size();
    let video = images.add(HeliosScreen::blank_image(width, height));
    let screen = commands
        .spawn((
            HeliosScreen::new(video.clone())
                .with_prompt("flickering fireplace flames, warm orange and red, dark room"),
            Mesh3d(meshes.add(Rectangle::new(1.6, 1.6))),
            MeshMaterial3d(materials.add(StandardMaterial {
                base_color_texture: Some(video),
                unlit: true,
                ..default()
            })),
            Transform::from_xyz(-1.2, 1.4, -2.95),
        ))
        .id();
    // A glowing panel tinted by the top half of the frames, and the room light by the whole frame.
    let glow = materials.add(StandardMaterial {
        base_color: Color::BLACK,
        ..default()
    });
    commands.spawn((
        Mesh3d(meshes.add(Rectangle::new(1.0, 0.3))),
        MeshMaterial3d(glow.clone()),
        Transform::from_xyz(1.2, 2.4, -2.95),
        PointLight {
            intensity: 0.0,
            range: 10.0,
            shadow_maps_enabled: true,
            ..default()
        },
        HeliosLight::new(screen)
            .with_region(Rect::new(0.0, 0.0, 1.0, 0.5))
            .with_max_intensity(600_000.0)
            .with_emissive(glow),
    ));
    commands.spawn((
        PointLight {
            intensity: 0.0,
            range: 10.0,
            ..default()
        },
        HeliosLight::new(screen).with_max_intensity(800_000.0),
        Transform::from_xyz(-1.2, 1.4, -2.0),
    ));
    commands.spawn((
        Camera3d::default(),
        Transform::from_xyz(0.0, 1.6, 3.5).looking_at(Vec3::new(0.0, 1.2, -1.0), Vec3::Y),
    ));
}
