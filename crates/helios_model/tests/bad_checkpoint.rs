//! Broken checkpoints give typed errors naming the file (and tensor), never a panic.
//!
//! Each test copies the tiny fixture checkpoint into a temporary folder, breaks one thing and loads.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use helios_model::Error;
use helios_model::config::HeliosCheckpoint;
use helios_model::dit::HeliosTransformer3DModel;
use helios_model::weights::SafetensorsSet;

type B = NdArray<f32>;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/tiny-helios")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "cases") {
            continue;
        }
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture(), dir.path());
    dir
}

fn load_dit(dir: &Path) -> Result<HeliosTransformer3DModel<B>, Error> {
    HeliosTransformer3DModel::<B>::load(&dir.join("transformer"), &Default::default(), &mut |_| {})
}

const SHARD1: &str = "transformer/diffusion_pytorch_model-00001-of-00002.safetensors";
const SHARD2: &str = "transformer/diffusion_pytorch_model-00002-of-00002.safetensors";

/// Rewrites a safetensors file through `edit` on its (name, dtype, shape, bytes) list.
fn rewrite(
    path: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let bytes = std::fs::read(path).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let mut list: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut list);
    let views: Vec<(String, safetensors::tensor::TensorView)> = list
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).expect("view"),
            )
        })
        .collect();
    let out = safetensors::serialize(views, None).expect("serialize");
    std::fs::write(path, out).expect("write");
}

#[test]
fn the_intact_checkpoint_loads() {
    let dir = checkpoint();
    assert!(HeliosCheckpoint::from_dir(dir.path()).is_ok());
    assert!(load_dit(dir.path()).is_ok());
}

#[test]
fn missing_file_names_the_file() {
    let dir = checkpoint();
    std::fs::remove_file(dir.path().join(SHARD2)).expect("rm");
    match load_dit(dir.path()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with(SHARD2), "{path:?}"),
        other => panic!("expected Io, got {other:?}"),
    }
    std::fs::remove_file(dir.path().join("vae/config.json")).expect("rm");
    assert!(matches!(
        HeliosCheckpoint::from_dir(dir.path()),
        Err(Error::Io { .. })
    ));
}

#[test]
fn truncated_safetensors_is_corrupt() {
    let dir = checkpoint();
    let path = dir.path().join(SHARD1);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    match load_dit(dir.path()) {
        Err(Error::Safetensors { path: p, .. }) => assert!(p.ends_with(SHARD1)),
        other => panic!("expected Safetensors, got {other:?}"),
    }
}

#[test]
fn garbage_header_is_corrupt() {
    let dir = checkpoint();
    let path = dir.path().join(SHARD2);
    std::fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header").expect("write");
    assert!(matches!(
        load_dit(dir.path()),
        Err(Error::Safetensors { .. })
    ));
}

#[test]
fn wrong_dtype_is_reported() {
    let dir = checkpoint();
    rewrite(&dir.path().join(SHARD2), |list| {
        let t = &mut list[0];
        let n = t.3.len() / 2;
        t.1 = safetensors::Dtype::I16;
        t.3.truncate(n * 2);
    });
    match load_dit(dir.path()) {
        Err(Error::UnsupportedDtype { dtype, .. }) => assert_eq!(dtype, "I16"),
        other => panic!("expected UnsupportedDtype, got {other:?}"),
    }
}

#[test]
fn wrong_shape_names_the_tensor() {
    let dir = checkpoint();
    let mut victim = String::new();
    rewrite(&dir.path().join(SHARD2), |list| {
        let t = list
            .iter_mut()
            .find(|t| t.0.ends_with("to_q.bias"))
            .expect("a to_q.bias");
        victim = t.0.clone();
        let n = t.2[0];
        t.2 = vec![n / 2, 2];
    });
    match load_dit(dir.path()) {
        Err(Error::TensorShape {
            key, expected, got, ..
        }) => {
            assert_eq!(key, victim);
            assert_eq!(expected.len(), 1);
            assert_eq!(got.len(), 2);
        }
        other => panic!("expected TensorShape, got {other:?}"),
    }
}

#[test]
fn missing_key_is_reported() {
    let dir = checkpoint();
    let mut victim = String::new();
    rewrite(&dir.path().join(SHARD2), |list| {
        let i = list
            .iter()
            .position(|t| t.0.ends_with("norm_q.weight"))
            .expect("a norm_q");
        victim = list.remove(i).0;
    });
    // The index still lists it: the set itself reports the hole.
    match load_dit(dir.path()) {
        Err(Error::MissingTensor { key, .. }) => assert_eq!(key, victim),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn extra_key_is_reported() {
    let dir = checkpoint();
    rewrite(&dir.path().join(SHARD2), |list| {
        list.push((
            "blocks.0.attn1.surprise.weight".into(),
            safetensors::Dtype::F32,
            vec![2],
            vec![0u8; 8],
        ));
    });
    match load_dit(dir.path()) {
        Err(Error::UnexpectedTensors { keys, .. }) => {
            assert_eq!(keys, vec!["blocks.0.attn1.surprise.weight".to_string()])
        }
        other => panic!("expected UnexpectedTensors, got {other:?}"),
    }
}

#[test]
fn malformed_json_names_the_file() {
    let dir = checkpoint();
    std::fs::write(
        dir.path().join("transformer/config.json"),
        "{ \"num_layers\": ",
    )
    .expect("write");
    match HeliosCheckpoint::from_dir(dir.path()) {
        Err(Error::Json { path, .. }) => assert!(path.ends_with("transformer/config.json")),
        other => panic!("expected Json, got {other:?}"),
    }
}

#[test]
fn missing_required_field_is_named() {
    let dir = checkpoint();
    let p = dir.path().join("vae/config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
    v.as_object_mut().expect("object").remove("latents_std");
    std::fs::write(&p, v.to_string()).expect("write");
    match HeliosCheckpoint::from_dir(dir.path()) {
        Err(e @ Error::Json { .. }) => assert!(e.to_string().contains("latents_std"), "{e}"),
        other => panic!("expected Json, got {other:?}"),
    }
}

#[test]
fn unknown_model_class_is_named() {
    let dir = checkpoint();
    let p = dir.path().join("model_index.json");
    let text = std::fs::read_to_string(&p)
        .expect("read")
        .replace("HeliosTransformer3DModel", "WanTransformer3DModel");
    std::fs::write(&p, text).expect("write");
    match HeliosCheckpoint::from_dir(dir.path()) {
        Err(Error::UnknownModelClass {
            component, class, ..
        }) => {
            assert_eq!(component, "transformer");
            assert_eq!(class, "WanTransformer3DModel");
        }
        other => panic!("expected UnknownModelClass, got {other:?}"),
    }
}

#[test]
fn single_file_and_sharded_sets_agree() {
    let set = SafetensorsSet::open(
        "transformer",
        &fixture().join("transformer"),
        "diffusion_pytorch_model",
    )
    .expect("open");
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            fixture().join("transformer/diffusion_pytorch_model.safetensors.index.json"),
        )
        .expect("index"),
    )
    .expect("json");
    let listed = index["weight_map"]
        .as_object()
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(listed > 0);
    assert_eq!(set.keys().count(), listed);
    assert_eq!(set.dtype("proj_out.weight").as_deref(), Some("BF16"));
}
