//! The panel's UI: plain functions over egui and the [`InspectorView`], no ECS access. What the
//! user does comes back as [`InspectorAction`]s; the plugin's systems apply them.

use bevy_egui::egui::{self, RichText};

use super::{InspectorAction, InspectorView, StreamView};
use crate::prompt::SceneContext;
use crate::screen::HeliosStreamStatus;

/// Width of the current-frame thumbnail, in points.
const THUMBNAIL_WIDTH: f32 = 144.0;

/// A field of [`SceneContext`] as the panel edits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SceneField {
    /// [`SceneContext::character`].
    Character,
    /// [`SceneContext::emotion`].
    Emotion,
    /// [`SceneContext::line`] (empty text is `None`).
    Line,
    /// [`SceneContext::lighting`].
    Lighting,
    /// [`SceneContext::mood`].
    Mood,
    /// [`SceneContext::framing`].
    Framing,
}

impl SceneField {
    /// Every field, in the panel's order.
    pub const ALL: [Self; 6] = [
        Self::Character,
        Self::Emotion,
        Self::Line,
        Self::Lighting,
        Self::Mood,
        Self::Framing,
    ];

    /// The field's label in the panel.
    pub fn label(self) -> &'static str {
        match self {
            Self::Character => "character",
            Self::Emotion => "emotion",
            Self::Line => "line",
            Self::Lighting => "lighting",
            Self::Mood => "mood",
            Self::Framing => "framing",
        }
    }

    /// The field's text in `ctx` (an absent line is empty).
    pub fn get(self, ctx: &SceneContext) -> &str {
        match self {
            Self::Character => &ctx.character,
            Self::Emotion => &ctx.emotion,
            Self::Line => ctx.line.as_deref().unwrap_or(""),
            Self::Lighting => &ctx.lighting,
            Self::Mood => &ctx.mood,
            Self::Framing => &ctx.framing,
        }
    }

    /// Sets the field in `ctx` to `text` (an empty line becomes `None`).
    pub fn set(self, ctx: &mut SceneContext, text: String) {
        match self {
            Self::Character => ctx.character = text,
            Self::Emotion => ctx.emotion = text,
            Self::Line => ctx.line = (!text.is_empty()).then_some(text),
            Self::Lighting => ctx.lighting = text,
            Self::Mood => ctx.mood = text,
            Self::Framing => ctx.framing = text,
        }
    }
}

/// The egui id of the text field editing `field` of the stream on `entity` (stable across
/// frames; tools and tests can focus it or find its rectangle with
/// [`egui::Context::read_response`]).
pub fn field_id(entity: bevy::prelude::Entity, field: SceneField) -> egui::Id {
    egui::Id::new(("helios_inspector_field", entity, field))
}

/// The inspector as a floating window in `ctx` (what [`HeliosInspectorPlugin`] draws each
/// frame): [`inspector_ui`] in a collapsible, scrolling window titled "Helios".
///
/// [`HeliosInspectorPlugin`]: super::HeliosInspectorPlugin
pub fn inspector_window(ctx: &egui::Context, view: &InspectorView) -> Vec<InspectorAction> {
    egui::Window::new("Helios")
        .default_width(380.0)
        .default_height(640.0)
        .default_pos([12.0, 12.0])
        .vscroll(true)
        .show(ctx, |ui| inspector_ui(ui, view))
        .and_then(|response| response.inner)
        .unwrap_or_default()
}

/// The panel's contents: the worker's state, then per stream its current frame, its
/// [`SceneContext`] fields (editable), the compacted prompt (and what the worker last
/// confirmed), its counters and its buttons. Returns what the user did this frame.
pub fn inspector_ui(ui: &mut egui::Ui, view: &InspectorView) -> Vec<InspectorAction> {
    let mut actions = Vec::new();
    ui.label(format!(
        "worker: {:?} · plays at {} frames/s",
        view.worker, view.playback_fps
    ));
    if view.streams.is_empty() {
        ui.weak("no HeliosScreen in the scene");
    }
    for stream in &view.streams {
        ui.separator();
        egui::CollapsingHeader::new(format!(
            "{} · {}",
            stream.label,
            status_text(&stream.stream.status)
        ))
        .id_salt(("helios_inspector_stream", stream.entity))
        .default_open(true)
        .show(ui, |ui| stream_ui(ui, stream, &mut actions));
    }
    actions
}

