//! The [`ChunkEngine`] on the Helios streaming generator (`helios_model::pipeline::ChunkStream`):
//! one [`HeliosPipeline`] loaded on the worker thread, shared by every stream through an `Arc`.
//!
//! The pipeline and its streams are created on the worker thread and stay there (the engine is
//! built inside the thread's load closure), so nothing here has to cross threads.
//!
//! Backends: NdArray (CPU), wgpu (frames left on the shared device when asked) and CUDA (frames
//! read back: CUDA cannot share Bevy's wgpu device, so they reach the texture through host
//! memory). A missing CUDA driver is a [`HeliosError::BackendUnavailable`], not a crash.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Cuda, NdArray, Wgpu};
use burn::tensor::backend::Backend;
use helios_model::pipeline::{ChunkStream, Frames, HeliosPipeline, LoadOptions, StreamRequest};

use super::engine::{ChunkEngine, EngineChunk, EngineConfig, StreamId};
use crate::error::{HeliosError, HeliosResult};
use crate::frame::{Frame, texture_side};
use crate::settings::HeliosBackend;

/// How a decoded chunk leaves the model's device.
type Export<B> = fn(&Frames<B>) -> HeliosResult<Vec<Frame>>;

/// One loaded pipeline shared by every stream of the worker.
struct HeliosEngine<B: Backend> {
    pipeline: Arc<HeliosPipeline<B>>,
    streams: HashMap<StreamId, ChunkStream<B>>,
    export: Export<B>,
}

impl<B: Backend> HeliosEngine<B> {
    /// Loads the pipeline on `device`, the DiT at the configured precision (`gpu`: whether `B`
    /// is a GPU backend, for [`HeliosPrecision::Auto`](crate::HeliosPrecision::Auto)).
    fn load(
        config: &EngineConfig,
        device: &B::Device,
        gpu: bool,
        export: Export<B>,
    ) -> HeliosResult<Self> {
        let precision = config.precision.dit_precision::<B>(device, gpu);
        let dir = match &config.model_dir {
            Some(dir) => dir.clone(),
            None => crate::settings::HeliosSettings::embedded_model_dir()?,
        };
        let pipeline = HeliosPipeline::load_with(&dir, device, LoadOptions::at(precision))?;
        Ok(Self {
            pipeline: Arc::new(pipeline),
            streams: HashMap::new(),
            export,
        })
    }

    fn stream(&mut self, id: StreamId) -> HeliosResult<&mut ChunkStream<B>> {
        self.streams
            .get_mut(&id)
            .ok_or(HeliosError::UnknownStream(id))
    }
}

/// Reads the frames back as RGBA8 rows.
fn read_back<B: Backend>(frames: &Frames<B>) -> HeliosResult<Vec<Frame>> {
    let (w, h) = (frames.width(), frames.height());
    Ok(frames
        .to_rgba8()?
        .into_iter()
        .map(|pixels| Frame::from_rgba(pixels, w, h))
        .collect())
}

/// Leaves the frames on the shared device (reads them back when they cannot be packed).
fn keep_on_gpu(frames: &Frames<Wgpu>) -> HeliosResult<Vec<Frame>> {
    match crate::frame::pack::pack_chunk(frames)? {
        Some(frames) => Ok(frames),
        None => read_back(frames),
    }
}

/// Loads the checkpoint of `config` on its backend (on Bevy's wgpu device when one is shared).
pub(super) fn load(config: &EngineConfig) -> HeliosResult<Box<dyn ChunkEngine>> {
    Ok(match config.backend {
        HeliosBackend::NdArray => Box::new(HeliosEngine::<NdArray<f32>>::load(
            config,
            &Default::default(),
            false,
            read_back,
        )?),
        HeliosBackend::Wgpu => {
            // Only a buffer of Bevy's own device can be a copy source in its render world.
            let (device, export): (_, Export<Wgpu>) = match &config.shared_wgpu {
                Some(device) if config.gpu_frames => (device.clone(), keep_on_gpu),
                Some(device) => (device.clone(), read_back),
                None => (Default::default(), read_back),
            };
            Box::new(HeliosEngine::<Wgpu>::load(config, &device, true, export)?)
        }
        HeliosBackend::Cuda => Box::new(HeliosEngine::<Cuda>::load(
            config,
            &cuda_device()?,
            true,
            read_back,
        )?),
    })
}

