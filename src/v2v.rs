//! The V2V scene of `examples/v2v_scene.rs` and its test: a small 3D "game view" (a sky, a
//! floor and, when asked, a coloured cube) rendered by a camera into an image, and a
//! [`HeliosScreen`] whose [`HeliosVideoContext`] feeds that image to the model, so the generated
//! video continues what the game shows.

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy_helios::prelude::*;

/// The game view's background.
pub const SKY: Color = Color::srgb(0.15, 0.3, 0.55);

/// What the scene shows.
#[derive(Resource, Clone, Debug)]
pub struct V2vScene {
    /// Size of the game view (the render target the context reads).
    pub view_size: UVec2,
    /// The cube's colour; `None`: no cube.
    pub cube: Option<Color>,
    /// Whether the cube turns (the example) or stands still (the test, which wants the same
    /// picture in every frame).
    pub spin: bool,
    /// The prompt of the generated video.
    pub prompt: String,
}

impl Default for V2vScene {
    fn default() -> Self {
        Self {
            view_size: UVec2::new(256, 256),
            cube: Some(Color::srgb(0.9, 0.1, 0.1)),
            spin: true,
            prompt: "a red cube turning on a grey floor under a blue sky, the same scene".into(),
        }
    }
}

/// The cube.
#[derive(Component)]
pub struct Cube;

/// The entity whose stream continues the game view.
#[derive(Component)]
pub struct GeneratedView;

/// What [`spawn_v2v_scene`] made.
#[derive(Clone, Debug)]
pub struct V2vHandles {
    /// The game view (the camera's render target, the context's source).
    pub view: Handle<Image>,
    /// The generated video's image.
    pub video: Handle<Image>,
    /// The [`HeliosScreen`] entity (with its [`HeliosVideoContext`]).
    pub screen: Entity,
}

/// Spawns the game view (camera into an image, sky, floor, light, the cube when asked) and the
/// screen whose stream it conditions.
pub fn spawn_v2v_scene(
    commands: &mut Commands,
    meshes: &mut Assets<Mesh>,
    materials: &mut Assets<StandardMaterial>,
    images: &mut Assets<Image>,
    settings: &HeliosSettings,
    scene: &V2vScene,
) -> V2vHandles {
    let view = images.add(HeliosVideoContext::render_target(
        scene.view_size.x,
        scene.view_size.y,
    ));
    commands.spawn((
        Camera3d::default(),
        Camera {
            clear_color: ClearColorConfig::Custom(SKY),
            ..default()
        },
        RenderTarget::Image(view.clone().into()),
        Transform::from_xyz(0.0, 1.2, 3.0).looking_at(Vec3::new(0.0, 0.4, 0.0), Vec3::Y),
    ));
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(8.0, 8.0))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.45, 0.45, 0.45),
            unlit: true,
            ..default()
        })),
    ));
    if let Some(color) = scene.cube {
        commands.spawn((
            Cube,
            Mesh3d(meshes.add(Cuboid::new(1.2, 1.2, 1.2))),
            MeshMaterial3d(materials.add(StandardMaterial {
                base_color: color,
                unlit: true,
                ..default()
            })),
            Transform::from_xyz(0.0, 0.6, 0.0).with_rotation(Quat::from_rotation_y(0.6)),
        ));
    }
    let (width, height) = settings.frame_size();
    let video = images.add(HeliosScreen::blank_image(width, height));
    let mut screen = HeliosScreen::new(video.clone()).with_prompt(scene.prompt.clone());
    screen.pause_when_hidden = false;
    let screen = commands
        .spawn((GeneratedView, screen, HeliosVideoContext::new(view.clone())))
        .id();
    V2vHandles {
        view,
        video,
        screen,
    }
}

/// Turns the cube when the scene spins.
pub fn spin_cube(
    time: Res<Time>,
    scene: Res<V2vScene>,
    mut cubes: Query<&mut Transform, With<Cube>>,
) {
    if !scene.spin {
        return;
    }
    for mut transform in &mut cubes {
        transform.rotate_y(0.8 * time.delta_secs());
    }
}
