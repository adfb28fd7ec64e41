//! The trainer's parts on real data at toy sizes: the losses fall, the checkpoint it writes loads.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use helios_model::config::VaeConfig;
use helios_train::data::training_clip;
use helios_train::vae::{VaeTraining, train_vae};
use helios_train::{Progress, TrainBackend};
use image::imageops;

/// Trains a VAE for `steps` steps on one 5-frame window of the clip of `clip_seed` (its chunk
/// `chunk`, scaled to 32x32), three quarters of them on single frames; the losses.
fn toy_vae(clip_seed: u64, chunk: usize, steps: usize, seed: u64) -> Vec<f32> {
    let config: VaeConfig = serde_json::from_value(helios_train::config::vae_untrained()).unwrap();
    let frames: Vec<_> = training_clip(clip_seed).chunks[chunk][..5]
        .iter()
        .map(|f| imageops::resize(f, 32, 32, imageops::FilterType::Triangle))
        .collect();
    let options = VaeTraining {
        image_steps: steps * 3 / 4,
        image_batch: 2,
        video_steps: steps - steps * 3 / 4,
        crop: 32,
        ..VaeTraining::default()
    };
    let mut losses = Vec::new();
    train_vae::<TrainBackend>(
        &config,
        &[frames],
        &options,
        seed,
        &Default::default(),
        &mut |p: Progress| losses.push(p.loss),
    )
    .unwrap();
    losses
}

#[test]
fn the_vae_learns_to_reconstruct_a_window_it_sees_again_and_again() {
    let losses = toy_vae(3, 0, 80, 1);
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(last < 0.3 * first, "loss {first} -> {last}");
}

/// Trains a one-block DiT for `steps` steps on two chunks of smooth random latents; the losses.
fn toy_dit(steps: usize) -> Vec<f32> {
    use std::collections::HashMap;

    use burn::backend::NdArray;
    use burn::tensor::{Tensor, TensorData};
    use helios_model::config::{SchedulerConfig, TransformerConfig};
    use helios_model::pipeline::HistoryLayout;
    use helios_model::scheduler::FlowScheduler;
    use helios_train::dit::{DitTraining, LatentClip, train_dit};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    let mut config = helios_train::config::transformer();
    config["num_layers"] = serde_json::json!(1);
    config["num_attention_heads"] = serde_json::json!(2);
    config["ffn_dim"] = serde_json::json!(64);
    let config: TransformerConfig = serde_json::from_value(config).unwrap();
    let scheduler: SchedulerConfig =
        serde_json::from_value(helios_train::config::scheduler()).unwrap();
    let scheduler = FlowScheduler::new(&scheduler).unwrap();
    let device = Default::default();
    // Two chunks of smooth latents (a low-resolution pattern up-sampled) and one caption, drawn
    // from a seeded generator of the test's own.
    let mut rng = StdRng::seed_from_u64(11);
    let mut normal = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
            .collect()
    };
    let coarse = Tensor::<NdArray<f32>, 5>::from_data(
        TensorData::new(normal(16 * 18 * 4), [1, 16, 18, 2, 2]),
        &device,
    );
    let latents = coarse.repeat_dim(3, 4).repeat_dim(4, 4);
    let clip = LatentClip {
        image: latents.clone().narrow(2, 0, 1),
        still: latents.clone().narrow(2, 1, 1),
        latents,
        captions: vec!["a face".into(), "a face".into()],
    };
    let mut embeddings = HashMap::new();
    embeddings.insert(
        "a face".to_string(),
        Tensor::<NdArray<f32>, 3>::from_data(TensorData::new(normal(8 * 32), [1, 8, 32]), &device),
    );
    let options = DitTraining {
        steps,
        learning_rate: 3e-3,
        steps_per_stage: 2,
        history_dropout: 0.0,
        image_start: 0.5,
        stage_weights: Vec::new(),
        expression_weight: 1.0,
    };
    let mut losses = Vec::new();
    train_dit::<TrainBackend>(
        &config,
        &scheduler,
        HistoryLayout::default(),
        &[clip],
        &embeddings,
        &options,
        2,
        &device,
        &mut |p: Progress| losses.push(p.loss),
    )
    .unwrap();
    losses
}

#[test]
fn the_dit_learns_the_chunks_of_a_clip_it_sees_again_and_again() {
    let losses = toy_dit(600);
    let first: f32 = losses[..150].iter().sum::<f32>() / 150.0;
    let last: f32 = losses[losses.len() - 150..].iter().sum::<f32>() / 150.0;
    assert!(
        last < 0.5 * first,
        "mean loss of the first and last 150 steps: {first} -> {last}"
    );
}

#[test]
fn training_is_reproducible_from_its_seed() {
    assert_eq!(toy_dit(30), toy_dit(30));
    assert_eq!(toy_vae(4, 1, 4, 9), toy_vae(4, 1, 4, 9));
}

