"""Throughput against Rekognition's quota, on imgbot's defaults, at several latencies.

What a user gets from ``imgbot analyze campaign/`` with S3 storage and nothing else set:
each run starts the fakes in processes of their own (so they do not share imgbot's
interpreter), then runs the real ``imgbot analyze`` command with only the analyser,
storage and database set:

* a fake Rekognition (real AWS JSON protocol) that answers every call after
  ``--latency`` seconds and allows ``--tps`` calls per second for *each* API, answering
  ProvisionedThroughputExceededException above that, as AWS does; it answers as much as
  the real service does for a product banner (13 labels with parents, categories and
  3 boxes; 2 lines of text and their words), so imgbot stores what it would store;
* moto's S3 server, holding the originals (``IMGBOT_STORAGE=s3://…``).

With one call of each API per image the quota bound is ``--tps`` images/s. In the same
run, against the same fakes, a *reference*: a plain boto3 client that paces each API at
the quota and keeps 64 images in flight (S3 upload, then the three calls at once). The
recipe's one-at-a-time loop is timed on a sample too.

Prints per latency: imgbot's images/s and share of the bound (target >= 90 %), the
reference's, throttled calls, images failed and images lost (must be 0).

    python bench/throughput.py [--images 1000] [--latencies 0.15,0.5,1.0] [--tps 50]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import botocore.config  # noqa: E402

from bench.recipe import make_images, recipe  # noqa: E402

BUCKET = "imgbot-bench"


def serve_fake(latency: float, tps: float, endpoint: mp.Queue, stats: mp.Queue, stop: Any, reset: Any) -> None:  # type: ignore[type-arg]
    from tests.fakes.rekognition import FakeRekognition

    with FakeRekognition(latency=latency, tps_limit=tps, typical=True) as fake:
        endpoint.put(fake.endpoint_url)
        while not stop.is_set():
            if reset.wait(0.05):
                stats.put({"calls": dict(fake.calls), "throttled": dict(fake.throttled)})
                fake.reset()
                reset.clear()
        stats.put({"calls": dict(fake.calls), "throttled": dict(fake.throttled)})


class FakeRekognitionProcess:
    """The fake Rekognition in a process of its own; ``take_stats`` reads and clears its counters."""

    def __init__(self, latency: float, tps: float) -> None:
        ctx = mp.get_context("spawn")
        self._endpoint: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        self._stats: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        self._stop = ctx.Event()
        self._reset = ctx.Event()
        self._process = ctx.Process(target=serve_fake, daemon=True,
                                    args=(latency, tps, self._endpoint, self._stats, self._stop, self._reset))

    def __enter__(self) -> FakeRekognitionProcess:
        self._process.start()
        self.endpoint = str(self._endpoint.get(timeout=60))
        return self

    def take_stats(self) -> dict[str, dict[str, int]]:
        self._reset.set()
        result: dict[str, dict[str, int]] = self._stats.get(timeout=30)
        return result

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server in its own process; yields its URL once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_imgbot(folder: Path, workdir: Path, env: dict[str, str], settings: dict[str, str] | None = None
               ) -> tuple[float, int, int, str, float]:
    """``imgbot analyze FOLDER`` on defaults; returns (images/s as imgbot printed it, done, failed, summary,
    the CPU seconds the command used)."""
    database = workdir / "imgbot.db"
    command_env = {**env, "DATABASE_URL": f"sqlite:///{database}", "IMGBOT_STORAGE": f"s3://{BUCKET}/originals",
                   "IMGBOT_ANALYZER": "rekognition", **(settings or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = subprocess.run([sys.executable, "-m", "bot.cli", "analyze", "--no-progress", str(folder)],
                              env=command_env, cwd=workdir, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the fakes are still running: only imgbot's
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  (imgbot user {after.ru_utime - before.ru_utime:.1f} s, system {after.ru_stime - before.ru_stime:.1f} s, "
          f"context switches {after.ru_nvcsw - before.ru_nvcsw:,} voluntary, "
          f"{after.ru_nivcsw - before.ru_nivcsw:,} involuntary)")
    summary = next((line for line in reversed(finished.stdout.splitlines()) if line.startswith("analysed")), "")
    if not summary:
        raise RuntimeError(f"imgbot analyze printed no summary:\n{finished.stderr[-3000:]}")
    rate = float(re.search(r"\(([\d.]+) images/s", summary).group(1))  # type: ignore[union-attr]
    with sqlite3.connect(database) as db:
        done, failed = db.execute(
            "select sum(status = 'done'), sum(status = 'failed') from images").fetchone()
    return rate, int(done or 0), int(failed or 0), summary, cpu


class Pacer:
    """The reference's pacing: one call per API every 1/TPS seconds, reserved in arrival order."""

    def __init__(self, tps: float) -> None:
        self.interval = 1.0 / tps
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, api: str) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(api, now))
            self._next[api] = slot + self.interval
        time.sleep(max(0.0, slot - now))


