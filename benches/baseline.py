#!/usr/bin/env python3
"""Python baseline of the recognition pipeline, for `anpr eval --baseline`.

Runs the same ONNX models as the device (plate detector, plate reader, vehicle detector) with
the Python onnxruntime package, one thread per session, and writes one JSON line per image in
the format of `anpr detect`:

  {"image", "width", "height", "plates": [{"text", "confidence", "box": [x, y, w, h], ...}],
   "vehicles": [{"class", "confidence", "box"}], "timings_ms": {...}}

The steps follow the straightforward way these models are used from Python: letterbox with
Pillow's bilinear resize, YOLO decoding and NMS in numpy, the plate crop grown by a small margin,
resized to height 48, BGR scaled to -1..1, greedy CTC decoding. `timings_ms.total` is the time
from decoded pixels to result, measured as `anpr eval` measures the Rust pipeline.

Usage: benches/baseline.sh PATH... (it prepares the venv and calls this script), or
       python3 benches/baseline.py --models models PATH... > baseline.jsonl
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

PAD = 114
NMS_IOU = 0.45
COCO_VEHICLES = {2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}


def session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def letterbox(img, size):
    w, h = img.size
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = Image.new("RGB", (size, size), (PAD, PAD, PAD))
    canvas.paste(img.resize((nw, nh), Image.BILINEAR), (pad_x, pad_y))
    x = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    return x, scale, pad_x, pad_y


def nms(boxes, scores, classes, iou):
    order = np.argsort(-scores)
    keep = []
    for i in order:
        ok = True
        for k in keep:
            if classes[k] != classes[i]:
                continue
            if box_iou(boxes[i], boxes[k]) > iou:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def box_iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class Yolo:
    def __init__(self, path, threads):
        self.sess = session(path, threads)
        inp = self.sess.get_inputs()[0]
        self.input = inp.name
        meta = self.sess.get_modelmeta().custom_metadata_map
        # A model exported with a free input size is run on the square of its training size,
        # as before: the baseline stays the straightforward square letterbox.
        if isinstance(inp.shape[2], int):
            self.size = inp.shape[2]
        else:
            self.size = max(int(v) for v in meta["imgsz"].strip("[]").split(","))
        self.v5 = meta.get("anpr.layout") == "yolov5"
        self.box_scale = self.size if meta.get("anpr.box_units") == "normalized" else 1.0

    def detect(self, img, min_score):
        w, h = img.size
        x, scale, pad_x, pad_y = letterbox(img, self.size)
        out = self.sess.run(None, {self.input: x})[0][0]
        if self.v5:
            obj = out[:, 4]
            cls = out[:, 5:]
            cid = cls.argmax(1)
            score = obj * cls[np.arange(len(cid)), cid]
            keep = (obj >= min_score) & (score >= min_score)
            cx, cy, bw, bh = (out[keep, :4] * self.box_scale).T
        else:
            cls = out[4:, :]
            cid = cls.argmax(0)
            score = cls[cid, np.arange(cls.shape[1])]
            keep = score >= min_score
            cx, cy, bw, bh = out[:4, keep]
        cid, score = cid[keep], score[keep]
        x0 = np.clip((cx - bw / 2 - pad_x) / scale, 0, w)
        y0 = np.clip((cy - bh / 2 - pad_y) / scale, 0, h)
        x1 = np.clip((cx + bw / 2 - pad_x) / scale, 0, w)
        y1 = np.clip((cy + bh / 2 - pad_y) / scale, 0, h)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], 1)
        ok = (boxes[:, 2] >= 1) & (boxes[:, 3] >= 1)
        boxes, score, cid = boxes[ok], score[ok], cid[ok]
        keep = nms(boxes, score, cid, NMS_IOU)
        return [(boxes[i], float(score[i]), int(cid[i])) for i in keep]


class Reader:
    HEIGHT, MIN_WIDTH, MAX_WIDTH = 48, 320, 960

    def __init__(self, path, threads):
        self.sess = session(path, threads)
        self.input = self.sess.get_inputs()[0].name
        meta = self.sess.get_modelmeta().custom_metadata_map
        self.dict = meta["character"].splitlines()
        classes = self.sess.get_outputs()[0].shape[-1]
        if isinstance(classes, int) and classes == len(self.dict) + 2:
            self.dict.append(" ")

    def read(self, img, box):
        x, y, w, h = box
        mx, my = w * 0.06, h * 0.12
        x0, y0 = max(0, int(x - mx)), max(0, int(y - my))
        x1 = max(x0 + 1, int(min(x + w + mx, img.size[0])))
        y1 = max(y0 + 1, int(min(y + h + my, img.size[1])))
        crop = img.crop((x0, y0, x1, y1))
        cw, ch = crop.size
        rw = min(max(int(np.ceil(self.HEIGHT * cw / ch)), 8), self.MAX_WIDTH)
        width = max(rw, self.MIN_WIDTH)
        pix = np.asarray(crop.resize((rw, self.HEIGHT), Image.BILINEAR), dtype=np.float32)
        t = np.zeros((1, 3, self.HEIGHT, width), dtype=np.float32)
        t[0, :, :, :rw] = pix[:, :, ::-1].transpose(2, 0, 1) / 127.5 - 1.0
        probs = self.sess.run(None, {self.input: t})[0][0]
        best = probs.argmax(1)
        text, confs, prev = [], [], -1
        for step, c in enumerate(best):
            if c != prev and c != 0 and c - 1 < len(self.dict):
                for ch_ in self.dict[c - 1]:
                    if ch_.isascii() and ch_.isalnum():
                        text.append(ch_.upper())
                        confs.append(float(probs[step, c]))
            prev = c
        conf = sum(confs) / len(confs) if confs else 0.0
        return "".join(text), conf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=os.path.join(os.path.dirname(__file__), "..", "models"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plate-confidence", type=float, default=0.35)
    ap.add_argument("--vehicle-confidence", type=float, default=0.35)
    ap.add_argument("--no-vehicles", action="store_true", help="skip the vehicle detector")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()

    models = a.models
    plates = Yolo(os.path.join(models, "plate_detector.onnx"), a.threads)
    reader = Reader(os.path.join(models, "plate_reader.onnx"), a.threads)
    vehicles = None
    vpath = os.path.join(models, "vehicle_detector.onnx")
    if not a.no_vehicles and os.path.isfile(vpath):
        vehicles = Yolo(vpath, a.threads)

    images = []
    for p in a.paths:
        if os.path.isdir(p):
            names = sorted(n for n in os.listdir(p) if n.lower().endswith((".jpg", ".jpeg", ".png")))
            images += [os.path.join(p, n) for n in names]
        else:
            images.append(p)
    failed = 0
    for i, path in enumerate(images):
        if i % 50 == 0:
            print(f"baseline: {i}/{len(images)} images", file=sys.stderr)
        try:
            img = Image.open(path).convert("RGB")
        except Exception as e:  # noqa: BLE001 - any decoding failure is reported per image
            failed += 1
            print(json.dumps({"image": path, "error": f"cannot decode image: {e}"}))
            continue
        t0 = time.perf_counter()
        found_vehicles = []
        if vehicles is not None:
            for box, score, cid in vehicles.detect(img, a.vehicle_confidence):
                if cid in COCO_VEHICLES:
                    found_vehicles.append({"class": COCO_VEHICLES[cid], "confidence": score,
                                           "box": [round(float(v)) for v in box]})
        t1 = time.perf_counter()
        dets = plates.detect(img, a.plate_confidence)
        t2 = time.perf_counter()
        found_plates = []
        for box, score, _ in dets:
            text, conf = reader.read(img, [float(v) for v in box])
            found_plates.append({"text": text, "confidence": conf, "detection_confidence": score,
                                 "box": [round(float(v)) for v in box]})
        t3 = time.perf_counter()
        print(json.dumps({
            "image": path, "width": img.size[0], "height": img.size[1],
            "plates": found_plates, "vehicles": found_vehicles,
            "timings_ms": {"vehicle": (t1 - t0) * 1e3, "plate_detect": (t2 - t1) * 1e3,
                           "plate_read": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3},
        }), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
