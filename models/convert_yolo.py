"""Converts an Ultralytics YOLO checkpoint to ONNX (opset 17), free in height and width.

Usage: convert_yolo.py CHECKPOINT.pt OUTPUT.onnx
Run by models/fetch.sh inside its isolated conversion environment.

The input is `[1, 3, H, W]` with H and W free (multiples of 32), and the training size (640)
stays in the metadata (`imgsz`): the device letterboxes a frame to 640 on its longer side, as
in the square, but into the least rectangle of whole strides with one stride of grey margin
(`crates/vision/src/yolo/letterbox.rs`), so a 1280x720 frame costs 640x448 rather than
640x640. On a square input the outputs equal a fixed-size export's exactly.
"""
import shutil
import sys

from ultralytics import YOLO

src, dst = sys.argv[1], sys.argv[2]
model = YOLO(src)
print(f"classes: {model.names}")
path = model.export(format="onnx", imgsz=640, opset=17, simplify=True, dynamic=True)
shutil.move(path, dst)
