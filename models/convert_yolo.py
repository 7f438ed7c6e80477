"""Converts an Ultralytics YOLO checkpoint to ONNX (fixed 640x640 input, opset 17).

Usage: convert_yolo.py CHECKPOINT.pt OUTPUT.onnx
Run by models/fetch.sh inside its isolated conversion environment.
"""
import shutil
import sys

from ultralytics import YOLO

src, dst = sys.argv[1], sys.argv[2]
model = YOLO(src)
print(f"classes: {model.names}")
path = model.export(format="onnx", imgsz=640, opset=17, simplify=True, dynamic=False)
shutil.move(path, dst)
