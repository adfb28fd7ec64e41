//! The embedded default model: a small trained Helios checkpoint compiled into this crate.
//!
//! The files of `embedded/helios-faces` (a diffusers-layout folder, about 4 MB: the demo model
//! `helios train-demo` trains on procedural NPC faces, see its `README.md`) are part of the
//! library itself (`include_bytes!`), so a binary installed with `cargo install`, or a game that
//! depends on this crate, always has a model to run without any download or checkout. The loader
//! memory-maps checkpoint files, so [`model_dir`] writes them once into a per-user cache folder
//! named after their content (`<cache>/helios/helios-faces-<hash>`) and returns that folder; later
//! calls, from any process, find it there. The folder is written under a temporary name and
//! renamed into place, so a reader never sees a half-written checkpoint.
//!
//! [`default_model_dir`] is what the CLI and the Bevy plugin use when no model is named: the
//! folder in `HELIOS_MODEL_DIR` when that is set, the embedded model otherwise.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The environment variable naming a checkpoint folder to use instead of the embedded model.
pub const MODEL_DIR_ENV: &str = "HELIOS_MODEL_DIR";

/// The embedded model's name (the stem of its cache folder).
pub const NAME: &str = "helios-faces";

/// Frame size (height, width) the embedded model is meant to run at.
pub const SIZE: (usize, usize) = (128, 128);

macro_rules! embedded_files {
    ($($path:literal),* $(,)?) => {
        /// Every file of the embedded checkpoint: its path inside the folder and its bytes.
        pub const FILES: &[(&str, &[u8])] = &[
            $(($path, include_bytes!(concat!("../embedded/helios-faces/", $path)))),*
        ];
    };
}

embedded_files!(
    "README.md",
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_config.json",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
);

/// Written last into a materialised folder: its presence means every file is complete.
const COMPLETE_MARKER: &str = ".complete";

/// The checkpoint folder to use when none is named: `HELIOS_MODEL_DIR` if it is set (and not
/// empty), else the embedded model ([`model_dir`]).
pub fn default_model_dir() -> Result<PathBuf> {
    match std::env::var_os(MODEL_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => model_dir(),
    }
}

/// The embedded model as a folder on disk, written into the user's cache folder on first use
/// (`$XDG_CACHE_HOME/helios` or `~/.cache/helios` on Linux, the platform's cache folder
/// elsewhere, the temporary folder when there is none).
pub fn model_dir() -> Result<PathBuf> {
    let root = dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("helios");
    materialise_into(&root)
}

/// Writes the embedded model into `root/helios-faces-<hash>` unless it is already there, and
/// returns that folder.
pub fn materialise_into(root: &Path) -> Result<PathBuf> {
    let target = root.join(format!("{NAME}-{:016x}", content_hash()));
    if target.join(COMPLETE_MARKER).is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let staging = root.join(format!(".{NAME}.part-{}-{nanos}", std::process::id()));
    let written = write_files(&staging).and_then(|()| {
        let marker = staging.join(COMPLETE_MARKER);
        std::fs::write(&marker, b"").map_err(|e| Error::io(&marker, e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    match std::fs::rename(&staging, &target) {
        Ok(()) => Ok(target),
        // Another process (or a stale, incomplete folder) got there first.
        Err(_) if target.join(COMPLETE_MARKER).is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(target)
        }
        Err(_) => {
            // An incomplete folder left by a process that died mid-write: replace it.
            let _ = std::fs::remove_dir_all(&target);
            let renamed = std::fs::rename(&staging, &target).map_err(|e| Error::io(&target, e));
            if renamed.is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
            renamed.map(|()| target)
        }
    }
}

fn write_files(dir: &Path) -> Result<()> {
    for (name, bytes) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// FNV-1a over every file name and content: a new embedded model gets a new folder.
fn content_hash() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, bytes) in FILES {
        eat(name.as_bytes());
        eat(&(bytes.len() as u64).to_le_bytes());
        eat(bytes);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_every_file_of_the_checkpoint_folder() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/helios-faces");
        let mut on_disk = Vec::new();
        let mut stack = vec![folder.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    on_disk.push(
                        path.strip_prefix(&folder)
                            .unwrap()
                            .to_string_lossy()
                            .replace('\\', "/"),
                    );
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(name, _)| name.to_string()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "the FILES table must list every file of embedded/helios-faces"
        );
    }

    #[test]
    fn materialises_once_with_identical_bytes() {
        let root = tempfile::tempdir().unwrap();
        let dir = materialise_into(root.path()).unwrap();
        assert!(dir.starts_with(root.path()));
        for (name, bytes) in FILES {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), *bytes, "{name}");
        }
        // A second call finds the folder and leaves no staging folder behind.
        let modified = std::fs::metadata(dir.join("model_index.json"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(materialise_into(root.path()).unwrap(), dir);
        assert_eq!(
            std::fs::metadata(dir.join("model_index.json"))
                .unwrap()
                .modified()
                .unwrap(),
            modified
        );
        let entries: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn replaces_an_incomplete_folder() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join(format!("{NAME}-{:016x}", content_hash()));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("model_index.json"), b"{ truncated").unwrap();
        let dir = materialise_into(root.path()).unwrap();
        assert_eq!(dir, target);
        assert!(dir.join(COMPLETE_MARKER).is_file());
        assert_eq!(
            std::fs::read(dir.join("model_index.json")).unwrap(),
            FILES[1].1
        );
    }

    #[test]
    fn an_unwritable_root_is_a_typed_error() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            materialise_into(&file.join("helios")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn the_materialised_model_loads() {
        let root = tempfile::tempdir().unwrap();
        let dir = materialise_into(root.path()).unwrap();
        let pipeline =
            crate::pipeline::HeliosPipeline::<crate::TestBackend>::load(&dir, &Default::default())
                .unwrap();
        assert!(pipeline.checkpoint().is_distilled);
        // It was trained on 96-token prompts and reads them so unless a request says otherwise;
        // the reference's 512 stays the default of a checkpoint that declares 512 or nothing.
        assert_eq!(pipeline.default_max_sequence_length(), 96);
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/tiny-helios");
        let tiny =
            crate::pipeline::HeliosPipeline::<crate::TestBackend>::load(&tiny, &Default::default())
                .unwrap();
        assert_eq!(tiny.default_max_sequence_length(), 512);
    }
}
