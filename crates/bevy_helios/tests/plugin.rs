//! The plugin in a real headless Bevy `App` with the real worker on the embedded demo model.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use bevy::camera::visibility::ViewVisibility;
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_helios::prelude::*;
use bevy_helios::{HeliosError, HeliosWorker, HeliosWorkerState, WorkerError};

fn app(settings: HeliosSettings) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Image>()
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / 24.0,
        )))
        .add_plugins(HeliosPlugin::default().with_settings(settings));
    app
}

fn settings() -> HeliosSettings {
    HeliosSettings {
        prompt_debounce_secs: 0.0,
        ..default()
    }
}

fn spawn_screen(app: &mut App, ctx: SceneContext) -> (Entity, Handle<Image>) {
    let (w, h) = app.world().resource::<HeliosSettings>().frame_size();
    let image = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(HeliosScreen::blank_image(w, h));
    let e = app
        .world_mut()
        .spawn((HeliosScreen::new(image.clone()), ctx))
        .id();
    (e, image)
}

fn ctx(emotion: &str) -> SceneContext {
    SceneContext {
        character: "a lighthouse keeper".into(),
        emotion: emotion.into(),
        ..default()
    }
}

/// Updates (sleeping a little between ticks so the worker runs) until `done` or the deadline.
fn run_until(app: &mut App, what: &str, mut done: impl FnMut(&mut App) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done(app) {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        app.update();
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn stream(app: &App, e: Entity) -> HeliosStream {
    app.world().get::<HeliosStream>(e).cloned().unwrap()
}

fn pixels(app: &App, image: &Handle<Image>) -> Vec<u8> {
    app.world()
        .resource::<Assets<Image>>()
        .get(image)
        .and_then(|i| i.data.clone())
        .unwrap()
}

#[test]
fn frames_arrive_and_the_image_changes() {
    let mut app = app(settings());
    let (e, image) = spawn_screen(&mut app, ctx("calm"));
    let blank = pixels(&app, &image);
    run_until(&mut app, "first frame", |a| stream(a, e).frames_shown >= 1);
    let first = pixels(&app, &image);
    assert_ne!(first, blank, "the image shows a generated frame");
    run_until(&mut app, "more frames", |a| stream(a, e).frames_shown >= 6);
    let later = pixels(&app, &image);
    assert_ne!(later, first, "the image advances");
    let s = stream(&app, e);
    assert_eq!(s.status, HeliosStreamStatus::Streaming);
    assert!(s.chunks >= 1);
    assert!(s.frame_stats.is_some());
    assert_eq!(
        app.world().resource::<HeliosWorkerStatus>().state,
        HeliosWorkerState::Ready
    );
}

#[test]
fn a_restart_counts_the_new_stream_from_zero() {
    let mut app = app(settings());
    let (e, _) = spawn_screen(&mut app, ctx("calm"));
    run_until(&mut app, "a chunk shown", |a| {
        let s = stream(a, e);
        s.chunks >= 1 && s.frames_shown >= 4
    });
    app.world_mut().write_message(StartStream(e));
    app.update();
    let s = stream(&app, e);
    assert_eq!((s.chunks, s.frames_shown, s.buffered), (0, 0, 0), "{s:?}");
    assert!(s.prompt.is_some_and(|p| p.contains("calm")));
    run_until(&mut app, "frames of the new stream", |a| {
        stream(a, e).frames_shown >= 2
    });
    assert_eq!(stream(&app, e).status, HeliosStreamStatus::Streaming);
}

#[test]
fn scene_context_change_reaches_the_worker_as_a_new_prompt() {
    let mut app = app(settings());
    let (e, _) = spawn_screen(&mut app, ctx("calm"));
    run_until(&mut app, "first chunk", |a| stream(a, e).chunks >= 1);
    let before = stream(&app, e).prompt.unwrap();
    assert!(before.contains("calm"), "{before}");
    app.world_mut().get_mut::<SceneContext>(e).unwrap().emotion = "furious".into();
    run_until(&mut app, "prompt applied", |a| {
        stream(a, e)
            .applied_prompt
            .is_some_and(|p| p.contains("furious expression"))
    });
    // A change that is not material (case, spacing) is not sent again.
    let applied = stream(&app, e).applied_prompt;
    app.world_mut().get_mut::<SceneContext>(e).unwrap().emotion = "  FURIOUS ".into();
    for _ in 0..20 {
        app.update();
    }
    assert_eq!(stream(&app, e).applied_prompt, applied);
}

/// Updates the app until a `HeliosWorkerError` message is written; returns it.
fn next_error(app: &mut App) -> HeliosWorkerError {
    let mut seen = None;
    run_until(app, "error message", |a| {
        let msgs = a.world().resource::<Messages<HeliosWorkerError>>();
        if let Some(m) = msgs.iter_current_update_messages().next() {
            seen = Some(m.clone());
        }
        seen.is_some()
    });
    seen.expect("run_until returned, so a message was seen")
}

#[test]
fn a_bad_model_folder_is_an_error_message_and_the_app_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(HeliosSettings {
        model_dir: Some(dir.path().into()),
        ..settings()
    });
    let (e, image) = spawn_screen(&mut app, ctx("calm"));
    let err = next_error(&mut app);
    assert!(err.entity.is_none());
    assert!(
        matches!(err.error, HeliosError::Worker(WorkerError::Model(_))),
        "{:?}",
        err.error
    );
    assert!(matches!(
        stream(&app, e).status,
        HeliosStreamStatus::Failed(_)
    ));
    assert!(matches!(
        app.world().resource::<HeliosWorkerStatus>().state,
        HeliosWorkerState::Failed(_)
    ));
    for _ in 0..10 {
        app.update();
    }
    // Fix the settings and restart: a new stream runs.
    app.world_mut().resource_mut::<HeliosSettings>().model_dir = None;
    app.world_mut().write_message(StartStream(e));
    run_until(&mut app, "frames after recovery", |a| {
        stream(a, e).frames_shown >= 2
    });
    assert_ne!(
        pixels(&app, &image),
        HeliosScreen::blank_image(128, 128).data.unwrap()
    );
}

#[test]
fn a_bad_frame_size_is_a_stream_error_and_a_new_stream_starts() {
    // 100 is not a multiple of the demo model's 16 (VAE x patch): the model rejects it.
    let mut bad = settings();
    bad.generation.width = Some(100);
    let mut app = app(bad);
    let (e, image) = spawn_screen(&mut app, ctx("calm"));
    let err = next_error(&mut app);
    assert_eq!(err.entity, Some(e), "the error names the screen");
    let text = err.error.to_string();
    assert!(text.contains("width 100"), "{text}");
    assert!(matches!(
        stream(&app, e).status,
        HeliosStreamStatus::Failed(_)
    ));
    // The model loaded fine: the worker stays up, only the stream failed.
    assert_eq!(
        app.world().resource::<HeliosWorkerStatus>().state,
        HeliosWorkerState::Ready
    );
    app.world_mut()
        .resource_mut::<HeliosSettings>()
        .generation
        .width = Some(128);
    app.world_mut().write_message(StartStream(e));
    run_until(&mut app, "frames after the fix", |a| {
        stream(a, e).frames_shown >= 2
    });
    let img = app.world().resource::<Assets<Image>>().get(&image).unwrap();
    assert_eq!((img.width(), img.height()), (128, 128));
    assert_eq!(stream(&app, e).status, HeliosStreamStatus::Streaming);
}

#[test]
fn shutdown_on_app_exit_joins_the_worker() {
    let mut app = app(settings());
    let (e, _) = spawn_screen(&mut app, ctx("calm"));
    run_until(&mut app, "streaming", |a| stream(a, e).chunks >= 1);
    assert!(app.world().resource::<HeliosWorker>().is_running());
    app.world_mut().write_message(AppExit::Success);
    app.update();
    assert!(
        !app.world().resource::<HeliosWorker>().is_running(),
        "thread joined"
    );
    assert_eq!(
        app.world().resource::<HeliosWorkerStatus>().state,
        HeliosWorkerState::ShutDown
    );
}

#[test]
fn invalid_settings_are_an_error_message_and_nothing_starts_until_fixed() {
    let mut app = app(HeliosSettings {
        ring_capacity: 0,
        ..settings()
    });
    let (e, _) = spawn_screen(&mut app, ctx("calm"));
    let err = next_error(&mut app);
    assert_eq!(err.entity, None);
    assert!(
        matches!(&err.error, HeliosError::Settings(m) if m.contains("ring_capacity")),
        "{:?}",
        err.error
    );
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(app.world().resource::<HeliosWorkerStatus>().spawns, 0);
    assert_eq!(stream(&app, e).status, HeliosStreamStatus::Idle);
    app.world_mut()
        .resource_mut::<HeliosSettings>()
        .ring_capacity = 72;
    run_until(&mut app, "frames once fixed", |a| {
        stream(a, e).frames_shown >= 1
    });
    assert_eq!(app.world().resource::<HeliosWorkerStatus>().spawns, 1);
}

#[test]
fn a_real_checkpoint_plugin_leaves_generation_to_the_checkpoint() {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Image>()
        .add_plugins(HeliosPlugin::new("models/Helios-Distilled"));
    app.update();
    let s = app.world().resource::<HeliosSettings>();
    assert_eq!(
        *s,
        HeliosSettings::real_checkpoint("models/Helios-Distilled")
    );
    assert_eq!(s.generation.steps, None, "the checkpoint's steps");
    assert_eq!(
        s.generation.max_sequence_length, None,
        "the checkpoint's tokens"
    );
    // No screen, no worker: nothing loads the (absent) 14B model.
    assert_eq!(app.world().resource::<HeliosWorkerStatus>().spawns, 0);
}

#[test]
fn several_streams_share_one_worker_and_a_hidden_one_pauses() {
    let mut app = app(settings());
    app.world_mut()
        .spawn((Camera::default(), GlobalTransform::default()));
    let (near, _) = spawn_screen(&mut app, ctx("calm"));
    let (far, _) = spawn_screen(&mut app, ctx("happy"));
    let (hidden, _) = spawn_screen(&mut app, ctx("sad"));
    app.world_mut()
        .entity_mut(near)
        .insert(GlobalTransform::from_xyz(0.0, 0.0, -1.0));
    app.world_mut()
        .entity_mut(far)
        .insert(GlobalTransform::from_xyz(0.0, 0.0, -9.0));
    app.world_mut().entity_mut(hidden).insert((
        GlobalTransform::from_xyz(0.0, 0.0, -2.0),
        ViewVisibility::HIDDEN,
    ));
    run_until(&mut app, "both visible streams play", |a| {
        stream(a, near).frames_shown >= 3 && stream(a, far).frames_shown >= 3
    });
    assert_eq!(
        app.world().resource::<HeliosWorkerStatus>().spawns,
        1,
        "one worker"
    );
    assert_eq!(stream(&app, near).priority, Some(1.0));
    assert_eq!(stream(&app, far).priority, Some(9.0));
    let h = stream(&app, hidden);
    assert_eq!(h.priority, None);
    assert_eq!(h.status, HeliosStreamStatus::Paused);
    assert_eq!(h.chunks, 0, "off-screen: no chunks");
}

#[test]
fn playback_is_paced_and_underruns_are_counted() {
    let mut app = app(settings());
    let (e, _) = spawn_screen(&mut app, ctx("calm"));
    run_until(&mut app, "first chunk", |a| stream(a, e).chunks >= 1);
    let s0 = stream(&app, e);
    for _ in 0..10 {
        app.update();
    }
    let s1 = stream(&app, e);
    // One tick = one video frame (ManualDuration 1/24 s): ten ticks show ten frames or count
    // the missing ones as underruns.
    let advanced = (s1.frames_shown - s0.frames_shown) + (s1.underruns - s0.underruns);
    assert!((9..=11).contains(&advanced), "{s0:?} -> {s1:?}");
}

#[test]
fn settings_asset_replaces_the_resource() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("settings")).unwrap();
    std::fs::write(
        dir.path().join("settings/test.helios.ron"),
        "(fps: 12.0, ring_capacity: 40)",
    )
    .unwrap();
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin {
            file_path: dir.path().to_string_lossy().into_owned(),
            ..default()
        },
    ))
    .init_asset::<Image>()
    .add_plugins(HeliosPlugin::default().with_settings_asset("settings/test.helios.ron"));
    run_until(&mut app, "settings loaded", |a| {
        a.world().resource::<HeliosSettings>().fps == 12.0
    });
    assert_eq!(app.world().resource::<HeliosSettings>().ring_capacity, 40);
}

