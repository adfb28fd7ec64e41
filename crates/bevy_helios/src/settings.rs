//! [`HeliosSettings`]: everything the plugin is configured with, in code or from a
//! `*.helios.ron` asset (hot-reloadable through Bevy's asset system).

use std::path::PathBuf;

use bevy::asset::{AssetLoader, LoadContext, io::Reader};
use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use helios_model::pipeline::GenerationParams;
use helios_worker::EngineBackend;

use crate::error::{HeliosError, HeliosResult};
use crate::prompt::PromptTemplate;

/// The burn backend the worker runs the model on (the worker's [`EngineBackend`], as a reflected
/// setting).
#[derive(Reflect, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeliosBackend {
    /// CPU (`burn::backend::NdArray<f32>`): runs everywhere; fine for the embedded demo model.
    #[default]
    NdArray,
    /// GPU (`burn::backend::Wgpu`): wgpu 29, the same wgpu Bevy renders with.
    Wgpu,
    /// NVIDIA GPU (`burn::backend::Cuda`, the crate's `cuda` feature). It cannot share Bevy's
    /// wgpu device: frames reach the texture through host memory. Without a CUDA driver, or in a
    /// build without the feature, the worker reports
    /// [`WorkerError::BackendUnavailable`](helios_worker::WorkerError::BackendUnavailable).
    Cuda,
}

impl From<HeliosBackend> for EngineBackend {
    fn from(backend: HeliosBackend) -> Self {
        match backend {
            HeliosBackend::NdArray => Self::NdArray,
            HeliosBackend::Wgpu => Self::Wgpu,
            HeliosBackend::Cuda => Self::Cuda,
        }
    }
}

/// How the worker's wgpu backend relates to Bevy's renderer (only used with [`HeliosBackend::Wgpu`]).
#[derive(Reflect, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GpuSharing {
    /// burn runs on Bevy's own `RenderDevice` / `RenderQueue` (one wgpu device for both; built with
    /// `burn::backend::wgpu::init_device` from a `WgpuSetup` made of Bevy's render resources).
    /// Falls back to [`GpuSharing::Separate`] (with a warning) when the app does not render.
    #[default]
    SharedDevice,
    /// burn creates its own wgpu device (no contention with the renderer's queue).
    Separate,
}

/// How a frame reaches the screen's `Image`.
#[derive(Reflect, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UploadPath {
    /// Replace the `Image` asset's pixel data in `Assets<Image>` (Bevy re-uploads the texture).
    /// Works without a renderer (tests, headless servers).
    #[default]
    Cpu,
    /// Keep the main-world `Image` untouched and copy the frame into the GPU texture in the render
    /// world with `copy_buffer_to_texture`. With [`HeliosBackend::Wgpu`] on
    /// [`GpuSharing::SharedDevice`] the frame never leaves the GPU: the worker packs each chunk to
    /// RGBA8 rows in a buffer of the shared device and the texture is copied from it (no
    /// readback). Otherwise the CPU frame goes through a staging buffer (rows padded to 256
    /// bytes). Needs the render app; without it the plugin falls back to [`UploadPath::Cpu`].
    GpuResident,
}

/// A `helios serve` that runs the model instead of this process
/// ([`HeliosSettings::remote`]).
#[derive(Reflect, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeliosRemote {
    /// The server, e.g. `ws://gpu-box:7860`.
    pub url: String,
    /// The server's shared token, if it has one.
    pub token: Option<String>,
}

impl HeliosRemote {
    /// The server at `url`, without a token.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
        }
    }

    /// With the server's shared token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

impl std::fmt::Debug for HeliosRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: logs and inspectors show only whether there is one.
        f.debug_struct("HeliosRemote")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The plugin's configuration, a `Resource`.
