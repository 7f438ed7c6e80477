"""INT8 static quantization of the YOLOv5s vehicle detector (QDQ, per-channel weights).

Usage: quantize_vehicles.py FLOAT.onnx INT8.onnx CLIP.mp4 [CLIP.mp4 ...]

Run by models/fetch.sh in its conversion environment, after models/resize_yolov5.py, on the
installed vehicle detector (320 px by default). The calibration is the plate detector's
(models/quantize.py, whose frame reading and calibration reader this script shares): frames of
the project's own generated clips and zoomed, relit crops of them, never the evaluation photos
(../shared/data); frames in between check the result.

Kept in float:
- the decode head models/resize_yolov5.py builds (`head/*`: sigmoid, cell grid, anchors, the
  final concat). Its output rows mix box coordinates, the objectness and the class scores,
  which one 8-bit scale cannot hold.
- the three detection convolutions (255 outputs each: 3 anchors x 85) whose logits the head
  turns into the vehicle's type, and the stem's first convolution, which reads the picture
  itself. With the head alone in float, 101 of 108 vehicles of the check frames agreed; with
  these too, 104 of 109, for 3% more time (models/vehicle_detector.md, "INT8").

The check: on the check frames the INT8 model must find the float model's vehicles (IoU >= 0.5
at the device's vehicle confidence, same COCO class) for at least MIN_AGREEMENT of the boxes
either finds, or the script fails and nothing is installed.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from quantize import Reader, frames, iou

VEHICLE_CONF = 0.35  # models.vehicle_confidence's default
VEHICLE_CLASSES = (2, 3, 5, 7)  # COCO car, motorcycle, bus, truck
MIN_AGREEMENT = 0.9


def detection_conv_nodes(model):
    """Names of the convolutions whose outputs the rebuilt head reads (255 channels each)."""
    head_inputs = {i for n in model.graph.node if n.name.startswith("head/") for i in n.input}
    out = [n.name for n in model.graph.node if n.op_type == "Conv" and n.output[0] in head_inputs]
    if len(out) != 3:
        sys.exit(
            f"quantize_vehicles.py: expected the three detection convolutions before the rebuilt "
            f"head, found {len(out)}: run models/resize_yolov5.py on the model first"
        )
    return out


def excluded_nodes(model):
    head = [n.name for n in model.graph.node if n.name.startswith("head/")]
    if not head:
        sys.exit("quantize_vehicles.py: no `head/*` nodes: not a model rebuilt by models/resize_yolov5.py")
    first_conv = next(n.name for n in model.graph.node if n.op_type == "Conv")
    return head + detection_conv_nodes(model) + [first_conv]


def vehicles(session, x):
    """The device's decode (crates/vision/src/yolo/decode.rs, decode_v5): objectness times the
    best class score, COCO vehicle classes only, class-aware NMS at 0.45."""
    rows = session.run(None, {session.get_inputs()[0].name: x})[0][0]  # [anchors, 85]
    cls = rows[:, 5:].argmax(axis=1)
    score = rows[:, 4] * rows[np.arange(len(rows)), 5 + cls]
    keep = (rows[:, 4] >= VEHICLE_CONF) & (score >= VEHICLE_CONF) & np.isin(cls, VEHICLE_CLASSES)
    found = []
    for i in np.argsort(-score):
        if not keep[i]:
            continue
        cx, cy, w, h = rows[i, :4]
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if all(c != cls[i] or iou(box, b) <= 0.45 for b, c in found):
            found.append((box, cls[i]))
    return found


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, dst, clips = sys.argv[1], sys.argv[2], sys.argv[3:]
    model = onnx.load(src)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    size = dims[2].dim_value
    if not size or size % 32 or dims[3].dim_value != size:
        sys.exit(f"quantize_vehicles.py: {src} does not take a square input of whole strides")
    excluded = excluded_nodes(model)
    calib, check = frames(clips, size)
    name = model.graph.input[0].name
    print(f"input {size}x{size}; calibration: {len(calib)} frames, check: {len(check)} frames from {len(clips)} clip(s)")
    print(f"kept in float ({len(excluded)} nodes): {' '.join(excluded)}")
    quantize_static(
        src,
        dst,
        Reader(name, calib),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.Percentile,
        nodes_to_exclude=excluded,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    f = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(dst, opts, providers=["CPUExecutionProvider"])
    total = agreed = 0
    for x in check:
        fv, qv = vehicles(f, x), vehicles(q, x)
        total += len(fv)
        agreed += sum(1 for a, c in fv if any(k == c and iou(a, b) >= 0.5 for b, k in qv))
        total += sum(1 for b, k in qv if all(k != c or iou(a, b) < 0.5 for a, c in fv))
    share = agreed / total if total else 0.0
    print(f"agreement on {len(check)} frames not used for calibration: {agreed} of {total} vehicles, same type ({share:.1%})")
    if total == 0 or share < MIN_AGREEMENT:
        sys.exit(f"quantize_vehicles.py: the INT8 model agrees on {agreed} of {total} vehicles, below {MIN_AGREEMENT:.0%}")


if __name__ == "__main__":
    main()
