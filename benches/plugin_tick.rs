//! Main-thread cost of the plugin per tick: all `HeliosSystems` (context compaction, priorities,
//! submit, drain, paced playback, CPU upload into `Assets<Image>`, lights) with 1 and 4 streams
//! at 384x640 frames, one new frame per stream per tick (24 fps ticks). Frames are injected into
//! the rings outside the timed region (the worker's thread is not main-thread cost).
//! Not included: Bevy's own render extraction of the changed images. Included: Bevy's own cost of
//! running an update (its multi-threaded executor waking its task pool); `plugin_tick/baseline`
//! is that cost alone, the same app without the plugin.

// Benchmark code: a failed setup step ends the benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_helios::FrameStats;
use bevy_helios::bench_support::{Frame, HeliosPlayback};
use bevy_helios::prelude::*;
use criterion::{Criterion, criterion_group, criterion_main};

const W: u32 = 640;
const H: u32 = 384;

fn app(streams: usize) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Image>()
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / 24.0,
        )))
        .add_plugins(HeliosPlugin::default().with_settings({
            let mut s = HeliosSettings::default();
            s.generation.width = Some(W as usize);
            s.generation.height = Some(H as usize);
            s
        }));
    let mut images = app.world_mut().resource_mut::<Assets<Image>>();
    let handles: Vec<_> = (0..streams)
        .map(|_| images.add(HeliosScreen::blank_image(W, H)))
        .collect();
    for (i, image) in handles.into_iter().enumerate() {
        let source = app
            .world_mut()
            .spawn((
                HeliosScreen::new(image).manual(),
                SceneContext {
                    character: format!("npc {i}"),
                    emotion: "calm".into(),
                    ..default()
                },
                Transform::from_xyz(i as f32, 0.0, 0.0),
            ))
            .id();
        app.world_mut()
            .spawn((PointLight::default(), HeliosLight::new(source)));
    }
    app.update();
    app
}

/// The app of [`app`] without the plugin: what any update costs.
fn baseline() -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Image>()
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / 24.0,
        )));
    app.update();
    app
}

fn bench(c: &mut Criterion) {
    let mut empty = baseline();
    c.bench_function("plugin_tick/baseline_without_plugin", |b| {
        b.iter(|| empty.update())
    });
    let frame = vec![128u8; (W * H * 4) as usize];
    let stats = FrameStats::of_rgba(&frame, W as usize, H as usize);
    for streams in [1usize, 4] {
        let mut app = app(streams);
        c.bench_function(
            &format!("plugin_tick/{streams}_streams_384x640_cpu_upload"),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Not timed: one new frame per stream, as the worker would deliver.
                        let mut q = app.world_mut().query::<&mut HeliosPlayback>();
                        for mut p in q.iter_mut(app.world_mut()) {
                            p.inject_frames([Frame {
                                width: W,
                                height: H,
                                pixels: frame.clone(),
                                stats,
                                gpu: None,
                            }]);
                        }
                        let t = Instant::now();
                        app.update();
                        total += t.elapsed();
                    }
                    total
                })
            },
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
