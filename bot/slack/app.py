"""The Slack app: one Bolt ``App``, reached over HTTP or Socket Mode, that only translates.

``build_app(settings, core)`` returns the Bolt app (request verification on, slow work after
the ack, slack_sdk's retry handlers for rate limits and connection errors, ``SLACK_API_URL``
honoured). Listeners themselves are quick (they write a claim and hand off), and Bolt runs
them before it answers (``process_before_response``), so in Socket Mode the claim is in the
database before Slack has its ack; in HTTP mode the inbox (``bot/slack/inbox.py``) covers
the time between the edge's ack and the listener.

``serve(settings, core)`` runs it: Socket Mode when ``SLACK_APP_TOKEN`` is set, otherwise a
threaded HTTP server on ``$PORT`` with ``POST /slack/events`` and ``GET /healthz``. As in
bolt's adapters, the HTTP adapter only converts: it turns the request into a ``BoltRequest``,
calls ``app.dispatch`` and writes the ``BoltResponse`` back.
In ``serve`` it listens on loopback behind the edge (``bot/slack/edge.py``), a small process
that owns ``$PORT`` and acknowledges verified event deliveries before the app sees them.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import App, BoltResponse
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier

from bot import __version__
from bot.config import Settings
from bot.errors import ConfigError
from bot.executor import QueueExecutor
from bot.queue import JobQueue
from bot.slack import listeners
from bot.slack.edge import EdgeProcess
from bot.slack.inbox import STORED_HEADER, Inbox, InboxReplay, event_id_of
from bot.slack.jobs import JobOptions, SlackJobs
from bot.slack.memberships import MembershipCache
from bot.slack.middleware import DUPLICATE_HEADER, DropDuplicateDeliveries, IgnoreBotMessages
from bot.wiring import Core
from db.queries import lease_owner

log = logging.getLogger("imgbot.slack")

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 1024 * 1024  # Slack's payloads are a few kB; anything this big is not from Slack


def web_api_base_url(api_url: str | None) -> str | None:
    """``SLACK_API_URL`` as slack_sdk wants it (ending with ``/``), or None for the default."""
    if not api_url:
        return None
    return api_url if api_url.endswith("/") else api_url + "/"


def build_client(settings: Settings) -> WebClient:
    """The Web API client: rate limits wait out ``Retry-After``, connection and 5xx errors are retried."""
    kwargs: dict[str, Any] = {}
    base_url = web_api_base_url(settings.slack_api_url)
    if base_url:
        kwargs["base_url"] = base_url
    return WebClient(
        token=settings.slack_bot_token,
        timeout=30,
        logger=logging.getLogger("imgbot.slack.web"),
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=5),
            ConnectionErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
        **kwargs,
    )


@dataclass
class SlackBot:
    """The Bolt app and what it hands work to; ``start`` before serving, ``stop`` after."""

    app: App
    jobs: SlackJobs
    memberships: MembershipCache
    ack_first: AckFirst | None = None
    _started: bool = field(default=False, init=False)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            self.jobs.set_bot_user_id(self.app.client.auth_test().get("user_id"))
        except (SlackApiError, SlackClientError, OSError) as err:
            log.warning("auth.test failed at start-up: %s", err)
        self.jobs.start()

    def stop(self) -> None:
        if self.ack_first is not None:
            self.ack_first.shutdown()
        self.jobs.shutdown(wait=True)

    def http_server(self, host: str = "0.0.0.0", port: int = 3000) -> SlackHTTPServer:
        """The HTTP adapter for this app; ``port=0`` picks a free port."""
        return SlackHTTPServer(self.app, host, port, ack_first=self.ack_first)


class _NotTheClientTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that the ``client`` imgbot gives it wins: it is
    the same token, on purpose (the client carries SLACK_API_URL and the retry handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("imgbot.slack.bolt")
    if not any(isinstance(f, _NotTheClientTokenWarning) for f in logger.filters):
        logger.addFilter(_NotTheClientTokenWarning())
    return logger


def build_bot(settings: Settings, core: Core, *, job_options: JobOptions | None = None,
              membership_ttl: float = 60.0, token_verification: bool = True, queue: JobQueue | None = None
              ) -> SlackBot:
    """The app, its jobs (handed to ``queue`` when given) and, in HTTP mode, the inbox and its replay."""
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: the Slack app needs its bot token (xoxb-…).")
    client = build_client(settings)
    app = App(
        name="imgbot",
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        process_before_response=True,  # listeners are quick: the claim is written before the answer
        request_verification_enabled=True,
        token_verification_enabled=token_verification,
        logger=_bolt_logger(),
        listener_executor=QueueExecutor(max_workers=max(8, settings.concurrency or 8),
                                        thread_name_prefix="imgbot-listener"),
    )
    jobs = SlackJobs(core=core, client=client, settings=settings, options=job_options or JobOptions(), queue=queue)
    memberships = MembershipCache(ttl_seconds=membership_ttl)
    app.use(IgnoreBotMessages())
    app.use(DropDuplicateDeliveries())
    listeners.register(app, core, jobs, memberships)
    inbox = None
    if settings.slack_signing_secret:
        inbox = Inbox(core.database, lease_owner())
        jobs.add_sweep(InboxReplay(app, inbox, settings.slack_signing_secret).replay)
    return SlackBot(app=app, jobs=jobs, memberships=memberships,
                    ack_first=AckFirst(app, settings.slack_signing_secret or "", inbox=inbox))


def build_app(settings: Settings, core: Core) -> App:
    """The Bolt app alone (its background jobs are started by ``serve``)."""
    return build_bot(settings, core).app


# -- HTTP ---------------------------------------------------------------------------------------


class AckFirst:
    """Events API deliveries are acknowledged as soon as their signature checks out and they are kept.

    Bolt runs right after, on a small pool, so a burst of events is answered in well under
    100 ms even while the pool works. Verification is slack_sdk's own (signature and the
    five-minute window); anything else, or an event that fails the check, goes through
    ``app.dispatch`` as usual, which answers 401 for a bad signature. With an ``inbox``, the
    delivery is written to it before the ack (unless the edge already did) and removed once
    its listener has run; when the inbox cannot be written, the event is handled before the
    answer instead (its listener writes the claim), so an acknowledged event is never only in memory.
    """

    def __init__(self, app: App, signing_secret: str, executor: QueueExecutor | None = None,
                 inbox: Inbox | None = None) -> None:
        self.app = app
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.executor = executor or QueueExecutor(max_workers=2, thread_name_prefix="imgbot-dispatch")
        self.inbox = inbox

    def try_ack(self, body: str, query: str, headers: dict[str, list[str]]) -> bool:
        if self.verifier is None or '"event_callback"' not in body:
            return False
        timestamp = next(iter(headers.get("x-slack-request-timestamp") or []), None)
        signature = next(iter(headers.get("x-slack-signature") or []), None)
        try:
            if not self.verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
                return False
            if json.loads(body).get("type") != "event_callback":
                return False
        except (ValueError, AttributeError):
            return False
        event_id = event_id_of(body) if self.inbox is not None else None
        if event_id and (headers.get(STORED_HEADER) or [""])[0] != "stored":
            try:
                self.inbox.save([(event_id, body)])  # type: ignore[union-attr]
            except Exception as err:
                log.warning("inbox unavailable (%r); event_id=%s is handled before the answer", err, event_id)
                return False
        self.executor.submit(self._dispatch, body, query, headers, event_id)
        return True

    def _dispatch(self, body: str, query: str, headers: dict[str, list[str]], event_id: str | None) -> None:
        try:
            response = self.app.dispatch(BoltRequest(body=body, query=query, headers=headers))  # type: ignore[arg-type]
        except Exception:
            log.exception("event dispatch failed; event_id=%s stays in the inbox", event_id)
            return
        if response.status >= 400:
            log.info("event dispatch answered %s: %s", response.status, (response.body or "")[:200])
        elif event_id and self.inbox is not None and DUPLICATE_HEADER not in response.headers:
            self.inbox.done(event_id)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)



class _Handler(BaseHTTPRequestHandler):
    """Converts HTTP to ``BoltRequest`` and back; no logic of its own."""

    app: App
    ack_first: AckFirst | None = None
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections are closed after this
    server_version = "imgbot"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s - %s", self.address_string(), format % args)

    def _write(self, status: int, body: bytes, headers: dict[str, Any] | None = None) -> None:
        self.send_response(status)
        content_type_sent = False
        for name, values in (headers or {}).items():
            if name.lower() == "content-length":
                continue
            for value in values if isinstance(values, (list, tuple)) else [values]:
                self.send_header(name, str(value))
                content_type_sent = content_type_sent or name.lower() == "content-type"
        if not content_type_sent:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == HEALTH_PATH:
            self._write(200, b'{"ok":true}', {"Content-Type": "application/json"})
        else:
            self._write(404, b"not found")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != EVENTS_PATH:
            self._write(404, b"not found")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._write(413 if length > 0 else 400, b"bad request")
            return
        body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        headers: dict[str, list[str]] = {}
        for name in self.headers.keys():
            headers[name.lower()] = self.headers.get_all(name) or []
        if self.ack_first is not None and self.ack_first.try_ack(body, parts.query, headers):
            self._write(200, b"")
            return
        request = BoltRequest(body=body, query=parts.query, headers=headers)  # type: ignore[arg-type]
        response: BoltResponse = self.app.dispatch(request)
        self._write(response.status, (response.body or "").encode("utf-8"), response.headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of events must not overflow the listen backlog


class SlackHTTPServer:
    """A threaded HTTP server for the Bolt app; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(self, app: App, host: str = "0.0.0.0", port: int = 3000, *, ack_first: AckFirst | None = None
                 ) -> None:
        handler = type("SlackEventsHandler", (_Handler,), {"app": app, "ack_first": ack_first})
        self._server = _Server((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.1)

    def start(self) -> SlackHTTPServer:
        self._thread = threading.Thread(target=self.serve_forever, name="imgbot-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


# -- serve ---------------------------------------------------------------------------------------


def serve(settings: Settings, core: Core, *, host: str = "0.0.0.0",
          ready: Callable[[str], None] | None = None, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set): Socket Mode with an app token, else HTTP on ``port``."""
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp- (Socket Mode).")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode needs it to verify requests from Slack.")
    from bot.queue import build_queue

    stop = stop or threading.Event()
    _install_signal_handlers(stop)
    queue = build_queue(settings)
    log.info("imgbot %s serving Slack over %s; database %s; analyser %s; originals in %s; %s", __version__,
             "Socket Mode" if settings.slack_app_token else f"HTTP on port {settings.port or 'any free port'}",
             core.database.url.render_as_string(hide_password=True), settings.analyzer, settings.storage_url,
             f"work handed to the queue {settings.queue_url}" if queue is not None else "work done in this process")
    bot = build_bot(settings, core, queue=queue)
    if queue is not None:
        log.info("imgbot hands Slack messages to the work queue %s (imgbot worker processes them)",
                 settings.queue_url)
    bot.start()
    try:
        if settings.slack_app_token:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler = SocketModeHandler(bot.app, settings.slack_app_token)
            handler.connect()  # type: ignore[no-untyped-call]
            log.info("imgbot connected to Slack over Socket Mode")
            if ready:
                ready("socket-mode")
            stop.wait()
            handler.close()  # type: ignore[no-untyped-call]
        else:
            # The Bolt adapter listens on loopback only; the edge process owns $PORT and answers Slack at once.
            app_server = bot.http_server("127.0.0.1", 0).start()
            edge = EdgeProcess(host=host, port=settings.port, upstream_port=app_server.port,
                               secret=settings.slack_signing_secret or "", log_level=settings.log_level,
                               database_url=settings.database_url, owner=lease_owner()).start()
            log.info("imgbot listening on http://%s:%d (POST %s, GET %s)", edge.host, edge.port, EVENTS_PATH,
                     HEALTH_PATH)
            if ready:
                ready(json.dumps({"host": edge.host, "port": edge.port}))
            while not stop.wait(1.0):
                if not edge.alive:
                    log.error("the HTTP edge process stopped unexpectedly; shutting down")
                    break
            edge.stop()
            app_server.stop()
    finally:
        bot.stop()
        log.info("imgbot stopped")


def _install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