fn status_text(status: &HeliosStreamStatus) -> String {
    match status {
        HeliosStreamStatus::Failed(why) => format!("failed: {why}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// One stream's section: the current frame beside the buttons, the fields, the prompt, the
/// counters.
fn stream_ui(ui: &mut egui::Ui, view: &StreamView, actions: &mut Vec<InspectorAction>) {
    ui.horizontal(|ui| {
        if let Some(texture) = view.frame {
            let [w, h] = view.frame_size;
            let height = THUMBNAIL_WIDTH * h as f32 / w.max(1) as f32;
            ui.image(egui::load::SizedTexture::new(
                texture,
                [THUMBNAIL_WIDTH, height],
            ));
        }
        ui.vertical(|ui| buttons_ui(ui, view, actions));
    });
    match &view.context {
        Some(ctx) => {
            if let Some(context) = context_ui(ui, view.entity, ctx) {
                actions.push(InspectorAction::SetContext {
                    entity: view.entity,
                    context,
                });
            }
        }
        None => {
            ui.weak("no SceneContext: the screen's own prompt");
        }
    }
    prompt_ui(ui, view);
    counters_ui(ui, view);
}

/// Capture portrait, restart, stop.
fn buttons_ui(ui: &mut egui::Ui, view: &StreamView, actions: &mut Vec<InspectorAction>) {
    let capture = ui
        .add_enabled(
            view.portrait.is_some(),
            egui::Button::new("Capture portrait"),
        )
        .on_hover_text("Capture the portrait target and condition the stream on it")
        .on_disabled_hover_text("Give the entity a HeliosPortraitTarget to capture");
    if capture.clicked()
        && let Some(target) = &view.portrait
    {
        actions.push(InspectorAction::CapturePortrait {
            entity: view.entity,
            target: target.clone(),
        });
    }
    if ui
        .button("Restart stream")
        .on_hover_text("Drop the stream and start a new one")
        .clicked()
    {
        actions.push(InspectorAction::Restart(view.entity));
    }
    if ui.button("Stop").clicked() {
        actions.push(InspectorAction::Stop(view.entity));
    }
}

/// The editable fields; returns the edited context when a field changed this frame.
fn context_ui(
    ui: &mut egui::Ui,
    entity: bevy::prelude::Entity,
    ctx: &SceneContext,
) -> Option<SceneContext> {
    let mut edited: Option<SceneContext> = None;
    egui::Grid::new(("helios_inspector_scene", entity))
        .num_columns(2)
        .show(ui, |ui| {
            for field in SceneField::ALL {
                ui.label(field.label());
                let mut text = field.get(ctx).to_owned();
                let response = ui.add(
                    egui::TextEdit::singleline(&mut text)
                        .id(field_id(entity, field))
                        .desired_width(260.0),
                );
                if response.changed() {
                    field.set(edited.get_or_insert_with(|| ctx.clone()), text);
                }
                ui.end_row();
            }
        });
    edited
}

/// The compacted prompt, and where the worker stands with it.
fn prompt_ui(ui: &mut egui::Ui, view: &StreamView) {
    ui.label(RichText::new("prompt").strong());
    ui.label(&view.prompt);
    let applied = view.stream.applied_prompt.as_deref();
    let sent = view.stream.prompt.as_deref() == Some(view.prompt.as_str());
    let note = if view.prompt.is_empty() {
        "empty: nothing to send"
    } else if applied == Some(view.prompt.as_str()) {
        "applied by the worker"
    } else if sent && applied.is_none() {
        "the stream's first prompt (sent with its start)"
    } else if sent {
        "sent; the worker blends it in over the next chunks"
    } else {
        "not sent yet (debounced, or the stream is not running)"
    };
    ui.weak(note);
}

/// The stream's counters.
fn counters_ui(ui: &mut egui::Ui, view: &StreamView) {
    let s = &view.stream;
    let steps = s
        .steps
        .as_ref()
        .map_or_else(|| "-".to_owned(), |steps| format!("{steps:?}"));
    let generated = s
        .generation_fps()
        .map_or_else(|| "-".to_owned(), |fps| format!("{fps:.1} frames/s"));
    let rows: [(&str, String); 9] = [
        ("chunks", s.chunks.to_string()),
        (
            "chunk time",
            format!(
                "{:.2} s ({} frames)",
                s.last_chunk_seconds, s.last_chunk_frames
            ),
        ),
        ("generated at", generated),
        ("frames shown", s.frames_shown.to_string()),
        ("buffered", s.buffered.to_string()),
        ("underruns", s.underruns.to_string()),
        ("dropped frames", s.dropped_frames.to_string()),
        ("steps per stage", steps),
        (
            "priority",
            s.priority
                .map_or_else(|| "paused".to_owned(), |p| format!("{p:.2}")),
        ),
    ];
    egui::Grid::new(("helios_inspector_counters", view.entity))
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            for (name, value) in rows {
                ui.label(name);
                ui.monospace(value);
                ui.end_row();
            }
        });
}
