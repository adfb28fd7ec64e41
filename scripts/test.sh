#!/usr/bin/env bash
# The test command of the README: installs what the suite needs on a fresh Debian/Ubuntu machine
# (software Vulkan for the wgpu backend and Bevy, the headers Bevy links against, ffmpeg for the
# .mp4 output test), then checks what a maintainer checks: formatting, clippy and rustdoc with
# warnings denied (every feature, CUDA included: it builds without CUDA installed), and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(mesa-vulkan-drivers libvulkan1 pkg-config libwayland-dev libxkbcommon-dev libudev-dev libasound2-dev ffmpeg)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step() { echo; echo "== $* =="; }

# One clean build, no incremental caches: they would more than double the target folder (each
# workspace crate is built for check, lib and test), and disk is what CI machines run short of.
export CARGO_INCREMENTAL=0

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test"
# On lavapipe (CPU Vulkan) autotuning every kernel shape costs more than it saves.
export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"
# Unit and integration tests, then doctests. The examples are not linked here (clippy above already
# compiled them, and tests/headless_capture.rs runs the headless example's code): each is one more
# Bevy binary of a few hundred MB. The root package's default `inspector` feature turns on
# bevy_helios's egui panel (and its test) in every workspace build.
cargo test --workspace --locked --tests "$@"
cargo test --workspace --locked --doc "$@"

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked
