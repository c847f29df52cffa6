"""What one throttle does to the rate: botocore's adaptive mode vs imgbot's per-API pacing.

Three APIs are called at 50 calls/s each for ``--seconds`` seconds against the fake
Rekognition (150 ms per call, no quota of its own). One DetectText call is answered
ThrottlingException after ``--throttle-at`` seconds, once. Printed: calls per second of each
API, second by second, for

* **adaptive**: a boto3 client in botocore's adaptive retry mode, the calls paced at 50/s per
  API by a plain scheduler (what imgbot did before): botocore's one limiter per *client*
  measures the client's whole send rate and, after the throttle, caps it below that;
* **imgbot**: the Rekognition analyser's calls (standard retries; ``bot.ratelimit`` paces each
  API and slows only the throttled one, recovering over 5 s).

    python bench/after_throttle.py [--seconds 14] [--throttle-at 4] [--tps 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import botocore.config  # noqa: E402

from bot.analyzers.rekognition import RekognitionAnalyzer  # noqa: E402
from bot.aws import make_client  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.ratelimit import RateLimiter  # noqa: E402
from tests.fakes.rekognition import FakeRekognition  # noqa: E402

APIS = {"DetectLabels": "detect_labels", "DetectText": "detect_text", "DetectModerationLabels":
        "detect_moderation_labels"}
IMAGE = {"S3Object": {"Bucket": "bench", "Name": "photo.jpg"}}


def drive(call: Any, seconds: float, tps: float, throttle_at: float, fake: FakeRekognition,
          paced_by_caller: bool) -> dict[str, Counter[int]]:
    """Issue calls of each API for ``seconds``; return completions per API per whole second."""
    done: dict[str, Counter[int]] = {api: Counter() for api in APIS}
    lock = threading.Lock()
    started = time.monotonic()
    pools = {api: ThreadPoolExecutor(max_workers=32) for api in APIS}  # one per API: none starves another

    def one(api: str) -> None:
        try:
            call(api)
        except Exception:
            return
        with lock:
            done[api][int(time.monotonic() - started)] += 1

    def schedule(api: str) -> None:
        n = 0
        while time.monotonic() - started < seconds:
            if paced_by_caller:
                due = started + n / tps
                time.sleep(max(0.0, due - time.monotonic()))
            pools[api].submit(one, api)
            n += 1
            if not paced_by_caller:
                while pools[api]._work_queue.qsize() > 8:  # noqa: SLF001 (keep a short backlog, no more)
                    time.sleep(0.002)

    def throttle_once() -> None:
        time.sleep(throttle_at)
        fake.fail_next("DetectText", "ThrottlingException", times=1)

    threads = [threading.Thread(target=schedule, args=(api,)) for api in APIS]
    threads.append(threading.Thread(target=throttle_once))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for pool in pools.values():
        pool.shutdown(wait=True)
    return done


def show(name: str, done: dict[str, Counter[int]], seconds: int) -> None:
    print(f"\n{name}: calls completed per second")
    print("  second " + " ".join(f"{s:>4}" for s in range(seconds)))
    for api, counts in done.items():
        print(f"  {api[6:]:<16}"[:9] + " ".join(f"{counts.get(s, 0):>4}" for s in range(seconds)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=14.0)
    parser.add_argument("--throttle-at", type=float, default=4.0)
    parser.add_argument("--tps", type=float, default=50.0)
    args = parser.parse_args()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    with FakeRekognition(latency=0.15) as fake:
        os.environ["AWS_ENDPOINT_URL_REKOGNITION"] = fake.endpoint_url
        adaptive = boto3.client("rekognition", config=botocore.config.Config(
            retries={"mode": "adaptive", "max_attempts": 8}, max_pool_connections=128))
        before = drive(lambda api: getattr(adaptive, APIS[api])(Image=IMAGE), args.seconds, args.tps,
                       args.throttle_at, fake, paced_by_caller=True)
        analyzer = RekognitionAnalyzer(make_client("rekognition", Settings(concurrency=32), retry_mode="standard"),
                                       faces=False, limiter=RateLimiter(args.tps))
        after = drive(lambda api: analyzer.call(api, {"Image": IMAGE}), args.seconds, args.tps, args.throttle_at,
                      fake, paced_by_caller=False)
        analyzer.close()
    whole = int(args.seconds)
    print(f"{args.tps:.0f} calls/s per API asked; one DetectText throttle at {args.throttle_at:.0f} s")
    show("botocore adaptive mode (before)", before, whole)
    show("imgbot pacing, standard retries (now)", after, whole)


if __name__ == "__main__":
    main()