///
/// [`HeliosPlugin`](crate::HeliosPlugin) inserts it only when the app does not have one yet.
/// Changing the model, backend, GPU sharing or [`HeliosSettings::generation`] restarts the worker
/// (and its streams); playback and scheduling fields apply live. Invalid values (a zero frame
/// size, fps, ring or queue capacity) are reported as a
/// [`HeliosWorkerError`](crate::HeliosWorkerError) carrying [`HeliosError::Settings`] and nothing
/// is started until they are fixed ([`HeliosSettings::validate`]).
#[derive(Resource, Reflect, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[reflect(Resource)]
#[serde(default)]
pub struct HeliosSettings {
    /// The diffusers-layout checkpoint folder; `None` = the embedded demo model
    /// ([`HeliosSettings::embedded_model_dir`]): cartoon NPC faces that follow the scene context.
    pub model_dir: Option<PathBuf>,
    /// The burn backend.
    pub backend: HeliosBackend,
    /// The DiT's precision (default: half on a GPU backend, f32 on the CPU).
    pub precision: crate::HeliosPrecision,
    /// How a wgpu backend shares the GPU with Bevy.
    pub gpu_sharing: GpuSharing,
    /// How frames reach the textures.
    pub upload: UploadPath,
    /// What every stream generates: frame size, steps per pyramid stage, guidance, seed (stream
    /// `n` uses `seed + n`), amplified first chunk, negative prompt, prompt tokens. `None` fields
    /// take the checkpoint's defaults (`[2, 2, 2]` steps and no CFG for Helios Distilled, 384x640
    /// frames, 512 prompt tokens). Sizes must be multiples of the checkpoint's size multiple (VAE
    /// factor x patch x 2 per extra pyramid stage: 16 for the demo model, 64 for Helios
    /// Distilled).
    /// In RON, a `generation: (...)` section replaces this whole field: what it leaves out takes
    /// the checkpoint's defaults.
    #[reflect(ignore)]
    pub generation: GenerationParams,
    /// Playback rate of the generated video (Helios: 24 fps).
    pub fps: f32,
    /// Frames each screen buffers at most; when the game stalls, the oldest frames are dropped
    /// (and counted) instead of queueing without bound.
    pub ring_capacity: usize,
    /// A stream asks the worker for its next chunk when it holds this many frames or fewer.
    pub low_water_frames: usize,
    /// Capacity of the command channel to the worker.
    pub command_queue: usize,
    /// Capacity of the result channel from the worker (chunks, progress, errors).
    pub result_queue: usize,
    /// Frame budget: at most this many screens get a new frame uploaded per tick (highest priority
    /// first); the others hold their frame one more tick.
    pub max_uploads_per_tick: usize,
    /// A new prompt is sent once the scene context has been stable this long (seconds).
    pub prompt_debounce_secs: f32,
    /// A prompt switch is interpolated over this many chunks (0 = switch at the next chunk).
    pub prompt_interpolation_chunks: usize,
    /// The template that turns a [`SceneContext`](crate::prompt::SceneContext) into a prompt.
    #[reflect(ignore)]
    pub template: PromptTemplate,
    /// Weight-only quantisation of the DiT's block weights: `Int8` stores one byte per weight and
    /// a float32 scale per 32 (about half the memory of bf16), for cards smaller than the model.
    #[reflect(ignore)]
    pub quantization: helios_model::dit::WeightQuantization,
    /// Keep the DiT's last N blocks in host memory and move each to the GPU only while it runs
    /// (layer offload, for a card too small for the model even quantised; slower). 0: none.
    pub offload_blocks: usize,
    /// Hold real time when the GPU cannot: when a chunk takes longer to make than it plays
    /// for, the stream's denoising steps per stage drop (the full-resolution stage first) and
    /// come back when there is headroom. The steps of the last chunk are in
    /// [`HeliosStream::steps`](crate::HeliosStream::steps). Applies to streams started after a
    /// change.
    pub adaptive_quality: bool,
    /// Run the model on a `helios serve` (a GPU box serving several game clients) instead of in
    /// this process: the same screens, messages and pacing, with frames arriving over a
    /// WebSocket. The backend, precision, GPU sharing and model folder are then the server's;
    /// frames arrive in host memory (the GPU upload path copies them through a staging buffer). When the server is gone the worker state is
    /// [`Reconnecting`](crate::HeliosWorkerState::Reconnecting) and the streams resume when it
    /// is back.
    pub remote: Option<HeliosRemote>,
}

