"""The edge: a small process in front of the Bolt app that answers Slack at once.

    Slack ──HTTP──► edge ($PORT, its own process) ──HTTP, loopback──► Bolt app (threaded adapter)
                    ├─ verified Events API delivery: written to the inbox, 200, then forwarded
                    └─ anything else (slash commands, clicks, url_verification, bad signatures,
                       /healthz): proxied, and the app's answer is relayed

Why a process: Slack wants its ack within 3 s, and ``bench/ack.py`` wants p99 < 100 ms for a
burst of 200 events. In one Python process the acks share the interpreter lock with the
work they start (claims, downloads, Pillow, SQLAlchemy), and a CPU-bound thread holds the
lock for up to 5 ms at a time, so a burst's acks queue behind it. The edge does no work of
its own: one event loop parses HTTP, checks the signature with the signing secret (as
Bolt's ``RequestVerification`` does: ``v0=`` HMAC-SHA256 of ``v0:{ts}:{body}``, at most
five minutes old), answers, and hands the request on unchanged, so the app verifies it
again and behaves exactly as when Slack calls it directly. Forwarding retries while the
app is briefly unreachable.

Slack never resends an acknowledged event, so before the 200 each delivery is written
to the inbox table (``bot/slack/inbox.py``): one writer thread commits whatever arrived
while the previous commit ran (group commit), so a burst costs a few commits, not one
per event. When the database cannot be written, the delivery is proxied like any other
request instead, and the app answers only once its listener has claimed the message.
Standard library only, apart from the database writer (SQLAlchemy, imported when used).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("imgbot.slack.edge")

EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
FORWARDERS = 8
FORWARD_ATTEMPTS = 30
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection",
               "te", "trailer", "upgrade"}
STORED_HEADER = "X-Imgbot-Inbox"  # bot.slack.inbox.STORED_HEADER: the delivery is in the inbox already
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 413: "Payload Too Large",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def verified(secret: str, body: bytes, timestamp: str | None, signature: str | None,
             now: Callable[[], float] = time.time) -> bool:
    """Slack's request signature: fresh (five minutes) and matching."""
    if not secret or not timestamp or not signature:
        return False
    try:
        if abs(now() - int(timestamp)) > 60 * 5:
            return False
    except ValueError:
        return False
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def is_event_delivery(body: bytes) -> bool:
    return event_delivery(body) is not None


def event_delivery(body: bytes) -> dict[str, Any] | None:
    """The parsed envelope of an Events API delivery, or None for anything else."""
    if b'"event_callback"' not in body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("type") == "event_callback" else None