/// The inspector's edit path end to end: the real panel ([`inspector_window`]) drawn by egui
/// from the view the real [`HeliosInspectorPlugin`] builds, driven by synthetic input (a click
/// into the emotion field, select all, typing); its action applied by the plugin, and the new
/// prompt confirmed by the worker.
#[cfg(feature = "inspector")]
#[test]
fn an_inspector_panel_edit_reaches_the_worker_as_a_new_prompt() {
    use bevy_helios::inspector::bevy_egui::egui;
    use bevy_helios::inspector::{
        InspectorAction, InspectorView, SceneField, field_id, inspector_window,
    };

    let mut app = app(settings());
    app.add_plugins(HeliosInspectorPlugin::default());
    let (e, _) = spawn_screen(&mut app, ctx("calm"));
    run_until(&mut app, "first chunk", |a| stream(a, e).chunks >= 1);

    // One egui frame of the panel over the plugin's current view, with `events` as the input.
    let egui_ctx = egui::Context::default();
    let mut time = 0.0;
    let mut frame = |app: &App, events: Vec<egui::Event>| -> Vec<InspectorAction> {
        let view = app.world().resource::<InspectorView>().clone();
        time += 0.1;
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1000.0, 1400.0),
            )),
            time: Some(time),
            events,
            ..Default::default()
        };
        let mut actions = Vec::new();
        egui_ctx
            .run_ui(input, |ui| {
                actions.extend(inspector_window(ui.ctx(), &view));
            })
            .drop_without_applying_deltas();
        actions
    };

    let view = app.world().resource::<InspectorView>().clone();
    assert_eq!(view.streams.len(), 1);
    assert_eq!(view.streams[0].entity, e);
    assert!(view.streams[0].prompt.contains("calm expression"));
    assert!(frame(&app, vec![]).is_empty());
    assert!(frame(&app, vec![]).is_empty());

    // Click into the emotion field.
    let emotion = field_id(e, SceneField::Emotion);
    let at = egui_ctx
        .read_response(emotion)
        .expect("the panel shows the emotion field")
        .rect
        .center();
    let button = |pressed| egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    assert!(frame(&app, vec![egui::Event::PointerMoved(at), button(true)]).is_empty());
    assert!(frame(&app, vec![button(false)]).is_empty());
    assert!(
        egui_ctx.memory(|m| m.has_focus(emotion)),
        "the click focused the field"
    );

    // Select all, type the new emotion.
    let select_all = egui::Event::Key {
        key: egui::Key::A,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: egui::Modifiers::COMMAND,
    };
    let actions = frame(&app, vec![select_all, egui::Event::Text("furious".into())]);
    let [InspectorAction::SetContext { entity, context }] = actions.as_slice() else {
        panic!("one SetContext action: {actions:?}");
    };
    assert_eq!(*entity, e);
    assert_eq!(context.emotion, "furious");
    assert_eq!(
        context.character, "a lighthouse keeper",
        "the other fields stay"
    );

    for action in actions {
        app.world_mut().write_message(action);
    }
    let mut applied = None;
    run_until(&mut app, "PromptApplied with the edit", |a| {
        if applied.is_none() {
            applied = a
                .world()
                .resource::<Messages<PromptApplied>>()
                .iter_current_update_messages()
                .find(|m| m.entity == e && m.prompt.contains("furious expression"))
                .map(|m| m.prompt.clone());
        }
        applied.is_some()
    });
    assert_eq!(
        app.world().get::<SceneContext>(e).unwrap().emotion,
        "furious"
    );
    // The panel shows the new state, and drawing it again edits nothing.
    let view = app.world().resource::<InspectorView>().clone();
    assert_eq!(view.streams[0].context.as_ref().unwrap().emotion, "furious");
    assert_eq!(view.streams[0].stream.applied_prompt, applied);
    assert!(frame(&app, vec![]).is_empty());
}