impl Default for HeliosSettings {
    /// Sized for the embedded demo model: 128x128 frames, one step per pyramid stage (about a
    /// second per chunk on a CPU), 32 prompt tokens.
    fn default() -> Self {
        Self {
            model_dir: None,
            backend: HeliosBackend::NdArray,
            precision: crate::HeliosPrecision::Auto,
            gpu_sharing: GpuSharing::SharedDevice,
            upload: UploadPath::Cpu,
            generation: GenerationParams {
                width: Some(128),
                height: Some(128),
                seed: 42,
                ..GenerationParams::default()
            },
            fps: 24.0,
            ring_capacity: 72,
            low_water_frames: 36,
            command_queue: 64,
            result_queue: 8,
            max_uploads_per_tick: 8,
            prompt_debounce_secs: 0.25,
            prompt_interpolation_chunks: 2,
            template: PromptTemplate::default(),
            quantization: helios_model::dit::WeightQuantization::None,
            offload_blocks: 0,
            adaptive_quality: true,
            remote: None,
        }
    }
}

impl HeliosSettings {
    /// Settings for a real Helios checkpoint at `model_dir` (e.g. Helios-Distilled): every
    /// generation parameter at the checkpoint's default (for Distilled: 640x384 frames,
    /// `[2, 2, 2]` steps, no CFG, 512 prompt tokens) with the amplified first chunk, as the
    /// reference runs it. [`HeliosSettings::default`] is sized for the embedded demo model instead.
    pub fn real_checkpoint(model_dir: impl Into<PathBuf>) -> Self {
        Self {
            model_dir: Some(model_dir.into()),
            generation: GenerationParams {
                seed: 42,
                amplify_first_chunk: true,
                ..GenerationParams::default()
            },
            ..Self::default()
        }
    }

    /// The folder of the embedded demo model: compiled into `helios_model` and written once into
    /// the user's cache folder (`HELIOS_MODEL_DIR` names another), so a game that depends on this
    /// crate has it wherever it runs. The one place the plugin names it.
    pub fn embedded_model_dir() -> HeliosResult<PathBuf> {
        Ok(helios_model::embedded::default_model_dir()?)
    }

    /// Width and height of the generated frames (the pipeline's default, 640x384, where
    /// [`HeliosSettings::generation`] leaves them out). Use it to size a screen's image.
    pub fn frame_size(&self) -> (u32, u32) {
        let (h, w) = self.generation.size();
        let side = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        (side(w), side(h))
    }

    /// Parses settings from RON text (fields left out keep their defaults).
    pub fn from_ron_str(text: &str) -> Result<Self, ron::error::SpannedError> {
        ron::from_str(text)
    }

    /// Checks what the plugin itself needs (the model checks the rest of
    /// [`HeliosSettings::generation`] when a stream starts).
    pub fn validate(&self) -> HeliosResult<()> {
        let bad = |what: String| Err(HeliosError::Settings(what));
        let g = &self.generation;
        for (name, side) in [("width", g.width), ("height", g.height)] {
            if side == Some(0) {
                return bad(format!("generation.{name} is 0"));
            }
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return bad(format!("fps {} must be a positive number", self.fps));
        }
        for (name, value) in [
            ("ring_capacity", self.ring_capacity),
            ("command_queue", self.command_queue),
            ("result_queue", self.result_queue),
            ("max_uploads_per_tick", self.max_uploads_per_tick),
        ] {
            if value == 0 {
                return bad(format!("{name} is 0; it must be at least 1"));
            }
        }
        if !(self.prompt_debounce_secs.is_finite() && self.prompt_debounce_secs >= 0.0) {
            return bad(format!(
                "prompt_debounce_secs {} must be a number >= 0",
                self.prompt_debounce_secs
            ));
        }
        Ok(())
    }

    /// Whether going from `self` to `other` needs a new worker (model, backend or stream shape).
    pub(crate) fn engine_differs(&self, other: &Self) -> bool {
        self.model_dir != other.model_dir
            || self.remote != other.remote
            || self.backend != other.backend
            || self.precision != other.precision
            || self.gpu_sharing != other.gpu_sharing
            || self.quantization != other.quantization
            // The wgpu worker leaves frames on the GPU only for the GPU-resident upload.
            || (self.backend == HeliosBackend::Wgpu && self.upload != other.upload)
            || self.generation != other.generation
    }
}