def reference(images: list[bytes], tps: float, in_flight: int = 64) -> tuple[float, int]:
    """A plain client at the quota with ``in_flight`` images at once; returns (images/s, failed)."""
    config = botocore.config.Config(max_pool_connections=in_flight * 4, retries={"mode": "standard"})
    s3 = boto3.client("s3", config=config)
    rekognition = boto3.client("rekognition", config=config)
    pacer = Pacer(tps)
    calls = ThreadPoolExecutor(max_workers=in_flight * 3)
    failed = 0

    def one(n: int) -> None:
        nonlocal failed
        key = f"reference/{n}.jpg"
        try:
            s3.put_object(Bucket=BUCKET, Key=key, Body=images[n], ServerSideEncryption="AES256")
            image = {"S3Object": {"Bucket": BUCKET, "Name": key}}

            def call(api: str, method: Any, **kwargs: Any) -> Any:
                pacer.wait(api)
                return method(Image=image, **kwargs)

            futures = [calls.submit(call, "labels", rekognition.detect_labels, MinConfidence=50),
                       calls.submit(call, "text", rekognition.detect_text),
                       calls.submit(call, "moderation", rekognition.detect_moderation_labels, MinConfidence=50)]
            for future in futures:
                future.result()
        except Exception:
            failed += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        list(pool.map(one, range(len(images))))
    seconds = time.perf_counter() - started
    calls.shutdown()
    return len(images) / seconds, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latencies", default="0.15,0.5,1.0", help="seconds per call, comma-separated")
    parser.add_argument("--tps", type=float, default=50.0, help="the fake's quota per API (calls/s)")
    parser.add_argument("--recipe-sample", type=int, default=20, help="images timed for the recipe's loop")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="an imgbot setting other than its default (the figure is then not the product's)")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.setting)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGBOT_", "AWS_", "DATABASE_URL"))}
    env.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONPATH": str(ROOT)})
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})

    images = make_images(args.images, size=(320, 240), quality=80)
    print(f"{args.images} images; fake Rekognition allows {args.tps:.0f} calls/s per API, so the bound is "
          f"{args.tps:.0f} images/s; originals in S3 (moto); imgbot on its defaults"
          + (f" except {', '.join(args.setting)}" if settings else ""))
    with moto_s3() as s3_url, tempfile.TemporaryDirectory() as tmp:
        env["AWS_ENDPOINT_URL_S3"] = os.environ["AWS_ENDPOINT_URL_S3"] = s3_url
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        for latency in (float(text) for text in args.latencies.split(",")):
            with FakeRekognitionProcess(latency, args.tps) as fake:
                env["AWS_ENDPOINT_URL_REKOGNITION"] = os.environ["AWS_ENDPOINT_URL_REKOGNITION"] = fake.endpoint
                run = Path(tmp) / f"run-{latency}"
                folder = run / "campaign"
                folder.mkdir(parents=True)
                salt = f"{latency}".encode()  # distinct bytes per run: nothing is deduplicated across runs
                for n, data in enumerate(images):
                    (folder / f"shot-{n:05d}.jpg").write_bytes(data + salt)
                rate, done, failed, summary, cpu = run_imgbot(folder, run, env, settings)
                ours = fake.take_stats()
                ref_rate, ref_failed = reference([data + salt + b"r" for data in images], args.tps)
                theirs = fake.take_stats()
                recipe_rate = recipe(images[: args.recipe_sample], fake.endpoint) if args.recipe_sample else 0.0
            bound = args.tps
            throttled = sum(ours["throttled"].values())
            print(f"\nlatency {latency * 1000:.0f} ms per call")
            print(f"  imgbot    {rate:6.1f} images/s = {rate / bound * 100:5.1f} % of the bound (target >= 90 %); "
                  f"throttled calls {throttled} of {sum(ours['calls'].values())}; failed {failed}; "
                  f"lost {args.images - done - failed} (must be 0)")
            print(f"            {summary}")
            print(f"            imgbot's CPU: {cpu / max(done + failed, 1) * 1000:.0f} ms per image, so "
                  f"{cpu / max(done + failed, 1) * bound:.2f} of {os.cpu_count()} cores at the bound (the fakes "
                  f"run on the same cores)")
            print(f"  reference {ref_rate:6.1f} images/s = {ref_rate / bound * 100:5.1f} % (64 images in flight, "
                  f"paced at the quota); throttled {sum(theirs['throttled'].values())}; failed {ref_failed}")
            if recipe_rate:
                print(f"  recipe    {recipe_rate:6.2f} images/s (one at a time, a 0.1 s pause; "
                      f"{args.recipe_sample} images)")


if __name__ == "__main__":
    main()