#[test]
fn a_start_image_is_waited_for_and_an_unreadable_one_is_an_error() {
    let mut app = app(settings());
    let (w, h) = app.world().resource::<HeliosSettings>().frame_size();
    let (face, portrait) = {
        let mut images = app.world_mut().resource_mut::<Assets<Image>>();
        (
            images.add(HeliosScreen::blank_image(w, h)),
            images.reserve_handle(),
        )
    };
    let e = app
        .world_mut()
        .spawn((
            HeliosScreen::new(face).with_start_image(portrait.clone()),
            ctx("calm"),
        ))
        .id();
    run_until(&mut app, "worker ready", |a| {
        a.world().resource::<HeliosWorkerStatus>().state == HeliosWorkerState::Ready
    });
    for _ in 0..20 {
        app.update();
    }
    assert_eq!(
        stream(&app, e).status,
        HeliosStreamStatus::Idle,
        "the start waits for the image"
    );
    let mut picture = HeliosScreen::blank_image(w, h);
    if let Some(data) = picture.data.as_mut() {
        for px in data.chunks_exact_mut(4) {
            px.copy_from_slice(&[200, 150, 120, 255]);
        }
    }
    let _ = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .insert(&portrait, picture);
    run_until(&mut app, "frames from the portrait start", |a| {
        stream(a, e).frames_shown >= 1
    });

    // A picture the model cannot read (float texels): an error naming the screen, and the stream
    // starts from the prompt alone.
    let float = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(Image::new_fill(
            bevy::render::render_resource::Extent3d {
                width: 4,
                height: 4,
                depth_or_array_layers: 1,
            },
            bevy::render::render_resource::TextureDimension::D2,
            &[0; 16],
            bevy::render::render_resource::TextureFormat::Rgba32Float,
            bevy::asset::RenderAssetUsages::MAIN_WORLD,
        ));
    let face2 = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(HeliosScreen::blank_image(w, h));
    let e2 = app
        .world_mut()
        .spawn((
            HeliosScreen::new(face2).with_start_image(float),
            ctx("calm"),
        ))
        .id();
    let err = next_error(&mut app);
    assert_eq!(err.entity, Some(e2), "the error names the screen");
    assert!(
        matches!(err.error, HeliosError::ConditioningImage(_)),
        "{:?}",
        err.error
    );
    run_until(&mut app, "frames from the prompt alone", |a| {
        stream(a, e2).frames_shown >= 1
    });
}
