//! The streaming generator on the tiny checkpoint: flat memory over many chunks, prompt switches
//! that reach the model, cancellation, seeds, mid-stream I2V and request validation.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::NdArray;
use burn::tensor::Tensor;
use helios_model::Error;
use helios_model::pipeline::{
    ChunkStream, Conditioning, GenerationParams, HeliosPipeline, StreamRequest, VideoPlan,
};

type B = NdArray<f32>;

fn model_dir() -> PathBuf {
    // The embedded tiny checkpoint (the fixture checkpoint without its golden cases).
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("embedded/tiny-helios")
}

fn pipeline() -> Arc<HeliosPipeline<B>> {
    Arc::new(
        HeliosPipeline::load(&model_dir(), &Default::default()).expect("the tiny checkpoint loads"),
    )
}

/// A cheap request: 64x64 frames, one step per stage, 16 prompt tokens.
fn small(prompt: &str, seed: u64) -> StreamRequest {
    let params = GenerationParams {
        height: Some(64),
        width: Some(64),
        steps: Some(vec![1, 1, 1]),
        seed,
        max_sequence_length: Some(16),
        ..GenerationParams::default()
    };
    StreamRequest::with_params(prompt, params)
}

fn max_abs_diff(a: &Tensor<B, 5>, b: &Tensor<B, 5>) -> f32 {
    (a.clone() - b.clone()).abs().max().into_scalar()
}

/// Held by every test of this file: the memory test reads the process's resident size, which
/// another test running beside it would grow.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Resident memory of this process in KiB (Linux), if readable.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn memory_stays_flat_over_many_chunks() {
    let _serial = serial();
    let p = pipeline();
    let mut stream = ChunkStream::new(p, small("a lighthouse in a storm", 1)).expect("stream");
    let cancel = AtomicBool::new(false);
    let mut state = Vec::new();
    let mut rss = Vec::new();
    let mut shapes = Vec::new();
    for i in 0..24 {
        let h = stream.next_history();
        shapes.push((
            h.short.latents.dims(),
            h.mid.map(|m| m.latents.dims()),
            h.long.map(|l| l.latents.dims()),
        ));
        let chunk = stream.next_chunk(&cancel).expect("chunk");
        assert_eq!(chunk.index, i);
        assert_eq!(chunk.frames.len(), 33);
        if i == 6 {
            // Change the prompt too: the cache and the interpolation must not grow the state.
            stream
                .set_prompt("a lighthouse at dawn", 3)
                .expect("prompt");
        }
        state.push(stream.state_bytes());
        rss.push(rss_kib());
    }
    eprintln!("state bytes per chunk: {state:?}\nRSS KiB per chunk: {rss:?}");
    // The history the DiT sees is the same size for every chunk: 2 short, 2 mid, 16 long frames.
    assert!(
        shapes.windows(2).all(|w| w[0] == w[1]),
        "history shapes changed: {shapes:?}"
    );
    assert_eq!(shapes[0].2.map(|d| d[2]), Some(16));
    // The state kept between chunks is the same after chunk 10 as after chunk 24 (the prompt
    // switch and its interpolation are over by then).
    assert_eq!(
        state[10..].iter().min(),
        state[10..].iter().max(),
        "state bytes: {state:?}"
    );
    // And the process does not grow: a leak of one chunk's frames (~1.6 MB) per chunk would add
    // over 20 MB between chunk 8 and chunk 24.
    if let (Some(Some(a)), Some(Some(b))) = (rss.get(8), rss.last()) {
        assert!(
            b.saturating_sub(*a) < 12 * 1024,
            "RSS grew from {a} KiB to {b} KiB"
        );
    }
}

#[test]
fn same_seed_same_video_and_prompt_switches_reach_the_model() {
    let _serial = serial();
    let p = pipeline();
    let cancel = AtomicBool::new(false);
    let run = |switch: Option<(&str, usize)>, seed| {
        let mut s =
            ChunkStream::new(p.clone(), small("a red ball bouncing", seed)).expect("stream");
        let c0 = s.next_chunk(&cancel).expect("chunk 0").latents;
        if let Some((prompt, n)) = switch {
            s.set_prompt(prompt, n).expect("set_prompt");
        }
        let c1 = s.next_chunk(&cancel).expect("chunk 1").latents;
        let c2 = s.next_chunk(&cancel).expect("chunk 2").latents;
        (c0, c1, c2)
    };
    let plain = run(None, 3);
    let again = run(None, 3);
    assert_eq!(
        max_abs_diff(&plain.1, &again.1),
        0.0,
        "same seed, same chunks"
    );
    assert!(
        max_abs_diff(&plain.0, &run(None, 4).0) > 1e-3,
        "another seed, another video"
    );

    let at_once = run(Some(("a blue cube spinning", 1)), 3);
    let blended = run(Some(("a blue cube spinning", 2)), 3);
    assert_eq!(
        max_abs_diff(&plain.0, &at_once.0),
        0.0,
        "chunk 0 is before the switch"
    );
    assert!(
        max_abs_diff(&plain.1, &at_once.1) > 1e-4,
        "the new prompt changes the next chunk"
    );
    // Interpolated over 2 chunks: chunk 1 is halfway, unlike both the old and the new prompt.
    assert!(max_abs_diff(&blended.1, &plain.1) > 1e-5);
    assert!(max_abs_diff(&blended.1, &at_once.1) > 1e-5);
}