/// [`HeliosSettings`] as an asset, loaded from `*.helios.ron` files.
///
/// Point the plugin at one with
/// [`HeliosPlugin::with_settings_asset`](crate::HeliosPlugin::with_settings_asset); whenever the
/// file is (re)loaded, its content replaces the [`HeliosSettings`] resource.
#[derive(Asset, TypePath, Clone, Debug)]
pub struct HeliosSettingsAsset(pub HeliosSettings);

/// Errors of the `*.helios.ron` settings asset loader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeliosSettingsLoaderError {
    /// The file could not be read.
    #[error("cannot read the settings file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not valid RON for [`HeliosSettings`].
    #[error("invalid settings RON: {0}")]
    Ron(#[from] ron::error::SpannedError),
}

/// Loads [`HeliosSettingsAsset`] from `*.helios.ron`.
#[derive(Default, TypePath)]
pub struct HeliosSettingsLoader;

impl AssetLoader for HeliosSettingsLoader {
    type Asset = HeliosSettingsAsset;
    type Settings = ();
    type Error = HeliosSettingsLoaderError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        _load_context: &mut LoadContext<'_>,
    ) -> Result<Self::Asset, Self::Error> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        Ok(HeliosSettingsAsset(ron::de::from_bytes(&bytes)?))
    }

    fn extensions(&self) -> &[&str] {
        &["helios.ron"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_ron_keeps_defaults() {
        let s = HeliosSettings::from_ron_str(
            "(generation: (width: Some(256), height: Some(160)), backend: Wgpu)",
        )
        .unwrap();
        assert_eq!(
            (s.frame_size(), s.backend),
            ((256, 160), HeliosBackend::Wgpu)
        );
        assert_eq!(
            s.generation.steps, None,
            "left out: the checkpoint's default"
        );
        assert_eq!(s.fps, 24.0);
        assert!(s.engine_differs(&HeliosSettings::default()));
        let mut t = HeliosSettings {
            fps: 12.0,
            ..HeliosSettings::default()
        };
        assert!(!t.engine_differs(&HeliosSettings::default()));
        t.generation.seed += 1;
        assert!(t.engine_differs(&HeliosSettings::default()));
    }

    #[test]
    fn invalid_settings_are_errors() {
        assert!(HeliosSettings::default().validate().is_ok());
        let cases = [
            HeliosSettings {
                fps: 0.0,
                ..default()
            },
            HeliosSettings {
                fps: f32::NAN,
                ..default()
            },
            HeliosSettings {
                ring_capacity: 0,
                ..default()
            },
            HeliosSettings {
                command_queue: 0,
                ..default()
            },
            HeliosSettings {
                generation: GenerationParams {
                    width: Some(0),
                    ..default()
                },
                ..default()
            },
        ];
        for s in cases {
            assert!(
                matches!(s.validate(), Err(HeliosError::Settings(_))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn real_checkpoint_leaves_generation_to_the_checkpoint() {
        let s = HeliosSettings::real_checkpoint("models/Helios-Distilled");
        let g = &s.generation;
        assert_eq!(
            (g.steps.as_ref(), g.guidance_scale, g.max_sequence_length),
            (None, None, None)
        );
        assert_eq!(s.frame_size(), (640, 384), "the pipeline's default size");
    }

    #[test]
    fn embedded_model_is_there() {
        assert!(
            HeliosSettings::embedded_model_dir()
                .unwrap()
                .join("model_index.json")
                .is_file()
        );
    }

    #[test]
    fn shipped_settings_asset_parses() {
        use std::path::Path;
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/settings/default.helios.ron");
        let text = std::fs::read_to_string(path).unwrap();
        let s = HeliosSettings::from_ron_str(&text).unwrap();
        assert_eq!(s.fps, 24.0);
        assert_eq!(
            s,
            HeliosSettings::default(),
            "the shipped file states the defaults"
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/settings/distilled.helios.ron");
        let text = std::fs::read_to_string(path).unwrap();
        let d = HeliosSettings::from_ron_str(&text).unwrap();
        let preset = HeliosSettings::real_checkpoint("models/Helios-Distilled");
        assert_eq!(
            d, preset,
            "the shipped file states the real-checkpoint preset"
        );
    }
}
