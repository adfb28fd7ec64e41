//! The headless capture app: no window, a camera rendering the NPC-face scene into an `Image`,
//! one `Screenshot::image` per tick written as `frame_0000.png`, ... (runs on lavapipe), and at
//! the end the face stream's playback counters in `playback.txt` (`key=value` lines).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bevy::app::{PluginGroupBuilder, ScheduleRunnerPlugin};
use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::time::TimeUpdateStrategy;
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use bevy_helios::prelude::*;

use crate::scene::{NpcFace, camera_transform, spawn_npc_face};

/// What to capture.
#[derive(Resource, Clone, Debug)]
pub struct CaptureConfig {
    /// Output folder.
    pub out: PathBuf,
    /// Screenshots to take (one per tick, each tick = one video frame).
    pub ticks: usize,
    /// Capture size.
    pub width: u32,
    /// Capture height.
    pub height: u32,
    /// Give up (exit with an error) after this long.
    pub timeout: Duration,
}

#[derive(Resource)]
struct CaptureState {
    target: Handle<Image>,
    taken: usize,
    ticks: usize,
    saved: Arc<AtomicUsize>,
    started: Instant,
}

/// The face's position in the captures (normalised rectangle), for tests.
pub const FACE_REGION: Rect = Rect {
    min: Vec2::new(0.38, 0.34),
    max: Vec2::new(0.62, 0.66),
};

/// Bevy's default plugins without a window or winit (the renderer draws into images only),
/// reading assets through [`asset_plugin`](crate::asset_plugin).
pub fn headless_plugins() -> PluginGroupBuilder {
    DefaultPlugins
        .set(WindowPlugin {
            primary_window: None,
            exit_condition: ExitCondition::DontExit,
            ..default()
        })
        .set(crate::asset_plugin())
        .disable::<WinitPlugin>()
}

/// Builds the headless app (call `.run()` on it).
pub fn headless_app(config: CaptureConfig, settings: HeliosSettings) -> App {
    let mut app = App::new();
    app.add_plugins(headless_plugins())
        .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::from_millis(5)))
        .add_plugins(HeliosPlugin::default().with_settings(settings))
        // Each tick advances the game clock by exactly one video frame.
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / 24.0,
        )))
        .insert_resource(config)
        .add_systems(Startup, setup)
        .add_systems(Update, capture.after(HeliosSystems::Upload));
    app
}

fn setup(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut images: ResMut<Assets<Image>>,
    settings: Res<HeliosSettings>,
    config: Res<CaptureConfig>,
) {
    spawn_npc_face(
        &mut commands,
        &mut meshes,
        &mut materials,
        &mut images,
        &settings,
    );
    let mut target = Image::new_target_texture(
        config.width,
        config.height,
        TextureFormat::Rgba8UnormSrgb,
        None,
    );
    target.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    let target = images.add(target);
    commands.spawn((
        Camera3d::default(),
        RenderTarget::Image(target.clone().into()),
        camera_transform(),
    ));
    commands.insert_resource(CaptureState {
        target,
        taken: 0,
        ticks: 0,
        saved: Arc::new(AtomicUsize::new(0)),
        started: Instant::now(),
    });
}

/// The file with the face stream's playback counters, next to the screenshots.
pub const PLAYBACK_FILE: &str = "playback.txt";

fn write_playback(path: &std::path::Path, stream: &HeliosStream) -> std::io::Result<()> {
    let text = format!(
        "chunks={}\nframes_shown={}\nframes_from_gpu={}\nunderruns={}\ndropped_frames={}\n",
        stream.chunks,
        stream.frames_shown,
        stream.frames_from_gpu,
        stream.underruns,
        stream.dropped_frames
    );
    std::fs::write(path, text)
}

fn capture(
    mut commands: Commands,
    config: Res<CaptureConfig>,
    mut state: ResMut<CaptureState>,
    npcs: Query<&HeliosStream, With<NpcFace>>,
    mut exit: MessageWriter<AppExit>,
    mut errors: MessageReader<HeliosWorkerError>,
) {
    for e in errors.read() {
        error!("helios: {}", e.error);
    }
    if state.started.elapsed() > config.timeout {
        error!("headless_capture: timed out");
        exit.write(AppExit::error());
        return;
    }
    if state.saved.load(Ordering::Acquire) >= config.ticks {
        let written = npcs
            .iter()
            .next()
            .map(|stream| write_playback(&config.out.join(PLAYBACK_FILE), stream));
        if let Some(Err(e)) = written {
            error!("cannot write {PLAYBACK_FILE}: {e}");
            exit.write(AppExit::error());
        } else {
            exit.write(AppExit::Success);
        }
        return;
    }
    // Start once the face shows video and the renderer has had time to compile its pipelines
    // (asynchronously; slow on lavapipe): until then a capture shows only the clear colour.
    state.ticks += 1;
    let shown = npcs.iter().map(|s| s.frames_shown).max().unwrap_or(0);
    let warm = state.ticks >= 60 && state.started.elapsed() >= Duration::from_secs(4);
    if shown < 3 || !warm || state.taken >= config.ticks {
        return;
    }
    let path = config.out.join(format!("frame_{:04}.png", state.taken));
    let saved = state.saved.clone();
    commands
        .spawn(Screenshot::image(state.target.clone()))
        .observe(move |captured: On<ScreenshotCaptured>| {
            match captured.image.clone().try_into_dynamic() {
                Ok(img) => {
                    if let Err(e) = img.to_rgb8().save(&path) {
                        error!("cannot write {}: {e}", path.display());
                    }
                }
                Err(e) => error!("cannot convert screenshot: {e:?}"),
            }
            saved.fetch_add(1, Ordering::AcqRel);
        });
    state.taken += 1;
}
