#!/usr/bin/env bash
# Runs the Python baseline (benches/baseline.py) on images or folders and writes its JSON lines
# to stdout, preparing its virtual environment on first use: the same onnxruntime 1.31.1 wheel
# the device takes its library from (pinned by sha256 in models/fetch.sh), numpy and Pillow.
# Idempotent; the venv lives in ${ANPR_CACHE:-~/.cache/anpr}/venv-baseline.
#
#   benches/baseline.sh ../shared/data/openalpr/eu ../shared/data/openalpr/us > baseline.jsonl
#   cargo run -p anpr -- eval --dataset ../shared/data/openalpr --baseline baseline.jsonl
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${ANPR_CACHE:-$HOME/.cache/anpr}"
venv="$cache/venv-baseline"
ORT_SHA="$(sed -n 's/^ORT_SHA="\(.*\)"$/\1/p' "$root/models/fetch.sh")"
REQS=(numpy==2.2.6 pillow==11.3.0)

if [ ! -f "$venv/.ready" ]; then
  bash "$root/models/fetch.sh" >&2
  whl=$(ls "$cache/wheels/$ORT_SHA"/*.whl | head -n1)
  echo "[baseline] preparing $venv (onnxruntime from $whl, ${REQS[*]})" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$whl" "${REQS[@]}" >&2
  touch "$venv/.ready"
fi
exec "$venv/bin/python" "$root/benches/baseline.py" --models "$root/models" "$@"
