"""Batch throughput: imgbot's pipeline vs the AWS recipe's sequential loop.

Both talk to the same fake Rekognition (real AWS JSON protocol over loopback,
100 ms latency per call) through boto3. The recipe's approach analyses one image
at a time: DetectLabels, DetectText, DetectModerationLabels one after another,
then a 0.1 s pause. imgbot runs the three calls concurrently per image and
several images at once, storing originals and results as it goes.

    python bench/batch.py [--images 200] [--latency 0.1] [--concurrency N (default: automatic, as shipped)]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bench.recipe import make_images, recipe  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.core.types import Source  # noqa: E402
from bot.wiring import build_core  # noqa: E402
from tests.fakes.rekognition import FakeRekognition  # noqa: E402


def imgbot(images: list[bytes], endpoint: str, concurrency: int | None, workdir: str) -> tuple[float, int]:
    os.environ["AWS_ENDPOINT_URL_REKOGNITION"] = endpoint
    settings = Settings(
        database_url=f"sqlite:///{workdir}/bench.db", storage_url=f"file://{workdir}/originals",
        analyzer="rekognition", concurrency=concurrency,
    )
    core = build_core(settings)
    items = [(data, Source.file(f"bench-{n}.jpg")) for n, data in enumerate(images)]
    started = time.perf_counter()
    results = core.ingest_many(items)
    seconds = time.perf_counter() - started
    core.database.dispose()
    return len(images) / seconds, sum(1 for r in results if r.outcome == "failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    images = make_images(args.images)
    with FakeRekognition(latency=args.latency) as fake, tempfile.TemporaryDirectory() as workdir:
        fast, failed = imgbot(images, fake.endpoint_url, args.concurrency, workdir)
        calls = fake.call_count()
        fake.reset()
        slow = recipe(images, fake.endpoint_url)

    print(f"images: {args.images}, fake Rekognition latency: {args.latency * 1000:.0f} ms per call")
    print(f"imgbot (concurrency {args.concurrency or 'automatic'}): {fast:.1f} images/s, {failed} failed, "
          f"{calls} API calls")
    print(f"recipe (sequential, 0.1 s pause):  {slow:.2f} images/s")
    print(f"speed-up: {fast / slow:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