/// Steps change between chunks (adaptive quality): fewer steps make the next chunk with fewer DiT
/// calls; bad steps are refused and change nothing.
#[test]
fn steps_change_between_chunks() {
    let _serial = serial();
    let p = pipeline();
    let mut request = small("a candle flickering", 3);
    request.params.steps = Some(vec![2, 2, 2]);
    request.params.amplify_first_chunk = false;
    let mut s = ChunkStream::new(p, request).expect("stream");
    let cancel = AtomicBool::new(false);
    let calls = |s: &ChunkStream<B>| {
        s.next_chunk_stage_steps()
            .expect("steps")
            .iter()
            .sum::<usize>()
    };
    assert_eq!(calls(&s), 6);
    s.next_chunk(&cancel).expect("chunk 0");
    s.set_steps(vec![1, 1, 1]).expect("fewer steps");
    assert_eq!(s.steps(), &[1, 1, 1]);
    assert_eq!(calls(&s), 3);
    assert!(s.set_steps(vec![1, 1]).is_err(), "one count per stage");
    assert!(s.set_steps(vec![1, 0, 1]).is_err(), "a stage needs a step");
    assert_eq!(s.steps(), &[1, 1, 1], "a refused change changes nothing");
    assert_eq!(s.next_chunk(&cancel).expect("chunk 1").index, 1);
}

#[test]
fn cancel_between_dit_calls_leaves_the_stream_usable() {
    let _serial = serial();
    let p = pipeline();
    let mut s = ChunkStream::new(p, small("waves on a beach", 5)).expect("stream");
    let cancel = AtomicBool::new(true);
    assert!(matches!(s.next_chunk(&cancel), Err(Error::Cancelled)));
    assert_eq!(s.next_index(), 0);
    cancel.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(s.next_chunk(&cancel).expect("after cancel").index, 0);
}

#[test]
fn image_conditioning_at_start_and_mid_stream() {
    let _serial = serial();
    let p = pipeline();
    let cancel = AtomicBool::new(false);
    let img = image::RgbImage::from_fn(80, 48, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, 128])
    });
    let mut i2v = ChunkStream::new(
        p.clone(),
        StreamRequest {
            conditioning: Conditioning::Image(img.clone()),
            ..small("a face", 9)
        },
    )
    .expect("i2v stream (the picture is resized to 64x64)");
    let a = i2v.next_chunk(&cancel).expect("i2v chunk").latents;
    let mut t2v = ChunkStream::new(p, small("a face", 9)).expect("t2v");
    let b = t2v.next_chunk(&cancel).expect("t2v chunk").latents;
    assert!(
        max_abs_diff(&a, &b) > 1e-3,
        "the image conditions the video"
    );
    t2v.set_image(img).expect("set_image");
    assert_eq!(t2v.next_chunk(&cancel).expect("after set_image").index, 1);
}

