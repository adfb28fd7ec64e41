//! The one place that talks to `helios_model`: the [`ChunkEngine`] trait the worker drives, and
//! its implementation on the Helios streaming generator.
//!
//! Several streams share one engine (one loaded model); the worker decides which stream makes
//! the next chunk.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::error::HeliosResult;
use crate::settings::HeliosBackend;

/// Identifies a stream inside one worker (the plugin uses the screen entity's bits).
pub type StreamId = u64;

/// What a stream is asked to generate (everything but the prompt, which can change).
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// First prompt.
    pub prompt: String,
    /// Negative prompt (CFG only).
    pub negative_prompt: Option<String>,
    /// Frame height in pixels.
    pub height: usize,
    /// Frame width in pixels.
    pub width: usize,
    /// Denoising steps per pyramid stage.
    pub steps: Vec<usize>,
    /// CFG scale.
    pub guidance_scale: f32,
    /// Seed of this stream.
    pub seed: u64,
    /// Amplified first chunk.
    pub amplify_first_chunk: bool,
    /// Optional I2V conditioning image.
    pub image: Option<image::RgbImage>,
}

/// One generated chunk: RGBA8 frames, row-major.
#[derive(Clone, Debug)]
pub struct EngineChunk {
    /// Chunk number within its stream (0, 1, ...).
    pub index: usize,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The frames.
    pub frames: Vec<Vec<u8>>,
}

/// How the worker loads its engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The checkpoint folder.
    pub model_dir: PathBuf,
    /// The burn backend.
    pub backend: HeliosBackend,
    /// A burn wgpu device built on Bevy's render device (shared GPU), if any.
    pub shared_wgpu: Option<burn::backend::wgpu::WgpuDevice>,
}

/// A loaded model serving several streams. All calls come from the worker thread.
pub trait ChunkEngine: Send {
    /// Creates stream `id` (replacing one with the same id).
    fn start(&mut self, id: StreamId, spec: StreamSpec) -> HeliosResult<()>;
    /// Generates the next chunk of stream `id`; returns early with a cancelled model error when
    /// `cancel` is set between two model calls.
    fn next_chunk(&mut self, id: StreamId, cancel: &AtomicBool) -> HeliosResult<EngineChunk>;
    /// Switches the prompt of stream `id`, interpolated over the next `over_chunks` chunks.
    fn set_prompt(&mut self, id: StreamId, prompt: &str, over_chunks: usize) -> HeliosResult<()>;
    /// Sets the I2V conditioning image of stream `id`.
    fn set_image(&mut self, id: StreamId, image: image::RgbImage) -> HeliosResult<()>;
    /// Drops stream `id` (no-op when unknown).
    fn stop(&mut self, id: StreamId);
}

/// Loads the engine for `config` (called on the worker thread: loading may take long).
pub fn load_engine(config: &EngineConfig) -> HeliosResult<Box<dyn ChunkEngine>> {
    helios::load(config)
}

mod helios {
    //! TEMPORARY stand-in until `helios_model::pipeline::ChunkStream` lands: it validates the
    //! checkpoint folder with `helios_model` (so a bad folder is a real model error) and draws
    //! frames procedurally from the prompt. Replaced by the real generator at merge time.
    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::error::HeliosError;

    struct Stream {
        spec: StreamSpec,
        prompt: String,
        index: usize,
    }

    struct Engine {
        streams: HashMap<StreamId, Stream>,
    }

    pub(super) fn load(config: &EngineConfig) -> HeliosResult<Box<dyn ChunkEngine>> {
        helios_model::config::HeliosCheckpoint::from_dir(&config.model_dir)?;
        Ok(Box::new(Engine {
            streams: HashMap::new(),
        }))
    }

    impl ChunkEngine for Engine {
        fn start(&mut self, id: StreamId, spec: StreamSpec) -> HeliosResult<()> {
            let prompt = spec.prompt.clone();
            self.streams.insert(
                id,
                Stream {
                    spec,
                    prompt,
                    index: 0,
                },
            );
            Ok(())
        }

        fn next_chunk(&mut self, id: StreamId, cancel: &AtomicBool) -> HeliosResult<EngineChunk> {
            let s = self
                .streams
                .get_mut(&id)
                .ok_or(HeliosError::UnknownStream(id))?;
            if cancel.load(Ordering::Relaxed) {
                return Err(helios_model::Error::Cancelled.into());
            }
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.prompt.hash(&mut h);
            let base = h.finish();
            let (w, ht) = (s.spec.width, s.spec.height);
            let frames = (0..33)
                .map(|f| {
                    let t = (s.index * 33 + f) as u64;
                    let mut px = vec![255u8; w * ht * 4];
                    for y in 0..ht {
                        for x in 0..w {
                            let i = (y * w + x) * 4;
                            px[i] = (base as usize + x + t as usize) as u8;
                            px[i + 1] = ((base >> 8) as usize + y + 2 * t as usize) as u8;
                            px[i + 2] = (base >> 16) as u8;
                        }
                    }
                    px
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let index = s.index;
            s.index += 1;
            Ok(EngineChunk {
                index,
                width: w as u32,
                height: ht as u32,
                frames,
            })
        }

        fn set_prompt(&mut self, id: StreamId, prompt: &str, _over: usize) -> HeliosResult<()> {
            let s = self
                .streams
                .get_mut(&id)
                .ok_or(HeliosError::UnknownStream(id))?;
            s.prompt = prompt.to_owned();
            Ok(())
        }

        fn set_image(&mut self, id: StreamId, _image: image::RgbImage) -> HeliosResult<()> {
            self.streams
                .get_mut(&id)
                .ok_or(HeliosError::UnknownStream(id))?;
            Ok(())
        }

        fn stop(&mut self, id: StreamId) {
            self.streams.remove(&id);
        }
    }
}
