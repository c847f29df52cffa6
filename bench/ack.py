"""Ack latency of the Slack app under a burst, and proof that every image still gets its reply.

Three processes on loopback, so they do not share one interpreter's CPU:

* a fake Slack Web API (``tests/fakes/slack_api.py``) holding N image files;
* the app as ``imgbot serve`` builds it (``build_core`` + ``build_bot``, HTTP on a free
  port, a temporary SQLite database, in-memory storage and the scripted fake analyser);
* a sender that fires N signed ``file_share`` events at once (one connection each,
  released together by a barrier) and times each request until its response.

Prints p50/p95/p99/max of the ack latency (target: p99 < 100 ms) and how many of the N
messages got their threaded reply (must be all).

    python bench/ack.py [--events 200] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import statistics
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHANNEL = "C0BENCH001"


def run_fake_slack(count: int, setup: Any, control: Any) -> None:
    from tests.fakes.slack_api import FakeSlack
    from tests.images import make_image

    slack = FakeSlack().start()
    slack.add_channel(CHANNEL, "bench", members=["U0ALICE001"])
    messages = []
    for n in range(count):
        ts = f"{int(time.time())}.{n + 1:06d}"
        file = slack.add_file(make_image(size=(96, 96)), name=f"img{n}.png", channel=CHANNEL, ts=ts)
        messages.append((ts, file))
    setup.put({"api_url": slack.api_url, "token": slack.bot_token, "team_id": slack.team_id,
               "bot_user_id": slack.bot_user_id, "messages": messages})
    while True:
        command = control.recv()
        if command == "replies":
            threads = {c.params.get("thread_ts") for c in slack.calls_to("chat.postMessage")
                       if c.answer.get("ok") and c.params.get("channel") == CHANNEL}
            control.send(len(threads))
        elif command == "stop":
            slack.stop()
            control.send("stopped")
            return


def run_sender(port: int, envelopes: list[str], secret: str, results: Any) -> None:
    import http.client

    from tests.slack_helpers import signed_headers

    barrier = threading.Barrier(len(envelopes))
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def send(body: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        headers = signed_headers(body, "application/json", secret=secret)
        barrier.wait()
        started = time.perf_counter()
        conn.request("POST", "/slack/events", body=body.encode(), headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        conn.close()
        with lock:
            latencies.append(elapsed)
            statuses.append(response.status)

    threads = [threading.Thread(target=send, args=(body,)) for body in envelopes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"latencies": latencies, "statuses": statuses})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if os.environ.get("SWITCH"):
        sys.setswitchinterval(float(os.environ["SWITCH"]))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    from bot.config import Settings
    from bot.slack.app import build_bot
    from bot.storage.memory import MemoryStorage
    from bot.wiring import build_core
    from tests.fakes.analyzer import FakeAnalyzer
    from tests.slack_helpers import envelope, file_share_message

    ctx = mp.get_context("spawn")
    setup, results = ctx.Queue(), ctx.Queue()
    control, fake_end = ctx.Pipe()
    fake = ctx.Process(target=run_fake_slack, args=(args.events, setup, fake_end), daemon=True)
    fake.start()
    info = setup.get(timeout=60)

    secret = "bench-signing-secret"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/imgbot.db", storage_url=f"file://{tmp}/images",
                            slack_bot_token=info["token"], slack_signing_secret=secret,
                            slack_api_url=info["api_url"], annotate=True)
        analyzer = FakeAnalyzer()
        core = build_core(settings, storage=MemoryStorage(), analyzer_factory=lambda: analyzer)
        bot = build_bot(settings, core)
        bot.start()
        server = bot.http_server("127.0.0.1", 0).start()
        bodies = [json.dumps(envelope(file_share_message([file], channel=CHANNEL, ts=ts), team_id=info["team_id"],
                                      bot_user_id=info["bot_user_id"]))
                  for ts, file in info["messages"]]
        started = time.perf_counter()
        sender = ctx.Process(target=run_sender, args=(server.port, bodies, secret, results), daemon=True)
        sender.start()
        measured = results.get(timeout=args.timeout)
        sender.join()

        replied = 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            control.send("replies")
            replied = control.recv()
            if replied >= args.events:
                break
            time.sleep(0.25)
        total = time.perf_counter() - started

        server.stop()
        bot.stop()
        core.database.dispose()
    control.send("stop")
    control.recv()
    fake.join(timeout=10)

    latencies = [ms * 1000 for ms in measured["latencies"]]
    ok = sum(1 for status in measured["statuses"] if status == 200)
    print(f"events sent           {len(latencies)} in one burst ({ok} answered 200)")
    print(f"ack latency p50       {statistics.median(latencies):7.1f} ms")
    print(f"ack latency p95       {percentile(latencies, 95):7.1f} ms")
    print(f"ack latency p99       {percentile(latencies, 99):7.1f} ms   (target < 100 ms)")
    print(f"ack latency max       {max(latencies):7.1f} ms")
    print(f"threaded replies      {replied}/{args.events} in {total:.1f} s")
    good = ok == args.events and replied == args.events and percentile(latencies, 99) < 100
    print("result                " + ("PASS" if good else "FAIL"))
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
