"""Rebuilds the converted YOLOv5s vehicle detector for another square input size.

Usage: resize_yolov5.py VEHICLE_640.onnx OUTPUT.onnx SIZE CHECK_CLIP.mp4

Run by models/fetch.sh in its conversion environment (onnx, onnxruntime, numpy, opencv), right
after models/convert_tfjs_yolov5.py. The backbone and neck are convolutions, pooling with fixed
padding and resizes by scale, so they work at any side that is a multiple of 32; the TF.js
export's detection head, though, bakes the 640 px input into constants (the reshapes to 80x80,
40x40 and 20x20 cells, the cell grids, the anchors divided by 640). The graph is cut at the
outputs of the three detection convolutions (255 channels: 3 anchors x 85) and the head is
built again for SIZE with the same arithmetic, in the same order:

    s = sigmoid(conv), per level (stride 8/16/32) and anchor
    xy = (2 s_xy + cell - 0.5) * stride / SIZE
    wh = (2 s_wh)^2 * anchor / SIZE
    output row = xy, wh, objectness, 80 class scores; rows anchor by anchor, cells row by row

so the output keeps its name (`tf_detect`), its layout ([1, anchors, 85], boxes 0-1 of the
input) and the metadata the loader reads (anpr.layout = yolov5, anpr.box_units = normalized).

Before anything is written, the head built for 640 is checked against the original model on
frames of CHECK_CLIP (the generated demo clip): the outputs must agree to MAX_DIFF, or the
script fails and nothing is installed.
"""
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

# Anchors (pixels of the input) and strides of the three levels, P3/P4/P5 (YOLOv5s, COCO).
ANCHORS = [
    [(10, 13), (16, 30), (33, 23)],
    [(30, 61), (62, 45), (59, 119)],
    [(116, 90), (156, 198), (373, 326)],
]
STRIDES = [8, 16, 32]
# The detection convolutions of P3/P4/P5 read 128, 256 and 512 channels.
HEAD_IN_CHANNELS = [128, 256, 512]
OUTPUTS = 85  # x, y, w, h, objectness, 80 COCO classes
MAX_DIFF = 1e-4
CHECK_FRAMES = 4


