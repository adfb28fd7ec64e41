//! Every golden case of the fixture set, on NdArray and on wgpu (lavapipe where there is no GPU):
//! every check line must be OK at the case's own tolerances. One test binary, so the port's generic
//! pipeline is compiled once for both backends rather than once per case file.

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod pipeline;
mod scheduler;
mod text_encoder;
mod transformer;
mod vae;
