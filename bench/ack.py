"""Ack latency of the Slack app under a burst, and proof that every image still gets its reply.

Three processes on loopback, so they do not share one interpreter's CPU:

* a fake Slack Web API (``tests/fakes/slack_api.py``) holding N image files;
* the app run by ``bot.slack.app.serve`` exactly as ``imgbot serve`` runs it (its edge process
  on a free port in front of the Bolt app), on a temporary SQLite database, in-memory storage
  and the scripted fake analyser;
* a sender that fires N signed ``file_share`` events at once (one connection each, opened
  beforehand, all requests written in one go from one event loop) and times each request
  until its response has been read.

Prints p50/p95/p99/max of the ack latency (target: p99 < 100 ms) and how many of the N
messages got their threaded reply (must be all).

    python bench/ack.py [--events 200] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import queue
import statistics
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
    """One event loop, one connection per event, all requests written at once; each timed to its response."""
    import asyncio

    from tests.slack_helpers import signed_headers

    async def burst() -> dict[str, list[Any]]:
        raws = []
        for body in envelopes:
            headers = signed_headers(body, "application/json", secret=secret)
            head = "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
                f"{name}: {value}\r\n" for name, value in headers.items())
            raws.append(f"{head}Content-Length: {len(body.encode())}\r\n\r\n".encode() + body.encode())
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in raws]
        latencies = [0.0] * len(raws)
        statuses = [0] * len(raws)

        async def one(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> None:
            started = time.perf_counter()
            writer.write(raw)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies[index] = time.perf_counter() - started
            statuses[index] = int(status_line.split()[1])
            writer.close()

        await asyncio.gather(*(one(i, reader, writer, raw)
                               for i, ((reader, writer), raw) in enumerate(zip(connections, raws, strict=True))))
        return {"latencies": latencies, "statuses": statuses}

    results.put(asyncio.run(burst()))


def ctx_queue() -> queue.Queue[str]:
    return queue.Queue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    from bot.config import Settings
    from bot.slack.app import serve
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
        stop, ready = threading.Event(), ctx_queue()
        runner = threading.Thread(target=serve, args=(settings.replace(port=0), core),
                                  kwargs={"host": "127.0.0.1", "stop": stop, "ready": ready.put}, daemon=True)
        runner.start()
        port = json.loads(ready.get(timeout=60))["port"]
        bodies = [json.dumps(envelope(file_share_message([file], channel=CHANNEL, ts=ts), team_id=info["team_id"],
                                      bot_user_id=info["bot_user_id"]))
                  for ts, file in info["messages"]]
        started = time.perf_counter()
        sender = ctx.Process(target=run_sender, args=(port, bodies, secret, results), daemon=True)
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

        stop.set()
        runner.join(timeout=30)
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