def detection_convs(model):
    """Output names of the three detection convolutions, ordered P3, P4, P5."""
    weights = {i.name: i for i in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights:
            continue
        dims = list(weights[node.input[1]].dims)
        if dims[0] == 3 * OUTPUTS and dims[1] in HEAD_IN_CHANNELS:
            found[dims[1]] = node.output[0]
    if sorted(found) != HEAD_IN_CHANNELS:
        sys.exit(
            "resize_yolov5.py: the model does not have the three YOLOv5s detection convolutions "
            f"(255 outputs from 128/256/512 channels); found {sorted(found)}"
        )
    return [found[c] for c in HEAD_IN_CHANNELS]


def needed_nodes(graph, outputs):
    """The nodes the given tensors depend on, in their original (topological) order."""
    producer = {o: n for n in graph.node for o in n.output}
    keep, todo = set(), list(outputs)
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or id(node) in keep:
            continue
        keep.add(id(node))
        todo.extend(node.input)
    return [n for n in graph.node if id(n) in keep]


def build(model, size):
    """The model with its input set to [1, 3, size, size] and the head rebuilt for size."""
    if size % 32 or size < 64:
        sys.exit(f"resize_yolov5.py: the input side must be a multiple of 32 (64 or more), not {size}")
    g = model.graph
    convs = detection_convs(model)
    body = needed_nodes(g, convs)
    nodes, consts = [], []

    def const(name, array):
        consts.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    const("head/two", np.array(2.0, np.float32))
    const("head/xy_start", np.array([0], np.int64))
    const("head/wh_start", np.array([2], np.int64))
    const("head/rest_start", np.array([4], np.int64))
    const("head/rest_end", np.array([OUTPUTS], np.int64))
    const("head/last_axis", np.array([3], np.int64))
    levels = []
    for level, (conv, stride, anchors) in enumerate(zip(convs, STRIDES, ANCHORS)):
        n = size // stride
        p = f"head/p{level + 3}"
        # [1, 255, ny, nx] -> [1, 3, 85, ny*nx] -> [1, 3, ny*nx, 85]: channel = anchor * 85 + k
        split = const(f"{p}/split", np.array([1, 3, OUTPUTS, n * n], np.int64))
        x = node("Reshape", [conv, split], f"{p}/split_anchors")
        x = node("Transpose", [x], f"{p}/rows", perm=[0, 1, 3, 2])
        s = node("Sigmoid", [x], f"{p}/sigmoid")
        xy = node("Slice", [s, "head/xy_start", "head/wh_start", "head/last_axis"], f"{p}/xy")
        wh = node("Slice", [s, "head/wh_start", "head/rest_start", "head/last_axis"], f"{p}/wh")
        rest = node("Slice", [s, "head/rest_start", "head/rest_end", "head/last_axis"], f"{p}/scores")
        # cell offsets minus 0.5, x fastest: row i is cell (i % n, i // n)
        cells = np.arange(n, dtype=np.float32)
        gy, gx = np.meshgrid(cells, cells, indexing="ij")
        grid = np.stack([gx.ravel(), gy.ravel()], axis=-1).reshape(1, 1, n * n, 2) - np.float32(0.5)
        xy = node("Mul", [xy, "head/two"], f"{p}/xy_twice")
        xy = node("Add", [xy, const(f"{p}/grid", grid.astype(np.float32))], f"{p}/xy_cells")
        xy = node("Mul", [xy, const(f"{p}/stride", np.full((1, 2), stride / size, np.float32))], f"{p}/xy_norm")
        wh = node("Mul", [wh, "head/two"], f"{p}/wh_twice")
        wh = node("Mul", [wh, wh], f"{p}/wh_squared")
        anchor = (np.array(anchors, np.float32) / np.float32(size)).reshape(1, 3, 1, 2)
        wh = node("Mul", [wh, const(f"{p}/anchors", anchor.astype(np.float32))], f"{p}/wh_norm")
        out = node("Concat", [xy, wh, rest], f"{p}/rows_decoded", axis=3)
        flat = const(f"{p}/flat", np.array([1, 3 * n * n, OUTPUTS], np.int64))
        levels.append(node("Reshape", [out, flat], f"{p}/flat_rows"))
    nodes.append(helper.make_node("Concat", levels, ["tf_detect"], name="head/tf_detect", axis=1))

    used = {i for n in body for i in n.input}
    inits = [i for i in g.initializer if i.name in used] + consts
    rows = 3 * sum((size // s) ** 2 for s in STRIDES)
    graph = helper.make_graph(
        body + nodes,
        g.name,
        [helper.make_tensor_value_info(g.input[0].name, TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("tf_detect", TensorProto.FLOAT, [1, rows, OUTPUTS])],
        inits,
    )
    out = helper.make_model(graph, opset_imports=model.opset_import, producer_name="anpr resize_yolov5.py")
    out.ir_version = model.ir_version
    for p in model.metadata_props:
        out.metadata_props.add(key=p.key, value=p.value)
    out.metadata_props.add(key="anpr.input_size", value=str(size))
    out.metadata_props.add(
        key="anpr.head",
        value=f"decode head rebuilt for {size}x{size} by models/resize_yolov5.py",
    )
    onnx.checker.check_model(out)
    return out


def letterbox(bgr, size):
    """The device's letterbox (crates/vision/src/yolo/letterbox.rs): RGB, 0-1, centred on grey."""
    h, w = bgr.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    rgb = cv2.cvtColor(cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    out = np.full((size, size, 3), 114, np.uint8)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    out[oy : oy + nh, ox : ox + nw] = rgb
    return (out.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]


def clip_frames(path, count):
    cap = cv2.VideoCapture(path)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    want = {total * (i + 1) // (count + 1) for i in range(count)}
    frames, i = [], 0
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        if i in want:
            frames.append(bgr)
        i += 1
    cap.release()
    if not frames:
        sys.exit(f"resize_yolov5.py: cannot read frames from the check clip {path}")
    return frames


def session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def check_rebuild_exact(original, frames):
    """The head rebuilt for 640 must give the original model's output (the proof the rebuild is
    the same decode): fails the script otherwise."""
    size = original.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    rebuilt = build(original, size)
    a, b = session(original), session(rebuilt)
    name = original.graph.input[0].name
    worst = 0.0
    for bgr in frames:
        x = letterbox(bgr, size)
        ya = a.run(["tf_detect"], {name: x})[0]
        yb = b.run(["tf_detect"], {name: x})[0]
        if ya.shape != yb.shape:
            sys.exit(f"resize_yolov5.py: rebuilt head gives {yb.shape}, the original {ya.shape}")
        worst = max(worst, float(np.abs(ya - yb).max()))
    if not worst <= MAX_DIFF:
        sys.exit(f"resize_yolov5.py: the head rebuilt for {size} differs from the original by {worst:g} (> {MAX_DIFF:g})")
    print(f"rebuilt head at {size} matches the original: max abs diff {worst:.3g} over {len(frames)} frames")


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: resize_yolov5.py VEHICLE_640.onnx OUTPUT.onnx SIZE CHECK_CLIP.mp4")
    src, dst, size, clip = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    original = onnx.load(src)
    frames = clip_frames(clip, CHECK_FRAMES)
    check_rebuild_exact(original, frames)
    model = build(original, size)
    # The resized model must run and give the declared output shape.
    y = session(model).run(["tf_detect"], {original.graph.input[0].name: letterbox(frames[0], size)})[0]
    rows = 3 * sum((size // s) ** 2 for s in STRIDES)
    if y.shape != (1, rows, OUTPUTS):
        sys.exit(f"resize_yolov5.py: the model at {size} gives {y.shape}, expected (1, {rows}, {OUTPUTS})")
    onnx.save(model, dst)
    print(f"wrote {dst} (input {size}x{size}, output [1, {rows}, {OUTPUTS}])")


if __name__ == "__main__":
    main()
