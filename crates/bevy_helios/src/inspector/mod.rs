//! In-editor prototyping (the `inspector` feature): [`HeliosInspectorPlugin`], an egui panel
//! listing the streams, editing each [`SceneContext`] field live, showing the compacted prompt,
//! the current frame, the stream's counters, and buttons to capture a portrait or restart or
//! stop a stream.
//!
//! The panel is three steps, each testable on its own:
//!
//! 1. a system fills the [`InspectorView`] resource from the ECS after
//!    [`HeliosSystems::Upload`] (plain data: one [`StreamView`] per [`HeliosScreen`]);
//! 2. [`inspector_ui`] (a plain function over an `egui::Ui` and that view) draws it and returns
//!    what the user did as [`InspectorAction`]s, which the plugin writes as messages;
//! 3. a system applies them before [`HeliosSystems::CollectContext`]: a new `SceneContext`
//!    (the prompt follows as for any change), a [`RequestPortraitCapture`], a [`StartStream`] or
//!    a [`StopStream`].
//!
//! ```no_run
//! # use bevy::prelude::*;
//! # use bevy_helios::prelude::*;
//! use bevy_helios::inspector::bevy_egui::EguiPlugin;
//!
//! App::new()
//!     .add_plugins(DefaultPlugins)
//!     .add_plugins(HeliosPlugin::default())
//!     .add_plugins((EguiPlugin::default(), HeliosInspectorPlugin::default()))
//!     .run();
//! ```

mod panel;

use bevy::prelude::*;
use bevy_egui::{
    EguiContexts, EguiPlugin, EguiPrimaryContextPass, EguiTextureHandle, EguiUserTextures, egui,
};

pub use bevy_egui;
pub use panel::{SceneField, field_id, inspector_ui, inspector_window};

use crate::messages::{RequestPortraitCapture, StartStream, StopStream};
use crate::plugin::{HeliosPlugin, HeliosSystems, HeliosWorkerState, HeliosWorkerStatus};
use crate::prompt::{SceneContext, compact_prompt};
use crate::screen::{HeliosScreen, HeliosStream};
use crate::settings::HeliosSettings;

/// The inspector panel: a "Helios" egui window over the primary egui context (see the module
/// documentation for its parts).
///
/// Needs [`HeliosPlugin`] and bevy_egui's [`EguiPlugin`] (the matching bevy_egui is re-exported
/// here as [`bevy_egui`]); without `EguiPlugin` (a headless app) nothing is drawn, but
/// [`InspectorView`] is still filled and [`InspectorAction`] messages still apply.
#[derive(Clone, Debug)]
pub struct HeliosInspectorPlugin {
    window: bool,
}

impl Default for HeliosInspectorPlugin {
    fn default() -> Self {
        Self { window: true }
    }
}

impl HeliosInspectorPlugin {
    /// With `false`, the plugin draws no window: show [`inspector_ui`] in your own egui layout
    /// and write the actions it returns as [`InspectorAction`] messages.
    #[must_use]
    pub fn with_window(mut self, window: bool) -> Self {
        self.window = window;
        self
    }
}

impl Plugin for HeliosInspectorPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<InspectorAction>()
            .init_resource::<InspectorView>()
            .add_systems(
                Update,
                (
                    apply_inspector_actions.before(HeliosSystems::CollectContext),
                    collect_inspector_view.after(HeliosSystems::Upload),
                ),
            );
        if self.window {
            app.add_systems(EguiPrimaryContextPass, draw_inspector);
        }
    }

    fn finish(&self, app: &mut App) {
        if !app.is_plugin_added::<HeliosPlugin>() {
            warn!("HeliosInspectorPlugin: add HeliosPlugin too; the panel has nothing to show");
        }
        if self.window && !app.is_plugin_added::<EguiPlugin>() {
            warn!(
                "HeliosInspectorPlugin: no EguiPlugin, so no panel is drawn (InspectorAction messages still apply)"
            );
        }
    }
}

/// The render target that the panel's "Capture portrait" button captures for the stream of this
/// entity (a portrait camera's `RenderTarget::Image`; see [`RequestPortraitCapture`]). Without
/// it, the button is disabled.
#[derive(Component, Clone, Debug)]
pub struct HeliosPortraitTarget(pub Handle<Image>);

/// What the user did in the panel; [`HeliosInspectorPlugin`] applies these messages in `Update`,
/// before [`HeliosSystems::CollectContext`].
#[derive(Message, Clone, Debug, PartialEq)]
pub enum InspectorAction {
    /// Replace the entity's [`SceneContext`] (the stream's prompt follows, debounced as usual).
    SetContext {
        /// The screen entity.
        entity: Entity,
        /// The edited context.
        context: SceneContext,
    },
    /// Capture `target` and condition the stream on it (a [`RequestPortraitCapture`]).
    CapturePortrait {
        /// The screen entity.
        entity: Entity,
        /// Its [`HeliosPortraitTarget`].
        target: Handle<Image>,
    },
    /// Drop the stream and start a new one (a [`StartStream`]).
    Restart(Entity),
    /// Stop the stream (a [`StopStream`]).
    Stop(Entity),
}

