#!/usr/bin/env bash
# Sets up whatever is missing, then runs every check: formatting, lints and all the tests
# (unit, component and end-to-end against a real mosquitto started by the tests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash deploy/setup.sh --no-build
# One clean build, no edit loop: incremental caches would only double the disk it takes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "[test] cargo fmt --check"
cargo fmt --all --check
echo "[test] cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "[test] cargo test"
cargo test --workspace
echo "[test] fuzz targets, ${FUZZ_SECONDS:-15} s each (fuzz/run.sh)"
(cd fuzz && cargo fmt --check)
bash fuzz/run.sh