fn cuda_unavailable(reason: impl Into<String>) -> HeliosError {
    HeliosError::BackendUnavailable {
        backend: "CUDA",
        reason: reason.into(),
    }
}

/// The first CUDA device, once its driver answered. burn's CUDA runtime panics when it cannot
/// load the driver library; that is checked for first where it can be, and caught otherwise.
fn cuda_device() -> HeliosResult<CudaDevice> {
    if cuda_driver_present() == Some(false) {
        return Err(cuda_unavailable(
            "no CUDA driver library (libcuda / nvcuda) on this machine",
        ));
    }
    let device = CudaDevice::default();
    match catch_unwind(AssertUnwindSafe(|| <Cuda as Backend>::sync(&device))) {
        Ok(Ok(())) => Ok(device),
        Ok(Err(e)) => Err(cuda_unavailable(format!("the device failed: {e:?}"))),
        Err(panic) => Err(cuda_unavailable(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the CUDA runtime failed to start".to_owned()),
        )),
    }
}

/// Whether the CUDA driver library is where the dynamic loader looks: on Linux the loader cache
/// (`/etc/ld.so.cache`), `LD_LIBRARY_PATH` and the usual library folders, on Windows `System32`.
/// `None` where this is not known (other systems).
fn cuda_driver_present() -> Option<bool> {
    if cfg!(target_os = "linux") {
        const LIB: &str = "libcuda.so";
        let in_cache = std::fs::read("/etc/ld.so.cache")
            .is_ok_and(|cache| cache.windows(LIB.len()).any(|w| w == LIB.as_bytes()));
        let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        for dir in [
            "/lib",
            "/lib64",
            "/usr/lib",
            "/usr/lib64",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib/wsl/lib",
            "/usr/local/cuda/lib64",
            "/usr/local/cuda/compat",
            "/run/opengl-driver/lib",
        ] {
            dirs.push(dir.into());
        }
        let in_dirs = dirs
            .iter()
            .any(|d| d.join(LIB).exists() || d.join(format!("{LIB}.1")).exists());
        Some(in_cache || in_dirs)
    } else if cfg!(target_os = "windows") {
        let root = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
        Some(
            std::path::Path::new(&root)
                .join("System32")
                .join("nvcuda.dll")
                .exists(),
        )
    } else {
        None
    }
}

impl<B: Backend> ChunkEngine for HeliosEngine<B> {
    fn start(&mut self, id: StreamId, request: StreamRequest) -> HeliosResult<()> {
        // Validates first (size multiple, steps per stage, prompt), then encodes the prompt.
        let stream = ChunkStream::new(self.pipeline.clone(), request)?;
        self.streams.insert(id, stream);
        Ok(())
    }

    fn next_chunk(&mut self, id: StreamId, cancel: &AtomicBool) -> HeliosResult<EngineChunk> {
        let chunk = self.stream(id)?.next_chunk(cancel)?;
        let frames = &chunk.frames;
        Ok(EngineChunk {
            index: chunk.index,
            width: texture_side(frames.width())?,
            height: texture_side(frames.height())?,
            frames: (self.export)(frames)?,
        })
    }

    fn set_prompt(&mut self, id: StreamId, prompt: &str, over_chunks: usize) -> HeliosResult<()> {
        Ok(self.stream(id)?.set_prompt(prompt, over_chunks)?)
    }

    fn set_image(&mut self, id: StreamId, image: image::RgbImage) -> HeliosResult<()> {
        Ok(self.stream(id)?.set_image(image)?)
    }

    fn stop(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a CUDA driver (this machine, CI), the CUDA backend is a typed error and the
    /// process goes on; with one, the device answers.
    #[test]
    fn cuda_without_a_driver_is_a_typed_error() {
        match cuda_device() {
            Ok(device) => assert!(<Cuda as Backend>::sync(&device).is_ok()),
            Err(HeliosError::BackendUnavailable { backend, reason }) => {
                assert_eq!(backend, "CUDA");
                assert!(!reason.is_empty());
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}