/// What the panel shows, rebuilt from the ECS every frame after [`HeliosSystems::Upload`].
#[derive(Resource, Clone, Debug, Default)]
pub struct InspectorView {
    /// Where the worker stands.
    pub worker: HeliosWorkerState,
    /// The playback rate ([`HeliosSettings::fps`]).
    pub playback_fps: f32,
    /// The streams, in entity order.
    pub streams: Vec<StreamView>,
}

/// One stream in the [`InspectorView`].
#[derive(Clone, Debug)]
pub struct StreamView {
    /// The screen entity.
    pub entity: Entity,
    /// Its `Name`, or the entity id.
    pub label: String,
    /// Its scene context, if it has one.
    pub context: Option<SceneContext>,
    /// The prompt the context compacts to with the settings' template (the screen's own prompt
    /// without a context): what the plugin sends once it is stable.
    pub prompt: String,
    /// The stream's state and counters (the prompt sent and the one the worker applied, chunk
    /// time, underruns, dropped frames, ...).
    pub stream: HeliosStream,
    /// The screen's image as an egui texture, when egui renders (`None` headless).
    pub frame: Option<egui::TextureId>,
    /// The frame size, in pixels.
    pub frame_size: [u32; 2],
    /// The [`HeliosPortraitTarget`] image, if the entity has one.
    pub portrait: Option<Handle<Image>>,
}

/// A screen as the view reads it.
type ScreenItem<'a> = (
    Entity,
    Option<&'a Name>,
    &'a HeliosScreen,
    &'a HeliosStream,
    Option<&'a SceneContext>,
    Option<&'a HeliosPortraitTarget>,
);

/// Rebuilds the [`InspectorView`]; registers each screen's image with egui once.
fn collect_inspector_view(
    settings: Res<HeliosSettings>,
    status: Res<HeliosWorkerStatus>,
    screens: Query<ScreenItem>,
    mut textures: Option<ResMut<EguiUserTextures>>,
    mut view: ResMut<InspectorView>,
) {
    let view = view.as_mut();
    view.worker = status.state.clone();
    view.playback_fps = settings.fps;
    view.streams.clear();
    let (width, height) = settings.frame_size();
    for (entity, name, screen, stream, context, portrait) in &screens {
        let frame = textures.as_mut().map(|textures| {
            // Looked up first: `add_image` would mark the resource changed every frame.
            textures
                .image_id(screen.image.id())
                .unwrap_or_else(|| textures.add_image(EguiTextureHandle::Weak(screen.image.id())))
        });
        view.streams.push(StreamView {
            entity,
            label: name.map_or_else(|| entity.to_string(), |name| name.as_str().to_owned()),
            context: context.cloned(),
            prompt: match context {
                Some(context) => compact_prompt(context, &settings.template),
                None => screen.prompt.clone(),
            },
            stream: stream.clone(),
            frame,
            frame_size: [width, height],
            portrait: portrait.map(|target| target.0.clone()),
        });
    }
    view.streams.sort_by_key(|stream| stream.entity);
}

/// Draws the window on the primary egui context and writes what the user did.
fn draw_inspector(
    mut contexts: EguiContexts,
    view: Res<InspectorView>,
    mut actions: MessageWriter<InspectorAction>,
) {
    let Ok(ctx) = contexts.ctx_mut() else { return };
    actions.write_batch(inspector_window(ctx, &view));
}

/// Applies the panel's actions to the components and as the plugin's messages.
fn apply_inspector_actions(
    mut actions: MessageReader<InspectorAction>,
    mut contexts: Query<&mut SceneContext>,
    mut starts: MessageWriter<StartStream>,
    mut stops: MessageWriter<StopStream>,
    mut captures: MessageWriter<RequestPortraitCapture>,
) {
    for action in actions.read() {
        match action {
            InspectorAction::SetContext { entity, context } => {
                if let Ok(mut current) = contexts.get_mut(*entity) {
                    current.set_if_neq(context.clone());
                }
            }
            InspectorAction::CapturePortrait { entity, target } => {
                captures.write(RequestPortraitCapture {
                    entity: *entity,
                    target: target.clone(),
                });
            }
            InspectorAction::Restart(entity) => {
                starts.write(StartStream(*entity));
            }
            InspectorAction::Stop(entity) => {
                stops.write(StopStream(*entity));
            }
        }
    }
}
