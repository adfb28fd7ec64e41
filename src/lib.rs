//! Shared code of the `bevy_helios` examples (`examples/`) and their tests: the command line,
//! the NPC-face scene, the headless capture app and the V2V scene.

pub mod headless;
pub mod scene;
pub mod v2v;

use std::path::PathBuf;

use bevy::app::PluginGroupBuilder;
use bevy::prelude::*;
use bevy_helios::prelude::*;
use clap::{Parser, ValueEnum};

/// Settings on the repository's random-weights tiny checkpoint (`crates/helios_model/embedded/
/// tiny-helios`, the model the port is checked against) at one step per pyramid stage and 32
/// prompt tokens: fast, for tests of the machinery rather than of what the video shows.
pub fn tiny_model_settings() -> HeliosSettings {
    let mut settings = HeliosSettings {
        model_dir: Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/helios_model/embedded/tiny-helios"
        ))),
        ..default()
    };
    settings.generation.steps = Some(vec![1, 1, 1]);
    settings.generation.max_sequence_length = Some(32);
    settings
}

/// Asset loading from this repository's `assets/` (the `*.helios.ron` settings files), whatever
/// the working directory.
pub fn asset_plugin() -> AssetPlugin {
    AssetPlugin {
        file_path: concat!(env!("CARGO_MANIFEST_DIR"), "/assets").into(),
        ..default()
    }
}

/// Bevy's default plugins (with a window) reading assets through [`asset_plugin`].
pub fn window_plugins() -> PluginGroupBuilder {
    DefaultPlugins.set(asset_plugin())
}

/// Backend flag.
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub enum BackendArg {
    /// CPU.
    #[default]
    Ndarray,
    /// GPU (wgpu, sharing Bevy's device).
    Wgpu,
}

/// Upload flag.
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub enum UploadArg {
    /// `Assets<Image>` write.
    #[default]
    Cpu,
    /// Render-world buffer → texture copy.
    Gpu,
}

/// Flags every example takes.
#[derive(Parser, Debug, Clone, Default)]
pub struct DemoArgs {
    /// A real Helios checkpoint folder (diffusers layout); default: the embedded demo model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The burn backend.
    #[arg(long, value_enum, default_value_t)]
    pub backend: BackendArg,
    /// How frames reach the texture.
    #[arg(long, value_enum, default_value_t)]
    pub upload: UploadArg,
    /// Frame width (default: 128 for the demo model, the checkpoint's with `--model`); a multiple
    /// of 64.
    #[arg(long)]
    pub width: Option<usize>,
    /// Frame height (default: 128 for the demo model, the checkpoint's with `--model`); a
    /// multiple of 64.
    #[arg(long)]
    pub height: Option<usize>,
}

impl DemoArgs {
    /// Settings from the flags: the tiny-model defaults, or
    /// [`HeliosSettings::real_checkpoint`] (the checkpoint's defaults: for Helios Distilled
    /// 640x384, `[2, 2, 2]` steps, 512 tokens) with `--model`.
    pub fn settings(&self) -> HeliosSettings {
        let mut s = match &self.model {
            Some(dir) => HeliosSettings::real_checkpoint(dir.clone()),
            None => HeliosSettings::default(),
        };
        s.backend = match self.backend {
            BackendArg::Ndarray => HeliosBackend::NdArray,
            BackendArg::Wgpu => HeliosBackend::Wgpu,
        };
        s.upload = match self.upload {
            UploadArg::Cpu => UploadPath::Cpu,
            UploadArg::Gpu => UploadPath::GpuResident,
        };
        if let Some(w) = self.width {
            s.generation.width = Some(w);
        }
        if let Some(h) = self.height {
            s.generation.height = Some(h);
        }
        s
    }
}