class InboxWriter:
    """Group commit: deliveries that arrive while a commit runs go together in the next one."""

    def __init__(self, save: Callable[[Sequence[tuple[str, str]]], None]) -> None:
        self._save = save
        self._pending: list[tuple[str, str, asyncio.Future[bool]]] = []
        self._busy = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imgbot-inbox")
        self.commits = 0

    async def save(self, event_id: str, body: bytes) -> bool:
        """True once the delivery is committed; False when the database could not take it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((event_id, body.decode("utf-8", errors="replace"), future))
        if not self._busy:
            self._busy = True
            loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await loop.run_in_executor(self._thread, self._save, [(e, b) for e, b, _ in batch])
                    ok = True
                    self.commits += 1
                except Exception as err:
                    log.warning("the inbox could not be written (%r); %d deliveries go to the app directly",
                                err, len(batch))
                    ok = False
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(ok)
        finally:
            self._busy = False


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


class BadRequest(Exception):
    def __init__(self, status: int = 400) -> None:
        super().__init__(status)
        self.status = status


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One HTTP/1.1 request, or None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial.strip():
            return None
        raise BadRequest() from err
    except asyncio.LimitOverrunError as err:
        raise BadRequest(413) from err
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError as err:
        raise BadRequest() from err
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest()
        headers.append((name.strip(), value.strip()))
    request = Request(method.upper(), target, headers, b"", keep_alive=version.upper() == "HTTP/1.1")
    connection = (request.header("Connection") or "").lower()
    if connection == "close":
        request.keep_alive = False
    elif connection == "keep-alive":
        request.keep_alive = True
    if (request.header("Transfer-Encoding") or "").lower() == "chunked":
        request.body = await _read_chunked(reader)
    else:
        try:
            length = int(request.header("Content-Length") or 0)
        except ValueError as err:
            raise BadRequest() from err
        if length < 0:
            raise BadRequest()
        if length > MAX_BODY_BYTES:
            raise BadRequest(413)
        request.body = await reader.readexactly(length) if length else b""
    return request


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(413)


def render_response(status: int, body: bytes, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP]
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    length = 0
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
            if name.strip().lower() == "content-length":
                length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


class Upstream:
    """The Bolt app behind the edge: one kept-alive connection per caller, re-opened when it breaks."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, limit=MAX_HEADER_BYTES + MAX_BODY_BYTES)

    def encode(self, request: Request) -> bytes:
        lines = [f"{request.method} {request.target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in request.headers if name.lower() not in _HOP_BY_HOP]
        lines.append(f"Content-Length: {len(request.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body

    async def send(self, request: Request, connection: list[Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send on ``connection`` (a one-item list holding (reader, writer) or None), reconnecting once."""
        for attempt in (1, 2):
            if connection[0] is None:
                connection[0] = await self.connect()
            reader, writer = connection[0]
            try:
                writer.write(self.encode(request))
                await writer.drain()
                return await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                connection[0] = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Edge:
    def __init__(self, secret: str, upstream: Upstream, inbox: InboxWriter | None = None) -> None:
        self.secret = secret
        self.upstream = upstream
        self.inbox = inbox
        self.queue: asyncio.Queue[Request] = asyncio.Queue()
        self.forwarded = 0

    async def serve(self, host: str, port: int) -> asyncio.Server:
        for _ in range(FORWARDERS):
            asyncio.get_running_loop().create_task(self._forwarder())
        return await asyncio.start_server(self._client, host, port, backlog=2048,
                                          limit=MAX_HEADER_BYTES + MAX_BODY_BYTES)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await read_request(reader)
                except BadRequest as bad:
                    writer.write(render_response(bad.status, b"bad request", [], keep_alive=False))
                    break
                if request is None:
                    break
                writer.write(await self._answer(request))
                await writer.drain()
                if not request.keep_alive:
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, request: Request) -> bytes:
        path = request.target.split("?", 1)[0]
        request.headers = [(name, value) for name, value in request.headers if name.lower() != STORED_HEADER.lower()]
        envelope = event_delivery(request.body) if request.method == "POST" and path == EVENTS_PATH else None
        if envelope is not None and verified(self.secret, request.body, request.header("X-Slack-Request-Timestamp"),
                                             request.header("X-Slack-Signature")):
            event_id = envelope.get("event_id")
            if self.inbox is None or not event_id:
                self.queue.put_nowait(request)
                return render_response(200, b"", [], request.keep_alive)
            if await self.inbox.save(str(event_id), request.body):
                request.headers.append((STORED_HEADER, "stored"))
                self.queue.put_nowait(request)
                return render_response(200, b"", [], request.keep_alive)
            # Not kept: proxied below, so Slack's ack waits until the app has claimed the message.
        connection: list[Any] = [None]
        try:
            status, headers, body = await self.upstream.send(request, connection)
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            log.warning("the app did not answer %s %s: %s", request.method, path, type(err).__name__)
            return render_response(502, b"the app is not reachable", [], request.keep_alive)
        finally:
            if connection[0] is not None:
                connection[0][1].close()
        return render_response(status, body, headers, request.keep_alive)

    async def _forwarder(self) -> None:
        connection: list[Any] = [None]
        while True:
            request = await self.queue.get()
            for attempt in range(1, FORWARD_ATTEMPTS + 1):
                try:
                    status, _, body = await self.upstream.send(request, connection)
                except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                    log.warning("forwarding an event failed (attempt %d): %s", attempt, type(err).__name__)
                    await asyncio.sleep(min(2.0, 0.1 * attempt))
                    continue
                if status >= 400:
                    log.warning("the app answered %d to a forwarded event: %s", status, body[:200])
                self.forwarded += 1
                break
            else:
                log.error("an acknowledged event could not be handed to the app; %s",
                          "it stays in the inbox and is replayed when its lease ends" if self.inbox else "it is lost")


class DatabaseInbox:
    """Writes deliveries to the inbox table, leased to ``owner`` (the app's process, which handles them)."""

    def __init__(self, database_url: str, owner: str) -> None:
        from db import slack_queries  # imported and connected now, not on the first event of a burst
        from db.session import Database

        self.owner = owner
        self._queries = slack_queries
        self.database = Database(database_url)
        try:
            with self.database.transaction() as session:
                slack_queries.take_deliveries(session, owner, _utc_now(), limit=0)
        except Exception as err:  # each save tries again; until then deliveries are proxied
            log.warning("the inbox database is not reachable yet: %r", err)

    def __call__(self, deliveries: Sequence[tuple[str, str]]) -> None:
        with self.database.transaction() as session:
            self._queries.save_deliveries(session, deliveries, owner=self.owner, now=_utc_now())

    def close(self) -> None:
        self.database.dispose()


def _utc_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def run_edge(host: str, port: int, upstream_port: int, secret: str, ready: Any, lifeline: Any,
             log_level: str = "INFO", database_url: str | None = None, owner: str = "") -> None:
    """Entry point of the edge process: serve until SIGTERM, or until the parent's lifeline closes."""
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    inbox = InboxWriter(DatabaseInbox(database_url, owner)) if database_url else None

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopped.set)
        loop.add_reader(lifeline.fileno(), stopped.set)  # readable = EOF: the parent is gone
        edge = Edge(secret, Upstream("127.0.0.1", upstream_port), inbox)
        server = await edge.serve(host, port)
        bound = server.sockets[0].getsockname()
        ready.send((bound[0], bound[1]))
        await stopped.wait()
        server.close()
        deadline = time.monotonic() + 5
        while not edge.queue.empty() and time.monotonic() < deadline:  # hand on what was acknowledged
            await asyncio.sleep(0.05)

    try:
        asyncio.run(main())
    finally:
        os._exit(0)  # nothing else to clean up; skip interpreter teardown of the forwarding tasks


class EdgeProcess:
    """Starts the edge in its own process (spawned, so it shares nothing with the app) and stops it."""

    def __init__(self, *, host: str, port: int, upstream_port: int, secret: str, log_level: str = "INFO",
                 database_url: str | None = None, owner: str = "") -> None:
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self._ready_here, ready_there = self._ctx.Pipe(duplex=False)
        lifeline_there, self._lifeline_here = self._ctx.Pipe(duplex=False)
        self._process = self._ctx.Process(
            target=run_edge, name="imgbot-edge", daemon=True,
            args=(host, port, upstream_port, secret, ready_there, lifeline_there, log_level, database_url, owner),
        )
        self.host = host
        self.port = port

    def start(self, timeout: float = 30.0) -> EdgeProcess:
        self._process.start()
        if not self._ready_here.poll(timeout):
            self.stop()
            raise RuntimeError("the edge process did not start listening")
        self.host, self.port = self._ready_here.recv()
        return self

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        if self._process.is_alive():
            self._process.terminate()  # SIGTERM: stop accepting, hand on what was acknowledged
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._lifeline_here.close()
        self._ready_here.close()
