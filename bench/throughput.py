"""Throughput against Rekognition's quota: imgbot vs the recipe's one-at-a-time loop.

A fake Rekognition (real AWS JSON protocol, in its own process so it does not share
imgbot's CPU) answers every call after 150 ms and allows 50 calls per second for
*each* API, answering ProvisionedThroughputExceededException above that, as AWS does.
With one call of each API per image, the quota bound is 50 images/s.

Prints images/s for imgbot and for the recipe's approach (three calls one after
another, then a 0.1 s pause; measured on a sample), the fraction of the quota bound
imgbot reached (target >= 90 %), throttled calls, and images lost (must be 0).

    python bench/throughput.py [--images 1000] [--latency 0.15] [--tps 50] [--concurrency 24]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.recipe import make_images, recipe  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.core.types import Source  # noqa: E402
from bot.wiring import build_core  # noqa: E402
from db import models  # noqa: E402


def serve_fake(latency: float, tps: float, endpoint: mp.Queue, stats: mp.Queue, stop: mp.Event) -> None:  # type: ignore[type-arg]
    from tests.fakes.rekognition import FakeRekognition

    with FakeRekognition(latency=latency, tps_limit=tps) as fake:
        endpoint.put(fake.endpoint_url)
        while not stop.is_set():
            if not stop.wait(0.05):
                continue
        stats.put({"calls": dict(fake.calls), "throttled": dict(fake.throttled)})


class FakeInProcess:
    def __init__(self, latency: float, tps: float) -> None:
        ctx = mp.get_context("spawn")
        self._endpoint: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        self._stats: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        self._stop = ctx.Event()
        self._process = ctx.Process(target=serve_fake, args=(latency, tps, self._endpoint, self._stats, self._stop),
                                    daemon=True)

    def __enter__(self) -> str:
        self._process.start()
        return str(self._endpoint.get(timeout=30))

    def stats(self) -> dict[str, dict[str, int]]:
        self._stop.set()
        result: dict[str, dict[str, int]] = self._stats.get(timeout=30)
        self._process.join(timeout=10)
        return result

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--recipe-sample", type=int, default=40, help="images timed for the recipe's loop")
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)

    images = make_images(args.images, size=(320, 240), quality=80)
    with tempfile.TemporaryDirectory() as workdir:
        fake = FakeInProcess(args.latency, args.tps)
        with fake as endpoint:
            os.environ["AWS_ENDPOINT_URL_REKOGNITION"] = endpoint
            settings = Settings(
                database_url=f"sqlite:///{workdir}/bench.db", storage_url=f"file://{workdir}/originals",
                analyzer="rekognition", concurrency=args.concurrency, rekognition_tps=args.tps,
            )
            core = build_core(settings)
            items = [(data, Source.file(f"shot-{n}.jpg")) for n, data in enumerate(images)]
            started = time.perf_counter()
            results = core.ingest_many(items)
            seconds = time.perf_counter() - started
            with core.database.transaction() as session:
                done = session.execute(
                    select(func.count()).select_from(models.Image).where(models.Image.status == "done")
                ).scalar_one()
            core.database.dispose()
            recipe_rate = recipe(images[: args.recipe_sample], endpoint)
            stats = fake.stats()

    rate = args.images / seconds
    bound = args.tps  # one call of each API per image
    failed = sum(1 for r in results if r.outcome == "failed")
    throttled = sum(stats["throttled"].values())
    print(f"images: {args.images}; fake Rekognition: {args.latency * 1000:.0f} ms per call, "
          f"{args.tps:.0f} calls/s per API")
    print(f"imgbot (concurrency {args.concurrency}, IMGBOT_REKOGNITION_TPS={args.tps:.0f}): "
          f"{rate:.1f} images/s in {seconds:.1f} s")
    print(f"recipe (one at a time, 0.1 s pause; {args.recipe_sample} images): {recipe_rate:.2f} images/s")
    print(f"quota bound: {bound:.0f} images/s; reached {rate / bound * 100:.0f} % (target >= 90 %)")
    print(f"calls: {stats['calls']}; throttled: {throttled} {stats['throttled']}")
    print(f"failed: {failed}; lost (not done): {args.images - done} (must be 0)")


if __name__ == "__main__":
    main()