#[test]
fn the_demo_tokenizer_reads_each_caption_word_as_one_piece() {
    use helios_faces::{Emotion, Lighting, SceneText};
    use helios_model::text::PromptTokenizer;
    use helios_train::data::{caption, caption_words};

    let (json, _) = helios_train::config::tokenizer(&caption_words(8));
    let dir = std::env::temp_dir().join(format!("helios-train-tok-{}", std::process::id()));
    helios_train::config::write_json(&dir, "tokenizer.json", &json).unwrap();
    let tokenizer = PromptTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for emotion in Emotion::ALL {
        let text = caption(&SceneText::new(
            "a pale round face with long red hair and green eyes",
            emotion,
            Some("Welcome, traveller."),
            Lighting::default(),
        ));
        let tokens = tokenizer.tokenize(&[&text], 512).unwrap();
        let ids = &tokens.ids[..tokens.seq_lens[0]];
        let pieces: Vec<String> = ids
            .iter()
            .filter_map(|&id| tokenizer.id_to_token(id))
            .collect();
        assert!(
            pieces.contains(&format!("\u{2581}{emotion}")),
            "{emotion} is not one piece in {pieces:?}"
        );
        assert!(!ids.contains(&2), "an unknown piece in {pieces:?}");
        let words = text.split_whitespace().count();
        assert!(
            ids.len() < 2 * words,
            "{} pieces for {words} words: {pieces:?}",
            ids.len()
        );
    }
}

#[test]
fn a_short_run_writes_a_checkpoint_the_pipeline_loads_and_runs() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use burn::backend::NdArray;
    use helios_model::pipeline::{ChunkStream, GenerationParams, HeliosPipeline, StreamRequest};
    use helios_train::{DitTraining, TrainOptions, train_demo};

    let out = std::env::temp_dir().join(format!("helios-train-run-{}", std::process::id()));
    let options = TrainOptions {
        seed: 5,
        vae_clips: 1,
        dit_clips: 2,
        vae: VaeTraining {
            image_steps: 1,
            video_steps: 1,
            ..VaeTraining::default()
        },
        dit: DitTraining {
            steps: 2,
            ..DitTraining::default()
        },
        preview: None,
        vae_from: None,
        // The shipped recipe, spelled out: lip-synced clips and a text encoder that keeps each
        // word in place.
        speech: helios_train::Speech::LipSync,
        text_layer_scale: 0.1,
    };
    let mut steps = 0;
    let report = train_demo(&out, &options, &mut |_| steps += 1).unwrap();
    assert_eq!(steps, 4);
    assert!(report.vae_loss.is_finite() && report.dit_loss.is_finite());

    // The same VAE reused for another DiT (its one stage weighted explicitly): DiT steps only.
    let again = out.with_extension("again");
    let reuse = TrainOptions {
        vae_from: Some(out.clone()),
        dit: DitTraining {
            stage_weights: vec![4.0],
            ..options.dit.clone()
        },
        ..options.clone()
    };
    let mut steps = 0;
    let reused = train_demo(&again, &reuse, &mut |_| steps += 1).unwrap();
    let weights = "vae/diffusion_pytorch_model.safetensors";
    let same_vae =
        std::fs::read(out.join(weights)).unwrap() == std::fs::read(again.join(weights)).unwrap();
    let bad = TrainOptions {
        dit: DitTraining {
            stage_weights: vec![1.0, 1.0],
            ..options.dit.clone()
        },
        ..reuse.clone()
    };
    let refused = train_demo(&again, &bad, &mut |_| {});
    let negative = TrainOptions {
        dit: DitTraining {
            expression_weight: -1.0,
            ..options.dit.clone()
        },
        ..reuse.clone()
    };
    let refused_weight = train_demo(&again, &negative, &mut |_| {});
    let bad_scale = TrainOptions {
        text_layer_scale: -0.5,
        ..reuse.clone()
    };
    let refused_scale = train_demo(&again, &bad_scale, &mut |_| {});
    let _ = std::fs::remove_dir_all(&again);
    assert_eq!(steps, 2, "only the DiT trains");
    assert_eq!(reused.vae_loss.to_bits(), 0.0f32.to_bits(), "no VAE loss");
    assert!(reused.dit_loss.is_finite());
    assert!(same_vae, "the reused VAE is copied as it is");
    assert!(
        matches!(refused, Err(helios_train::TrainError::Options(_))),
        "two stage weights for one stage: {refused:?}"
    );
    assert!(
        matches!(refused_weight, Err(helios_train::TrainError::Options(_))),
        "a negative expression weight: {refused_weight:?}"
    );
    assert!(
        matches!(refused_scale, Err(helios_train::TrainError::Options(_))),
        "a negative text layer scale: {refused_scale:?}"
    );

    let pipeline = HeliosPipeline::<NdArray<f32>>::load(&out, &Default::default());
    let pipeline = Arc::new(pipeline.unwrap_or_else(|e| panic!("the written checkpoint: {e}")));
    assert_eq!(pipeline.transformer().config().num_layers, 4);
    // The checkpoint reads prompts at the length it was trained on when a request leaves it unset.
    assert_eq!(
        pipeline.default_max_sequence_length(),
        helios_train::config::TEXT_TOKENS
    );
    let params = GenerationParams {
        height: Some(128),
        width: Some(128),
        max_sequence_length: Some(64),
        ..GenerationParams::default()
    };
    let request = StreamRequest::with_params("a happy face", params);
    let chunk = ChunkStream::new(pipeline, request)
        .unwrap()
        .next_chunk(&AtomicBool::new(false))
        .unwrap();
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(chunk.frames.len(), 33);
    assert_eq!((chunk.frames.width(), chunk.frames.height()), (128, 128));
}

