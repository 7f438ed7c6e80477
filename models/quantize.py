"""INT8 static quantization of the YOLOv8 plate detector (QDQ, per-channel weights).

Usage: quantize.py FLOAT.onnx INT8.onnx CLIP.mp4 [CLIP.mp4 ...]

Run by models/fetch.sh inside its isolated conversion environment (onnxruntime==1.31.1 from
the pinned wheel, onnx, ml_dtypes, sympy, opencv for reading the clips).

Calibration frames come from the project's own generated clips (`anpr make-demo`: the demo clip
and the road scene), never from the evaluation photos (../shared/data). Every CALIB_STEP-th frame
of every clip calibrates, and so does a zoomed, relit crop of each (plates larger in the
detector's input and other lighting than the clips show). Frames of the first clip in between
the calibration frames check the result: the quantized model must find the same plate boxes as
the float one (IoU >= 0.5 at the detector's plate confidence) on at least MIN_AGREEMENT of them,
or the script fails and nothing is installed.

The detection head's decode (everything of the last module after its final 1x1 convolutions:
the reshapes and concats, the DFL softmax and its convolution, the box arithmetic and the
class sigmoid) stays in float: quantized, its final concat of box pixels (0-640) with scores
(0-1) shares one scale and the scores collapse to zero.

Also kept in float, the layers where 8-bit activations moved boxes and scores most on the
generated check frames, for a sixth of the INT8 model's time: the first three modules (the stem
convolutions and the first C2f, at 320 and 160 px), the head's class branches (cv3, whose
scores decide which boxes are plates) and the last 1x1 convolution of each box branch (cv2,
the box distribution logits that place the box). Measured in models/plate_detector.md.
"""
import itertools
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization.calibrate import HistogramCalibrater
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

SIZE = 640
CALIB_STEP = 4  # one frame in this many calibrates
CHECK_OFFSET = 2  # frames CHECK_OFFSET after each calibration frame check agreement
MAX_CALIB = 96
SEED = 14  # the crops are drawn from a fixed seed, so a run is reproducible
PLATE_CONF = 0.35
MIN_AGREEMENT = 0.9


