//! The plugin in remote mode ([`HeliosSettings::remote`]) against a real `helios serve` on
//! loopback: frames reach the screen's image over the WebSocket, the worker state shows the
//! server going away, and the stream resumes when it is back.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_helios::prelude::*;
use bevy_helios::{HeliosRemote, HeliosWorkerState};
use helios_serve::{ServeConfig, Server, ServerHandle};
use helios_worker::{EngineBackend, EngineConfig};

/// A `helios serve` on the embedded demo model, on its own runtime thread.
struct Served {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start(addr: SocketAddr) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let engine = EngineConfig {
                    backend: EngineBackend::NdArray,
                    ..EngineConfig::default()
                };
                let config = ServeConfig::new(addr, engine).with_token("game-client");
                let server = Server::bind(config).await.unwrap();
                tx.send((server.local_addr(), server.handle())).unwrap();
                server.run().await.unwrap();
            });
        });
        let (addr, handle) = rx.recv().unwrap();
        Self {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

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

fn state(app: &App) -> HeliosWorkerState {
    app.world().resource::<HeliosWorkerStatus>().state.clone()
}

fn pixels(app: &App, image: &Handle<Image>) -> Vec<u8> {
    app.world()
        .resource::<Assets<Image>>()
        .get(image)
        .and_then(|i| i.data.clone())
        .unwrap()
}

#[test]
fn remote_mode_shows_frames_from_a_helios_serve_and_survives_its_restart() {
    let mut server = Served::start("127.0.0.1:0".parse().unwrap());
    let settings = HeliosSettings {
        prompt_debounce_secs: 0.0,
        remote: Some(HeliosRemote::new(format!("ws://{}", server.addr)).with_token("game-client")),
        ..default()
    };
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Image>()
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / 24.0,
        )))
        .add_plugins(HeliosPlugin::default().with_settings(settings));
    let (w, h) = app.world().resource::<HeliosSettings>().frame_size();
    let image = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(HeliosScreen::blank_image(w, h));
    let context = SceneContext {
        character: "a lighthouse keeper".into(),
        emotion: "calm".into(),
        ..default()
    };
    let e = app
        .world_mut()
        .spawn((HeliosScreen::new(image.clone()), context))
        .id();
    let blank = pixels(&app, &image);

    run_until(&mut app, "frames from the server", |a| {
        stream(a, e).frames_shown >= 2
    });
    assert_ne!(
        pixels(&app, &image),
        blank,
        "the screen shows a generated frame"
    );
    assert_eq!(state(&app), HeliosWorkerState::Ready);
    assert_eq!(stream(&app, e).status, HeliosStreamStatus::Streaming);

    // The server goes away: the state says so and the game goes on.
    server.stop();
    run_until(&mut app, "reconnecting", |a| {
        state(a) == HeliosWorkerState::Reconnecting
    });
    let chunks = stream(&app, e).chunks;

    // It comes back on the same address: the stream resumes there.
    let _server = Served::start(server.addr);
    run_until(&mut app, "ready again", |a| {
        state(a) == HeliosWorkerState::Ready
    });
    run_until(&mut app, "a chunk from the new server", |a| {
        stream(a, e).chunks > chunks
    });
    assert_eq!(stream(&app, e).status, HeliosStreamStatus::Streaming);
}