/// Live video frames (a game's rendered picture) pushed mid-stream enter the history: the next
/// chunk differs from the one the same stream makes without them, and differs again with frames
/// of another colour; what the push adds is `1 + (n - 1) / 4` latent frames, at most 9.
#[test]
fn live_video_frames_enter_the_history() {
    let _serial = serial();
    let p = pipeline();
    let cancel = AtomicBool::new(false);
    let frames = |rgb: [u8; 3], n: usize| {
        (0..n)
            .map(|i| {
                image::RgbImage::from_fn(64, 64, |x, _| {
                    let shade = ((x as usize + 4 * i) % 64) as u8;
                    image::Rgb([rgb[0].saturating_add(shade), rgb[1], rgb[2]])
                })
            })
            .collect::<Vec<_>>()
    };
    let next_after = |pushed: Option<Vec<image::RgbImage>>| {
        let mut s = ChunkStream::new(p.clone(), small("a street at night", 5)).expect("stream");
        s.next_chunk(&cancel).expect("chunk 0");
        if let Some(frames) = pushed {
            s.push_video(&frames).expect("push_video");
        }
        s.next_chunk(&cancel).expect("chunk 1").latents
    };
    let plain = next_after(None);
    let red = next_after(Some(frames([200, 20, 20], 9)));
    let blue = next_after(Some(frames([20, 20, 200], 9)));
    assert!(
        max_abs_diff(&plain, &red) > 1e-3,
        "the frames reach the model"
    );
    assert!(max_abs_diff(&red, &blue) > 1e-3, "what they show matters");

    let mut s = ChunkStream::new(p, small("a street at night", 5)).expect("stream");
    assert_eq!(s.push_video(&frames([0, 0, 0], 1)).unwrap(), 1);
    assert_eq!(s.push_video(&frames([0, 0, 0], 8)).unwrap(), 2);
    assert_eq!(s.push_video(&frames([0, 0, 0], 40)).unwrap(), 9);
    assert!(matches!(s.push_video(&[]), Err(Error::InvalidRequest(_))));
    let empty = vec![image::RgbImage::new(0, 0)];
    assert!(matches!(
        s.push_video(&empty),
        Err(Error::InvalidRequest(_))
    ));
    // A T2V stream fed frames before its first chunk starts from them.
    assert_eq!(s.next_chunk(&cancel).expect("chunk").index, 0);
}

/// Adaptive quality's resolution: the size changes between chunks (the history and prefix are
/// resampled), a size the model cannot make is refused and changes nothing.
#[test]
fn size_changes_between_chunks() {
    let _serial = serial();
    let p = pipeline();
    let cancel = AtomicBool::new(false);
    let mut request = small("a street at night", 3);
    request.params.width = Some(128);
    request.params.height = Some(128);
    let mut s = ChunkStream::new(p, request).expect("stream");
    let size = |c: &helios_model::pipeline::VideoChunk<B>| (c.frames.width(), c.frames.height());
    assert_eq!(size(&s.next_chunk(&cancel).unwrap()), (128, 128));
    s.set_size(64, 64).expect("a smaller size");
    assert_eq!(s.size(), (64, 64));
    let small = s.next_chunk(&cancel).unwrap();
    assert_eq!(size(&small), (64, 64));
    assert!(matches!(s.set_size(100, 64), Err(Error::InvalidRequest(_))));
    assert_eq!(s.size(), (64, 64), "a refused size changes nothing");
    s.set_size(128, 128).expect("back to full size");
    assert_eq!(size(&s.next_chunk(&cancel).unwrap()), (128, 128));
}

#[test]
fn batch_generation_trims_to_4k_plus_1() {
    let _serial = serial();
    let p = pipeline();
    let video = p
        .generate(small("rain on a window", 2), 66, &AtomicBool::new(false))
        .expect("video");
    assert_eq!(video.frames.len(), 65);
    assert_eq!(video.chunk_latents.len(), 2);
    assert_eq!((video.frames.width(), video.frames.height()), (64, 64));
    assert_eq!(video.frames.to_images().expect("8-bit frames").len(), 65);
}

#[test]
fn bad_requests_fail_before_any_work() {
    let _serial = serial();
    let p = pipeline();
    let invalid = |r: StreamRequest| {
        matches!(
            ChunkStream::new(p.clone(), r),
            Err(Error::InvalidRequest(_))
        )
    };
    let with = |edit: fn(&mut GenerationParams)| {
        let mut r = small("x", 0);
        edit(&mut r.params);
        r
    };
    assert!(
        invalid(with(|p| p.height = Some(96))),
        "not a multiple of 64"
    );
    assert!(invalid(with(|p| p.width = Some(0))));
    assert!(invalid(small("   ", 0)), "empty prompt");
    assert!(
        invalid(small(&"word ".repeat(10_000), 0)),
        "enormous prompt"
    );
    assert!(
        invalid(with(|p| p.steps = Some(vec![2, 2]))),
        "3 stages need 3 counts"
    );
    assert!(invalid(with(|p| p.steps = Some(vec![2, 0, 2]))));
    assert!(invalid(with(|p| p.guidance_scale = Some(f32::NAN))));
    let short_video = vec![image::RgbImage::new(64, 64); 10];
    assert!(invalid(StreamRequest {
        conditioning: Conditioning::Video(short_video),
        ..small("x", 0)
    }));
    assert!(invalid(StreamRequest {
        conditioning: Conditioning::Image(image::RgbImage::new(0, 0)),
        ..small("x", 0)
    }));
    assert!(matches!(
        VideoPlan::new(&p, 0),
        Err(Error::InvalidRequest(_))
    ));
    let mut s = ChunkStream::new(p.clone(), small("x", 0)).expect("stream");
    assert!(matches!(s.set_prompt("", 2), Err(Error::InvalidRequest(_))));
}