def letterbox(bgr, size=SIZE):
    """The device's letterbox (crates/vision/src/yolo/letterbox.rs): RGB, 0-1, centred on grey."""
    h, w = bgr.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    rgb = cv2.cvtColor(cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    out = np.full((size, size, 3), 114, np.uint8)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    out[oy : oy + nh, ox : ox + nw] = rgb
    return (out.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]


def frames(clips, size=SIZE):
    """Letterboxed calibration frames of every clip (and a zoomed, relit crop of each), and the
    check frames of the first clip between them."""
    calib, check = [], []
    for n, clip in enumerate(clips):
        cap = cv2.VideoCapture(clip)
        if not cap.isOpened():
            sys.exit(f"quantize.py: cannot read the calibration clip {clip}")
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if i % CALIB_STEP == 0:
                calib.append(letterbox(bgr, size))
            elif i % CALIB_STEP == CHECK_OFFSET and n == 0:
                check.append(letterbox(bgr, size))
            i += 1
        cap.release()
    if len(calib) < 16:
        sys.exit(f"quantize.py: only {len(calib)} calibration frames in {clips}; need 16 or more")
    if len(calib) > MAX_CALIB:
        calib = calib[:: -(-len(calib) // MAX_CALIB)]
    rng = np.random.default_rng(SEED)
    return calib + [crop(x, rng, size) for x in calib], check


def crop(x, rng, size=SIZE):
    """A random crop of a letterboxed frame's picture, 1/1.3 to 1/2.5 of its size, lit 0.6-1.3x
    plus -30 to 30 grey levels, letterboxed again."""
    img = (x[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)[:, :, ::-1]
    rows = np.where((img != 114).any(axis=(1, 2)))[0]
    img = img[rows.min() : rows.max() + 1]
    h, w = img.shape[:2]
    z = rng.uniform(1.3, 2.5)
    cw, ch = int(w / z), int(h / z)
    x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    part = img[y0 : y0 + ch, x0 : x0 + cw].astype(np.float32)
    part = np.clip(part * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30), 0, 255).astype(np.uint8)
    return letterbox(part, size)


def head_decode_nodes(model):
    """Names of the nodes of the last module (the detection head) that come after its final
    convolutions: every node of that module outside its cv2/cv3 convolution branches."""
    nodes = model.graph.node
    head = nodes[-1].name.split("/")[1]  # e.g. "model.22"
    out = [
        n.name
        for n in nodes
        if n.name.split("/")[1:2] == [head]
        and not any(part.startswith(("cv2", "cv3")) for part in n.name.split("/")[2:3])
    ]
    if not out or not any("dfl" in n for n in out):
        sys.exit(f"quantize.py: the detection head ({head}) has no DFL nodes: not a YOLOv8 graph?")
    return out


def sensitive_nodes(model, decode):
    """Nodes kept in float besides the decode: the first three modules, the head's cv3 class
    branches and the last convolution of each cv2 box branch."""
    nodes = [n.name for n in model.graph.node]
    head = decode[0].split("/")[1]
    out = [
        n
        for n in nodes
        if n not in decode
        and (
            n.split("/")[1:2] in (["model.0"], ["model.1"], ["model.2"])
            or n.startswith(f"/{head}/cv3.")
            or (n.startswith(f"/{head}/cv2.") and n.split("/")[3:4] == [n.split("/")[2] + ".2"])
        )
    ]
    if not any(n.startswith(f"/{head}/cv3.") for n in out) or not any("/model.0/" in n for n in out):
        sys.exit("quantize.py: no stem or class branch found by name: not a YOLOv8 graph?")
    return out


class Reader(CalibrationDataReader):
    def __init__(self, name, data):
        self.it = iter([{name: x} for x in data] if name else data)

    def get_next(self):
        return next(self.it, None)


# The histogram calibrator keeps every activation of every frame before it bins them (18 GB
# for this model and 72 frames); fed CHUNK frames at a time it merges its histograms instead.
CHUNK = 8
_collect = HistogramCalibrater.collect_data


def _collect_in_chunks(self, reader):
    while chunk := list(itertools.islice(iter(reader.get_next, None), CHUNK)):
        _collect(self, Reader(None, chunk))


HistogramCalibrater.collect_data = _collect_in_chunks


def boxes(session, x):
    out = session.run(None, {session.get_inputs()[0].name: x})[0][0]  # [5, 8400]
    keep = out[4] >= PLATE_CONF
    b = out[:4, keep].T
    s = out[4, keep]
    order = np.argsort(-s)
    kept = []
    for i in order:
        box = xyxy(b[i])
        if all(iou(box, k) < 0.45 for k in kept):
            kept.append(box)
    return kept


def xyxy(c):
    return (c[0] - c[2] / 2, c[1] - c[3] / 2, c[0] + c[2] / 2, c[1] + c[3] / 2)


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, dst, clips = sys.argv[1], sys.argv[2], sys.argv[3:]
    model = onnx.load(src)
    decode = head_decode_nodes(model)
    excluded = decode + sensitive_nodes(model, decode)
    calib, check = frames(clips)
    name = model.graph.input[0].name
    print(f"calibration: {len(calib)} frames, check: {len(check)} frames from {len(clips)} clip(s)")
    print(f"kept in float ({len(excluded)} nodes): {' '.join(excluded)}")
    quantize_static(
        src,
        dst,
        Reader(name, calib),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        # Percentile (99.999th) ranges: min-max ranges let a few outlying activations coarsen
        # the step for all, and the plate scores sag (86% of boxes agreed, against 93%).
        calibrate_method=CalibrationMethod.Percentile,
        nodes_to_exclude=excluded,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    f = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(dst, opts, providers=["CPUExecutionProvider"])
    total = agreed = 0
    for x in check:
        fb, qb = boxes(f, x), boxes(q, x)
        total += len(fb)
        agreed += sum(1 for a in fb if any(iou(a, b) >= 0.5 for b in qb))
        total += sum(1 for b in qb if all(iou(a, b) < 0.5 for a in fb))  # boxes only int8 finds
    share = agreed / total if total else 0.0
    print(f"agreement on {len(check)} frames not used for calibration: {agreed} of {total} boxes ({share:.1%})")
    if total == 0 or share < MIN_AGREEMENT:
        sys.exit(f"quantize.py: the INT8 model agrees on {agreed} of {total} boxes, below {MIN_AGREEMENT:.0%}")


if __name__ == "__main__":
    main()