#[test]
fn the_per_frame_start_codes_each_group_of_four_frames_by_its_last_and_repeats_it() {
    use burn::module::AutodiffModule;
    use burn::tensor::Tensor;
    use helios_model::random::random_vae;
    use helios_model::vae::WanVae;
    use helios_train::data::video_tensor;
    use helios_train::vae::per_frame_start;

    let config: VaeConfig = serde_json::from_value(helios_train::config::vae_untrained()).unwrap();
    let device = Default::default();
    let model = random_vae::<TrainBackend>(&config, 3, &device)
        .model()
        .clone();
    let vae = WanVae::from_parts(per_frame_start(model).valid(), config);
    let frames: Vec<_> = training_clip(3).chunks[1][..5]
        .iter()
        .map(|f| imageops::resize(f, 32, 32, imageops::FilterType::Triangle))
        .collect();
    let max_abs = |a: Tensor<_, 5>, b: Tensor<_, 5>| -> f32 { (a - b).abs().max().into_scalar() };

    let video = vae.encode(video_tensor(&frames, &device)).unwrap().mode();
    let last = vae
        .encode(video_tensor(&frames[4..], &device))
        .unwrap()
        .mode();
    assert_eq!(video.dims()[2], 2);
    let coded = video.clone().narrow(2, 1, 1);
    assert!(
        coded.clone().abs().max().into_scalar() > 1e-3,
        "the latents are not zero"
    );
    let gap = max_abs(coded.clone(), last);
    assert!(
        gap < 1e-4,
        "latent frame 1 differs from frame 4 coded alone by {gap}"
    );

    let decoded = vae.decode_vae_space(video).unwrap();
    let alone = vae.decode_vae_space(coded).unwrap();
    assert_eq!(decoded.dims()[2], 5);
    for f in 1..5 {
        let gap = max_abs(decoded.clone().narrow(2, f, 1), alone.clone());
        assert!(
            gap < 1e-4,
            "decoded frame {f} differs from its latent decoded alone by {gap}"
        );
    }
}

#[test]
fn every_caption_fits_the_demo_models_prompt_length() {
    use helios_faces::{Character, Emotion, LINES, Lighting, SceneText};
    use helios_model::text::PromptTokenizer;
    use helios_train::config::TEXT_TOKENS;
    use helios_train::data::{caption, caption_words};

    let (json, _) = helios_train::config::tokenizer(&caption_words(256));
    let dir = std::env::temp_dir().join(format!("helios-train-len-{}", std::process::id()));
    helios_train::config::write_json(&dir, "tokenizer.json", &json).unwrap();
    helios_train::config::write_json(
        &dir,
        "tokenizer_config.json",
        &helios_train::config::tokenizer_config(),
    )
    .unwrap();
    let tokenizer = PromptTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(tokenizer.model_max_length(), Some(TEXT_TOKENS));
    // The wordiest characters of the data, in every scene.
    let mut who: Vec<String> = (0..512)
        .map(|seed| Character::from_seed(seed).description())
        .collect();
    who.sort_by_key(|d| std::cmp::Reverse(d.split_whitespace().count()));
    let mut longest = 0;
    for who in &who[..8] {
        for emotion in Emotion::ALL {
            for lighting in Lighting::all() {
                for line in LINES.iter().map(|l| Some(*l)).chain([None]) {
                    let text = caption(&SceneText::new(who, emotion, line, lighting));
                    let tokens = tokenizer.tokenize(&[&text], 4096).unwrap();
                    longest = longest.max(tokens.seq_lens[0]);
                }
            }
        }
    }
    assert!(
        longest <= TEXT_TOKENS,
        "the longest caption is {longest} pieces; the model reads {TEXT_TOKENS}"
    );
    assert!(
        longest > TEXT_TOKENS / 2,
        "{longest} pieces: the length is padding"
    );
}
