//! The game's own frames as context, end to end: a real renderer (lavapipe, or any Vulkan device)
//! draws the V2V scene into an image, the plugin reads it back and hands it to the real worker on
//! the random-weights tiny checkpoint, and the generated frames land in the screen's image. A red cube in
//! the game view changes the generated frames and their mean colour; without the video context
//! the same cube changes nothing.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::app::PluginsState;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::time::TimeUpdateStrategy;
use bevy_helios::prelude::*;
use helios_examples::headless::headless_plugins;
use helios_examples::tiny_model_settings;
use helios_examples::v2v::{SKY, V2vHandles, V2vScene, spawn_v2v_scene};

/// The handles of the scene, for the test to read.
#[derive(Resource, Clone)]
struct Spawned(V2vHandles);

/// Whether the screen has a video context.
#[derive(Resource, Clone, Copy)]
struct WithVideo(bool);

/// The scene, with the stream waiting for a `StartStream` and the video context (when there is
/// one) off: the test turns it on once the game view shows the scene.
fn setup(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut images: ResMut<Assets<Image>>,
    settings: Res<HeliosSettings>,
    scene: Res<V2vScene>,
    video: Res<WithVideo>,
) {
    let handles = spawn_v2v_scene(
        &mut commands,
        &mut meshes,
        &mut materials,
        &mut images,
        &settings,
        &scene,
    );
    let mut screen = HeliosScreen::new(handles.video.clone())
        .with_prompt(scene.prompt.clone())
        .manual();
    screen.pause_when_hidden = false;
    let mut entity = commands.entity(handles.screen);
    entity.insert(screen);
    if video.0 {
        let mut context = HeliosVideoContext::new(handles.view.clone());
        context.enabled = false;
        entity.insert(context);
    } else {
        entity.remove::<HeliosVideoContext>();
    }
    commands.insert_resource(Spawned(handles));
}

fn app(cube: bool, video: bool) -> App {
    let mut app = App::new();
    app.add_plugins(headless_plugins())
        .add_plugins(HeliosPlugin::default().with_settings(tiny_model_settings()))
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / 24.0,
        )))
        .insert_resource(V2vScene {
            view_size: UVec2::new(128, 128),
            cube: cube.then(|| Color::srgb(0.9, 0.1, 0.1)),
            spin: false,
            ..default()
        })
        .insert_resource(WithVideo(video))
        .add_systems(Startup, setup);
    while app.plugins_state() == PluginsState::Adding {
        bevy::tasks::tick_global_task_pools_on_main_thread();
    }
    app.finish();
    app.cleanup();
    app.update();
    app
}

fn update(app: &mut App) {
    app.update();
    std::thread::sleep(Duration::from_millis(2));
}

/// One readback of `image`, as RGB8 (ticks until it arrives).
fn read_back(app: &mut App, image: &Handle<Image>) -> image::RgbImage {
    let slot = Arc::new(Mutex::new(None));
    let sink = slot.clone();
    app.world_mut()
        .spawn(Screenshot::image(image.clone()))
        .observe(move |captured: On<ScreenshotCaptured>| {
            let rgb = captured.image.clone().try_into_dynamic().unwrap().to_rgb8();
            *sink.lock().unwrap() = Some(rgb);
        });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(rgb) = slot.lock().unwrap().take() {
            return rgb;
        }
        assert!(Instant::now() < deadline, "no readback");
        update(app);
    }
}

/// Whether the game view shows the scene yet (the renderer compiles its pipelines
/// asynchronously: until then the target holds its black fill or the bare sky).
fn view_ready(view: &image::RgbImage, cube: bool) -> bool {
    let [r, g, b] = view.get_pixel(view.width() / 2, view.height() * 3 / 5).0;
    let sky = SKY.to_srgba();
    let corner = view.get_pixel(0, 0).0;
    let sky_shown = (f32::from(corner[2]) / 255.0 - sky.blue).abs() < 0.1;
    if cube {
        sky_shown && r > 150 && g < 80 && b < 80
    } else {
        // The floor (grey) under the sky.
        sky_shown && r > 60 && r.abs_diff(g) < 12 && r.abs_diff(b) < 12
    }
}

/// Mean RGB of an image's pixels.
fn mean(pixels: &[u8]) -> [f32; 3] {
    let mut sum = [0.0f64; 3];
    for px in pixels.chunks_exact(4) {
        for c in 0..3 {
            sum[c] += f64::from(px[c]);
        }
    }
    let n = (pixels.len() / 4).max(1) as f64;
    sum.map(|s| (s / n) as f32)
}

/// Runs the scene until the stream shows its first frame; that frame's pixels, and how many
/// times game frames were handed over before it.
fn first_generated_frame(cube: bool, video: bool) -> (Vec<u8>, u64) {
    let mut app = app(cube, video);
    let Spawned(handles) = app.world().resource::<Spawned>().clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !view_ready(&read_back(&mut app, &handles.view), cube) {
        assert!(
            Instant::now() < deadline,
            "the game view never showed the scene"
        );
        for _ in 0..5 {
            update(&mut app);
        }
    }
    if let Some(mut context) = app
        .world_mut()
        .get_mut::<HeliosVideoContext>(handles.screen)
    {
        context.enabled = true;
    }
    app.world_mut()
        .write_message(StartStream(handles.screen))
        .unwrap();
    loop {
        let stream = app.world().get::<HeliosStream>(handles.screen).unwrap();
        if stream.frames_shown >= 1 {
            break;
        }
        if let HeliosStreamStatus::Failed(why) = &stream.status {
            panic!("the stream failed: {why}");
        }
        assert!(Instant::now() < deadline, "no generated frame: {stream:?}");
        update(&mut app);
    }
    let stream = app.world().get::<HeliosStream>(handles.screen).unwrap();
    let pushes = stream.video_pushes;
    let pixels = app
        .world()
        .resource::<Assets<Image>>()
        .get(&handles.video)
        .and_then(|image| image.data.clone())
        .unwrap();
    (pixels, pushes)
}

#[test]
fn a_red_cube_in_the_game_view_changes_the_generated_frames() {
    let (with_cube, pushes) = first_generated_frame(true, true);
    assert_eq!(pushes, 1, "the first chunk waits for the game's frames");
    let (without_cube, _) = first_generated_frame(false, true);
    assert_ne!(
        with_cube, without_cube,
        "the cube in the game view reaches the generated frames"
    );
    // The tiny checkpoint has random weights: its output hardly depends on its history, so the
    // colour moves only a little; but it moves, and only through the video context.
    let (a, b) = (mean(&with_cube), mean(&without_cube));
    let moved: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
    println!("mean colour with the cube {a:?}, without {b:?}: moved {moved}");
    assert!(moved > 0.0, "the generated colour changes: {a:?} vs {b:?}");

    // The control: without the video context the cube does not reach the model.
    let (control_cube, none) = first_generated_frame(true, false);
    assert_eq!(none, 0);
    let (control_empty, _) = first_generated_frame(false, false);
    assert_eq!(
        control_cube, control_empty,
        "without the video context the game view changes nothing"
    );
}
