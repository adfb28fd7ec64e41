//! Procedural training data and calibrated "meaning" measurements for a small Helios demo model
//! that draws cartoon NPC faces.
//!
//! The demo model is trained on short 128x128 clips of animated cartoon faces whose expression,
//! speech and lighting follow a scene state, and is then tested on meaning: does the face it draws
//! show the emotion it was asked for, does the mouth move when the character speaks, does the light
//! have the asked-for colour and direction, does the character stay recognisable.
//!
//! - [`scene`]: the scene state ([`Emotion`], [`Lighting`]) and its words ([`SceneText`], field
//!   for field the plugin's scene context).
//! - [`character`]: seeded identities ([`Character`]).
//! - [`pose`] and [`render`](mod@render): the continuous face parameters ([`FacePose`]) and an
//!   anti-aliased signed-distance renderer ([`render()`]).
//! - [`clip`]: reproducible animated clips with the scene text of every frame ([`Clip`]).
//! - [`measure`](mod@measure) and [`classify`]: pixel-only measurements ([`measure()`],
//!   [`mouth_motion`], [`identity_distance`]) and an [`EmotionClassifier`] calibrated on the
//!   renderer alone (with blur and noise), never on a model's output, so they can judge the
//!   model's frames.

pub mod character;
pub mod classify;
pub mod clip;
pub mod measure;
pub mod pose;
pub mod render;
pub mod scene;

pub use character::{Character, HairStyle};
pub use classify::EmotionClassifier;
pub use clip::{
    Clip, DEFAULT_SIZE, FPS, FrameInfo, SYLLABLE_FRAMES, ScriptStep, Speech, mouth_beat,
    syllable_beats,
};
pub use measure::{FaceMeasurement, degrade, identity_distance, measure, mouth_motion};
pub use pose::FacePose;
pub use render::render;
pub use scene::{
    Emotion, FRAMING, LINES, LightDirection, Lighting, SceneText, Tint, UnknownEmotion,
};
