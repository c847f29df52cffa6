"""The work after the ack: a bounded pool that turns a Slack message's images into one threaded reply.

    listener (after ack) ──claim (channel, ts)──► pool (IMGBOT_CONCURRENCY threads)
                                                   ├─ 👀, files.info for stubs, download (token to Slack only)
                                                   ├─ core.ingest per image (store, analyse, persist)
                                                   ├─ one threaded reply, then the claim is marked replied
                                                   ├─ annotated copies (files_upload_v2), moderation notice
                                                   └─ ✅ / ⚠️ / ❌
    scheduler thread: delayed file_shared look-ups, retries with back-off, a periodic sweep
    lease keeper thread: renews the lease of every claim this process is working on

With a work queue (``IMGBOT_QUEUE_URL``) the pool is not used: the claim is parked for the
queue (lease owner ``queue``) and a ``slack_message`` job is sent; any ``imgbot worker``
takes the lease and runs the same processing (``process_queued``).

The claim row is written before any slow work, so whatever a crash or an outage interrupts
stays ``received`` and is finished later: by a retry with back-off while the process lives,
by a sweep (at start-up, then periodically) after a restart. The claim carries a lease
(owner and expiry, renewed while the work runs), so with several processes on one
database a sweep takes only what nobody alive is working on. Retrying is safe because
ingesting the same bytes at the same sighting again is a no-op in the core.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config import Settings
from bot.core.annotate import Annotated, annotate, has_findings
from bot.core.records import ImageRecord
from bot.core.types import IngestResult, Source
from bot.errors import ImgbotError, NotFound
from bot.executor import QueueExecutor
from bot.queue import JobQueue, slack_message_job
from bot.slack import blocks, messages
from bot.slack.download import Downloader
from bot.wiring import Core
from db import slack_queries
from db.queries import lease_owner
from db.slack_queries import QUEUED, MessageClaim

log = logging.getLogger("imgbot.slack.jobs")

EYES, DONE, FLAGGED, FAILED = "eyes", "white_check_mark", "warning", "x"
RETRYABLE_SLACK_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
})
GONE_FILE_ERRORS = frozenset({"file_not_found", "file_deleted", "access_denied"})
#: Message metadata on each reply, so a later attempt can tell that the reply was posted.
REPLY_EVENT = "imgbot_reply"


@dataclass(frozen=True)
class MessageWork:
    """One Slack message with files, as much as the event told us."""

    team_id: str | None
    channel_id: str
    message_ts: str
    thread_ts: str | None
    user_id: str | None
    files: tuple[dict[str, Any], ...]

    @property
    def reply_thread(self) -> str:
        return self.thread_ts or self.message_ts

    @classmethod
    def from_event(cls, event: dict[str, Any], team_id: str | None) -> MessageWork:
        return cls(team_id=team_id, channel_id=str(event["channel"]), message_ts=str(event["ts"]),
                   thread_ts=event.get("thread_ts"), user_id=event.get("user"),
                   files=tuple(f for f in event.get("files") or () if isinstance(f, dict) and f.get("id")))

    @classmethod
    def from_claim(cls, claim: MessageClaim) -> MessageWork:
        return cls(team_id=claim.team_id, channel_id=claim.channel_id, message_ts=claim.message_ts,
                   thread_ts=claim.thread_ts, user_id=claim.user_id,
                   files=tuple({"id": file_id, "file_access": "check_file_info"} for file_id in claim.file_ids))


def maybe_image(file: dict[str, Any]) -> bool:
    """Worth a look: an image by its mimetype, or a stub whose details need ``files.info``."""
    if file.get("mode") in {"tombstone", "hidden_by_limit"}:
        return False  # deleted, or beyond the free plan's history
    if file.get("file_access") == "access_denied":  # another organisation's (Slack Connect): the reply says so
        return str(file.get("mimetype", "")).lower().startswith("image/")
    if file.get("file_access") == "check_file_info" or not file.get("mimetype"):
        return True
    return str(file.get("mimetype", "")).lower().startswith("image/")


def _needs_info(file: dict[str, Any]) -> bool:
    return (file.get("file_access") == "check_file_info" or not file.get("mimetype")
            or not (file.get("url_private_download") or file.get("url_private")))


class RetryLater(Exception):
    """Slack or the core is unavailable for now; the message stays ``received`` and is tried again."""


@dataclass
class _FileResult:
    outcome: ImageOutcome | None  # None: not an image, nothing to say
    retry: bool = False
    annotated: Annotated | None = None


ImageOutcome = blocks.ImageOutcome


class Scheduler:
    """One thread that runs callables at a given time (retries, delayed look-ups, sweeps)."""

    def __init__(self, name: str = "imgbot-scheduler") -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic()))
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # a failing job must not stop the scheduler
                log.exception("scheduled job failed")


@dataclass
class JobOptions:
    """Timings; production uses the defaults, tests shorten them."""

    retry_delays: Sequence[float] = (30.0, 120.0, 300.0, 600.0)
    sweep_interval: float = 60.0
    stale_after: float = 600.0
    file_shared_delay: float = 3.0
    give_up_after: float = 24 * 3600.0
    pending_wait: float = 120.0
    cache_ttl: float = 3600.0
    lease: float = 120.0  # a claim's lease; renewed every quarter of it while the work runs
    queue_grace: float = 600.0  # how long a claim handed to the queue waits before a sweep hands it again


@dataclass
class _Cached:
    value: str | None
    expires: float


@dataclass
class SlackJobs:
    core: Core
    client: WebClient
    settings: Settings
    options: JobOptions = field(default_factory=JobOptions)
    downloader: Downloader | None = None
    queue: JobQueue | None = None  # set: claims are handed to `imgbot worker` instead of the local pool

    def __post_init__(self) -> None:
        if self.downloader is None:
            self.downloader = Downloader(token=self.settings.slack_bot_token, api_url=self.settings.slack_api_url,
                                         max_bytes=self.settings.max_bytes)
        self._pool = QueueExecutor(max_workers=self.settings.max_in_flight, thread_name_prefix="imgbot-slack")
        self._light = QueueExecutor(max_workers=2, thread_name_prefix="imgbot-slack-light")
        self._scheduler: Scheduler | None = None
        self._lock = threading.Lock()
        self._inflight: set[int] = set()
        self._attempts: dict[int, int] = {}
        self._retry_due: dict[int, float] = {}
        self._works: dict[int, MessageWork] = {}
        self._names: dict[str, _Cached] = {}
        self._bot_user_id: str | None = None
        self._stopped = False
        self._owner = lease_owner()
        self._extra_sweeps: list[Callable[[], object]] = []
        self._keeper_stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep_leases, name="imgbot-slack-leases", daemon=True)
        self._keeper.start()

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Finish what a previous run left ``received``, then sweep periodically."""
        self._scheduler = Scheduler()
        for extra in self._extra_sweeps:
            self._light.submit(self._safely, extra)
        self._light.submit(self._safely, self.sweep, everything=True)
        self._scheduler.call_later(self.options.sweep_interval, self._periodic_sweep)

    def add_sweep(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` at start-up and with every periodic sweep (before ``start``)."""
        self._extra_sweeps.append(fn)

    def shutdown(self, wait: bool = True) -> None:
        self._stopped = True
        self._keeper_stop.set()
        if self._scheduler is not None:
            self._scheduler.stop()
        self._light.shutdown(wait=wait, cancel_futures=True)
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._keeper.join(timeout=5)

    def set_bot_user_id(self, user_id: str | None) -> None:
        self._bot_user_id = user_id

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        if self._scheduler is None:  # not started (unit tests): run on a timer thread
            timer = threading.Timer(delay, fn)
            timer.daemon = True
            timer.start()
        else:
            self._scheduler.call_later(delay, fn)

    def _safely(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("background job %s failed", getattr(fn, "__name__", fn))

    # -- entry points (called by listeners after the ack) -----------------------------------

    def accept_message(self, event: dict[str, Any], team_id: str | None) -> None:
        """A ``file_share`` message: claim it, then hand it to the pool. Duplicates stop here."""
        work = MessageWork.from_event(event, team_id)
        work = dataclasses.replace(work, files=tuple(f for f in work.files if maybe_image(f)))
        if work.files:
            self._claim_and_submit(work)

    def accept_file_shared(self, event: dict[str, Any], team_id: str | None) -> None:
        """A ``file_shared`` event: usually the twin of a ``file_share`` message, looked at after a pause."""
        self._later(self.options.file_shared_delay,
                    lambda: self._submit_light(self._resolve_file_shared, event, team_id))

    def delete_file(self, file_id: str) -> None:
        """Done before the listener returns, so the delivery is not acknowledged (or leaves the inbox) first."""
        self._delete(self.core.delete_slack_file, file_id)

    def delete_message(self, channel_id: str, message_ts: str) -> None:
        self._delete(self.core.delete_slack_message, channel_id, message_ts)

    def _submit_light(self, fn: Callable[..., Any], *args: Any) -> None:
        if not self._stopped:
            self._light.submit(self._safely, fn, *args)

    def _delete(self, fn: Callable[..., list[int]], *args: str) -> None:
        image_ids = fn(*args)
        log.info("slack deletion %s: %d image(s) hidden%s", "/".join(args), len(image_ids),
                 f" ({', '.join(map(str, image_ids))})" if image_ids else "")

    # -- claiming ---------------------------------------------------------------------------

    def _claim_and_submit(self, work: MessageWork) -> bool:
        now = datetime.now(UTC)
        queued = self.queue is not None
        with self.core.database.transaction() as session:
            inserted = slack_queries.claim_message(
                session, team_id=work.team_id, channel_id=work.channel_id, message_ts=work.message_ts,
                thread_ts=work.thread_ts, user_id=work.user_id, file_ids=[f["id"] for f in work.files], now=now,
                owner=QUEUED if queued else self._owner,
                lease=timedelta(seconds=self.options.queue_grace if queued else self.options.lease),
            )
            claim = slack_queries.get_message(session, work.channel_id, work.message_ts) if inserted else None
        if claim is None:
            log.info("slack message channel=%s ts=%s already claimed: skipped", work.channel_id, work.message_ts)
            return False
        if queued:
            self._submit_light(self._enqueue, claim, 0)
        else:
            self._submit(claim, work)
        return True

    def _enqueue(self, claim: MessageClaim, attempt: int) -> None:
        """Hand the claim to the work queue; an outage is retried here, and by the sweep after ``queue_grace``."""
        assert self.queue is not None
        try:
            self.queue.send(slack_message_job(claim.channel_id, claim.message_ts))
        except ImgbotError as err:
            delays = self.options.retry_delays
            if attempt >= len(delays) or self._stopped:
                log.error("slack message channel=%s ts=%s not queued (%s); the sweep will queue it again",
                          claim.channel_id, claim.message_ts, err.detail)
                return
            log.warning("slack message channel=%s ts=%s not queued yet: %s", claim.channel_id, claim.message_ts,
                        err.detail)
            self._later(delays[attempt], lambda: self._submit_light(self._enqueue, claim, attempt + 1))
            return
        log.info("slack message channel=%s ts=%s queued", claim.channel_id, claim.message_ts)

    def _submit(self, claim: MessageClaim, work: MessageWork) -> None:
        with self._lock:
            if claim.id in self._inflight or self._stopped:
                return
            self._inflight.add(claim.id)
            self._works[claim.id] = work
        self._pool.submit(self._run, claim, work)

    def _run(self, claim: MessageClaim, work: MessageWork) -> None:
        started = time.perf_counter()
        outcome = "retry"
        try:
            outcome = self._process(claim, work) if self._take(claim) else "busy"
        except RetryLater as err:
            log.warning("slack message channel=%s ts=%s will be retried: %s", work.channel_id, work.message_ts, err)
        except Exception:
            log.exception("slack message channel=%s ts=%s failed unexpectedly; will retry",
                          work.channel_id, work.message_ts)
        finally:
            with self._lock:
                self._inflight.discard(claim.id)
                if outcome != "retry":
                    self._works.pop(claim.id, None)
                    self._attempts.pop(claim.id, None)
                    self._retry_due.pop(claim.id, None)
        if outcome == "retry":
            self._schedule_retry(claim, work)
        log.info("slack message channel=%s ts=%s files=%d outcome=%s secs=%.2f", work.channel_id, work.message_ts,
                 len(work.files), outcome, time.perf_counter() - started)

    def _schedule_retry(self, claim: MessageClaim, work: MessageWork) -> None:
        if self._stopped:
            return
        with self._lock:
            attempt = self._attempts.get(claim.id, 0)
            self._attempts[claim.id] = attempt + 1
            delays = self.options.retry_delays
            delay = delays[min(attempt, len(delays) - 1)]
            self._retry_due[claim.id] = time.monotonic() + delay
        try:  # keep the lease over the wait, so no other process picks the message up meanwhile
            with self.core.database.transaction() as session:
                slack_queries.hand_over(session, claim.id, self._owner, self._owner,
                                        datetime.now(UTC) + timedelta(seconds=delay + self.options.lease))
        except Exception as err:  # the database is down: the retry below will find out again
            log.warning("lease on slack message channel=%s ts=%s not extended: %r", claim.channel_id,
                        claim.message_ts, err)
        self._later(delay, lambda: self._submit_light(self._retry, claim, work))

    def _retry(self, claim: MessageClaim, work: MessageWork) -> None:
        with self.core.database.transaction() as session:
            current = slack_queries.get_message(session, claim.channel_id, claim.message_ts)
        if current is None or current.status != slack_queries.RECEIVED:
            return
        with self._lock:
            self._retry_due.pop(claim.id, None)
        self._submit(current, work)

    def sweep(self, *, everything: bool = False) -> int:
        """Submit (or queue) ``received`` claims nobody is working on; ``everything`` at start-up. Returns how many.

        A claim whose lease another live process holds is left alone, however old it is.
        """
        now = datetime.now(UTC)
        cutoff = None if everything else now - timedelta(seconds=self.options.stale_after)
        with self.core.database.transaction() as session:
            claims = slack_queries.unfinished(session, created_before=cutoff, now=now, owner=self._owner)
        submitted = 0
        for claim in claims:
            with self._lock:
                due = self._retry_due.get(claim.id)
                busy = claim.id in self._inflight or (due is not None and due > time.monotonic())
                work = self._works.get(claim.id) or MessageWork.from_claim(claim)
            if busy:
                continue
            if self.queue is not None:
                with self.core.database.transaction() as session:
                    taken = slack_queries.take_message(session, claim.id, QUEUED, now,
                                                       timedelta(seconds=self.options.queue_grace))
                if taken:
                    log.info("queueing slack message channel=%s ts=%s again", claim.channel_id, claim.message_ts)
                    self._enqueue(claim, len(self.options.retry_delays))
                    submitted += 1
                continue
            if everything:
                log.info("finishing slack message channel=%s ts=%s left unfinished", claim.channel_id,
                         claim.message_ts)
            self._submit(claim, work)
            submitted += 1
        return submitted

    def _take(self, claim: MessageClaim) -> bool:
        """Lease the claim to this process; False when it is replied or another live process holds it."""
        with self.core.database.transaction() as session:
            taken = slack_queries.take_message(session, claim.id, self._owner, datetime.now(UTC),
                                               timedelta(seconds=self.options.lease))
        if not taken:
            log.info("slack message channel=%s ts=%s is replied or another process holds it: skipped",
                     claim.channel_id, claim.message_ts)
        return taken

    def _keep_leases(self) -> None:
        """Renew the leases of the claims being worked on here, a few times per lease."""
        interval = max(0.05, self.options.lease / 4)
        while not self._keeper_stop.wait(interval):
            with self._lock:
                ids = list(self._inflight)
            if not ids:
                continue
            try:
                with self.core.database.transaction() as session:
                    slack_queries.renew_leases(session, ids, self._owner,
                                               datetime.now(UTC) + timedelta(seconds=self.options.lease))
            except Exception as err:  # an outage: the next round tries again, well before the lease ends
                log.warning("claim leases not renewed: %r", err)

    # -- the work queue (imgbot worker) -------------------------------------------------------

    def process_queued(self, channel_id: str, message_ts: str) -> str:
        """Process the claimed message a queued job names, here and now.

        Returns ``done`` (replied now, or already, or nothing to do), ``retry`` (Slack or
        the core is unavailable: the job comes back later) or ``busy`` (another live process
        holds the claim). Idempotent: a redelivered job whose message is replied does nothing.
        """
        started = time.perf_counter()
        with self.core.database.transaction() as session:
            claim = slack_queries.get_message(session, channel_id, message_ts)
        if claim is None:
            log.warning("queued slack message channel=%s ts=%s has no claim: nothing to do", channel_id, message_ts)
            return "done"
        if claim.status != slack_queries.RECEIVED:
            log.info("queued slack message channel=%s ts=%s already replied: nothing to do", channel_id, message_ts)
            return "done"
        if not self._take(claim):
            return "busy"
        work = MessageWork.from_claim(claim)
        with self._lock:
            self._inflight.add(claim.id)
        outcome = "retry"
        try:
            outcome = self._process(claim, work)
        except RetryLater as err:
            log.warning("slack message channel=%s ts=%s will be retried: %s", channel_id, message_ts, err)
        except Exception:
            log.exception("slack message channel=%s ts=%s failed unexpectedly; will retry", channel_id, message_ts)
        finally:
            with self._lock:
                self._inflight.discard(claim.id)
        if outcome == "retry":  # back to the queue: any worker may take it when the job comes back
            with self.core.database.transaction() as session:
                slack_queries.hand_over(session, claim.id, self._owner, QUEUED,
                                        datetime.now(UTC) + timedelta(seconds=self.options.queue_grace))
        log.info("slack message channel=%s ts=%s files=%d outcome=%s secs=%.2f", channel_id, message_ts,
                 len(work.files), outcome, time.perf_counter() - started)
        return "retry" if outcome == "retry" else "done"

    def _periodic_sweep(self) -> None:
        try:
            self.sweep()
        finally:
            if not self._stopped and self._scheduler is not None:
                self._scheduler.call_later(self.options.sweep_interval, self._periodic_sweep)

    # -- file_shared: find the message it belongs to ----------------------------------------

    def _resolve_file_shared(self, event: dict[str, Any], team_id: str | None) -> None:
        file_id, channel_id = event.get("file_id") or (event.get("file") or {}).get("id"), event.get("channel_id")
        if not file_id or not channel_id:
            return
        if str(channel_id).startswith("D"):
            return  # a direct message: imgbot works in channels (no im:history, and search covers channels)
        since = datetime.now(UTC) - timedelta(days=1)
        with self.core.database.transaction() as session:
            if slack_queries.claims_with_file(session, channel_id, file_id, since=since):
                log.debug("file_shared %s in %s: its message is already handled", file_id, channel_id)
                return
        try:
            info = self.client.files_info(file=file_id)["file"]
        except (SlackApiError, SlackClientError, OSError) as err:
            log.warning("file_shared %s: files.info failed: %s", file_id, _describe(err))
            return
        if not maybe_image(info) or (self._bot_user_id and info.get("user") == self._bot_user_id):
            return
        shares = _shares_in(info, channel_id)
        if not shares:
            log.info("file_shared %s in %s: no message to reply to (not shared there yet); left to the message event",
                     file_id, channel_id)
            return
        for share in shares:
            message = self._find_message(channel_id, str(share["ts"]), share.get("thread_ts"))
            if message is not None and (message.get("bot_id") or message.get("subtype") == "bot_message"):
                continue
            files = tuple(f for f in (message or {}).get("files") or () if isinstance(f, dict) and f.get("id"))
            work = MessageWork(
                team_id=team_id or info.get("user_team"), channel_id=channel_id, message_ts=str(share["ts"]),
                thread_ts=(message or {}).get("thread_ts") or share.get("thread_ts"),
                user_id=(message or {}).get("user") or info.get("user"),
                files=tuple(f for f in files if maybe_image(f)) or (info,),
            )
            self._claim_and_submit(work)

    def _find_message(self, channel_id: str, ts: str, thread_ts: str | None) -> dict[str, Any] | None:
        """The message with ``ts`` (for all its files); None when Slack will not say."""
        try:
            if thread_ts and thread_ts != ts:
                # The thread's parent comes first whatever the bounds, so ask for more than one.
                response = self.client.conversations_replies(channel=channel_id, ts=thread_ts, oldest=ts, latest=ts,
                                                             inclusive=True, limit=5)
            else:
                response = self.client.conversations_history(channel=channel_id, oldest=ts, latest=ts,
                                                             inclusive=True, limit=1)
        except (SlackApiError, SlackClientError, OSError) as err:
            log.info("could not read message %s in %s: %s", ts, channel_id, _describe(err))
            return None
        for message in response.get("messages") or []:
            if message.get("ts") == ts:
                return dict(message)
        return None

    # -- processing one message -------------------------------------------------------------

    def _process(self, claim: MessageClaim, work: MessageWork) -> str:
        with self.core.database.transaction() as session:
            current = slack_queries.get_message(session, claim.channel_id, claim.message_ts)
        if current is None or current.status != slack_queries.RECEIVED:
            return "already-replied"  # a sweep or a retry raced with the run that finished it
        giving_up = (datetime.now(UTC) - _aware(claim.created_at)).total_seconds() > self.options.give_up_after
        self._react(work, EYES, add=True)
        permalink = self._permalink(work)
        channel_name = self._channel_name(work.channel_id)
        results = [self._handle_file(work, file, permalink, channel_name) for file in work.files]
        if any(r.retry for r in results) and not giving_up:
            return "retry"
        outcomes = [r.outcome for r in results if r.outcome is not None]
        if not outcomes:
            self._finish(claim, None)
            self._react(work, EYES, add=False)
            return "no-images"

        moderation_channel = self.settings.moderation_channel
        text, reply_blocks = blocks.image_reply(
            outcomes, label_min_confidence=self.settings.label_min_confidence,
            moderation_min_confidence=self.settings.moderation_min_confidence,
            moderation_channel=bool(moderation_channel),
        )
        reply_ts = self._reply_once(claim, work, text, reply_blocks, giving_up)
        self._finish(claim, reply_ts)

        annotated = [(r.outcome, r.annotated) for r in results if r.outcome is not None and r.annotated is not None]
        if annotated:
            self._upload_annotated(work, annotated)
        threshold = self.settings.moderation_min_confidence
        flagged = [o for o in outcomes if o.flagged(threshold)]
        if moderation_channel:
            for outcome in flagged:
                self._notify_moderators(work, outcome, permalink)
        self._react(work, EYES, add=False)
        final = FLAGGED if flagged else FAILED if any(o.failed for o in outcomes) else DONE
        self._react(work, final, add=True)
        return "replied" if reply_ts else "reply-failed"

    def _finish(self, claim: MessageClaim, reply_ts: str | None) -> None:
        with self.core.database.transaction() as session:
            slack_queries.mark_replied(session, claim.id, reply_ts, datetime.now(UTC))

    def _handle_file(self, work: MessageWork, file: dict[str, Any], permalink: str | None,
                     channel_name: str | None) -> _FileResult:
        file_id = str(file["id"])
        name = str(file.get("name") or file.get("title") or file_id)
        if _needs_info(file):
            try:
                file = self.client.files_info(file=file_id)["file"]
                name = str(file.get("name") or file.get("title") or file_id)
            except SlackApiError as err:
                if err.response.get("error") in GONE_FILE_ERRORS:
                    return _FileResult(ImageOutcome(name, file_id, error=messages.file_unavailable()))
                if _retryable_slack(err):
                    return _FileResult(ImageOutcome(name, file_id, error=messages.download_failed()), retry=True)
                log.warning("files.info %s failed: %s", file_id, _describe(err))
                return _FileResult(ImageOutcome(name, file_id, error=messages.file_refused()))
            except (SlackClientError, OSError) as err:
                log.warning("files.info %s failed: %s", file_id, _describe(err))
                return _FileResult(ImageOutcome(name, file_id, error=messages.download_failed()), retry=True)
        if not maybe_image(file) or _needs_info(file):
            return _FileResult(None)  # not an image: nothing to say about it

        url = str(file.get("url_private_download") or file.get("url_private"))
        assert self.downloader is not None
        source = Source.slack(
            team_id=work.team_id, channel_id=work.channel_id, user_id=work.user_id or file.get("user"),
            file_id=file_id, message_ts=work.message_ts, name=name, thread_ts=work.thread_ts,
            permalink=permalink or file.get("permalink"), channel_name=channel_name,
        )
        with self.core.flow.admit(_int(file.get("size"))):  # before the download: its bytes count from the start
            try:
                data = self.downloader.fetch(url, name=name)
            except ImgbotError as err:
                log.warning("file %s in %s not downloaded: %s", file_id, work.channel_id, err.detail)
                return _FileResult(ImageOutcome(name, file_id, error=err.user_message), retry=err.retryable)
            result = self.core.ingest(data, source)
        record = self._record_for(result)
        if record is None or (record.status == "failed" and result.retryable):
            error = (record.failure_reason if record else None) or messages.analysis_failed_generic()
            return _FileResult(ImageOutcome(name, file_id, result=result, record=record, error=error), retry=True)
        outcome = ImageOutcome(name, file_id, result=result, record=record)
        annotated = None
        if self.settings.annotate and record.status == "done" and has_findings(
                record, self.settings.label_min_confidence):
            try:
                annotated = annotate(data, record, min_confidence=self.settings.label_min_confidence)
            except Exception as err:  # drawing is a nicety: never lose the reply over it
                log.warning("image=%s could not be annotated: %r", record.id, err)
        return _FileResult(outcome, annotated=annotated)

    def _record_for(self, result: IngestResult) -> ImageRecord | None:
        """The stored result; waits while another worker finishes the same bytes."""
        if result.image_id is None:
            return None
        deadline = time.monotonic() + self.options.pending_wait
        while True:
            try:
                record = self.core.show(result.image_id)
            except NotFound:
                return None
            if record.status != "pending" or time.monotonic() > deadline:
                return record if record.status != "pending" else None
            time.sleep(0.1)

    # -- talking to Slack -------------------------------------------------------------------

    def _reply_once(self, claim: MessageClaim, work: MessageWork, text: str, reply_blocks: list[blocks.Block],
                    giving_up: bool) -> str | None:
        """Post the reply, unless an earlier attempt posted it and died before recording it."""
        with self.core.database.transaction() as session:
            earlier = slack_queries.mark_replying(session, claim.id, datetime.now(UTC))
        if earlier is not None:
            found = self._find_reply(work, earlier)
            if found is not None:
                log.info("slack message channel=%s ts=%s was answered by an earlier attempt (reply %s): "
                         "not posted again", work.channel_id, work.message_ts, found)
                return found
        return self._post_reply(work, text, reply_blocks, giving_up)

    def _find_reply(self, work: MessageWork, since: datetime) -> str | None:
        """The ts of imgbot's reply to this message in its thread, posted since ``since``; None if there is none."""
        cursor: str | None = None
        for _ in range(10):  # a busy thread has more than a page of replies since then
            try:
                response = self.client.conversations_replies(
                    channel=work.channel_id, ts=work.reply_thread, oldest=f"{_aware(since).timestamp() - 60:.6f}",
                    include_all_metadata=True, limit=200, cursor=cursor)
            except SlackApiError as err:
                if _retryable_slack(err):
                    raise RetryLater(f"conversations.replies: {_describe(err)}") from err
                log.warning("cannot look for an earlier reply in %s/%s (%s); replying", work.channel_id,
                            work.message_ts, _describe(err))
                return None
            except (SlackClientError, OSError) as err:
                raise RetryLater(f"conversations.replies: {_describe(err)}") from err
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                if metadata.get("event_type") == REPLY_EVENT and (
                        metadata.get("event_payload") or {}).get("message_ts") == work.message_ts:
                    return str(message["ts"])
            cursor = ((response.get("response_metadata") or {}).get("next_cursor") or "").strip() or None
            if not response.get("has_more") or cursor is None:
                break
        return None

    def _post_reply(self, work: MessageWork, text: str, reply_blocks: list[blocks.Block],
                    giving_up: bool) -> str | None:
        metadata = {"event_type": REPLY_EVENT,
                    "event_payload": {"channel": work.channel_id, "message_ts": work.message_ts}}
        try:
            response = self.client.chat_postMessage(channel=work.channel_id, thread_ts=work.reply_thread, text=text,
                                                    blocks=reply_blocks, unfurl_links=False, unfurl_media=False,
                                                    metadata=metadata)
            return str(response["ts"])
        except SlackApiError as err:
            if _retryable_slack(err) and not giving_up:
                raise RetryLater(f"chat.postMessage: {_describe(err)}") from err
            if err.response.get("error") in {"invalid_blocks", "invalid_blocks_format", "msg_too_long"}:
                log.error("reply blocks rejected (%s); posting text only", _describe(err))
                try:
                    response = self.client.chat_postMessage(channel=work.channel_id, thread_ts=work.reply_thread,
                                                            text=text, unfurl_links=False, unfurl_media=False,
                                                            metadata=metadata)
                    return str(response["ts"])
                except SlackApiError as again:
                    err = again
            log.error("reply to channel=%s ts=%s not posted: %s", work.channel_id, work.message_ts, _describe(err))
            return None
        except (SlackClientError, OSError) as err:
            if giving_up:
                log.error("reply to channel=%s ts=%s not posted: %s", work.channel_id, work.message_ts,
                          _describe(err))
                return None
            raise RetryLater(f"chat.postMessage: {_describe(err)}") from err

    def _react(self, work: MessageWork, name: str, *, add: bool) -> None:
        call = self.client.reactions_add if add else self.client.reactions_remove
        try:
            call(channel=work.channel_id, timestamp=work.message_ts, name=name)
        except SlackApiError as err:
            if err.response.get("error") not in {"already_reacted", "no_reaction"}:
                log.info("reaction %s on %s/%s: %s", name, work.channel_id, work.message_ts, _describe(err))
        except (SlackClientError, OSError) as err:
            log.info("reaction %s on %s/%s: %s", name, work.channel_id, work.message_ts, _describe(err))

    def _permalink(self, work: MessageWork) -> str | None:
        try:
            return str(self.client.chat_getPermalink(channel=work.channel_id, message_ts=work.message_ts)["permalink"])
        except (SlackApiError, SlackClientError, OSError, KeyError) as err:
            log.info("no permalink for %s/%s: %s", work.channel_id, work.message_ts, _describe(err))
            return None

    def _channel_name(self, channel_id: str) -> str | None:
        now = time.monotonic()
        cached = self._names.get(channel_id)
        if cached is not None and cached.expires > now:
            return cached.value
        try:
            found = self.client.conversations_info(channel=channel_id)["channel"].get("name")
            name = str(found) if found else None
        except (SlackApiError, SlackClientError, OSError, KeyError) as err:
            log.info("no channel name for %s: %s", channel_id, _describe(err))
            name = None
        self._names[channel_id] = _Cached(name, now + (self.options.cache_ttl if name else 60.0))
        return name

    def _upload_annotated(self, work: MessageWork, items: list[tuple[ImageOutcome, Annotated]]) -> None:
        uploads = []
        for outcome, image in items:
            stem = outcome.name.rsplit(".", 1)[0] if "." in outcome.name else outcome.name
            top = outcome.record.top_labels(self.settings.label_min_confidence, 5) if outcome.record else ()
            labels = ", ".join(label.name for label in top)
            uploads.append({
                "file": image.data, "filename": f"{stem}-annotated.{image.extension}",
                "title": f"{outcome.name}, annotated", "alt_txt": (labels or "annotated image")[:1000],
            })
        try:
            self.client.files_upload_v2(file_uploads=uploads, channel=work.channel_id, thread_ts=work.reply_thread)
        except (SlackApiError, SlackClientError, OSError) as err:
            log.warning("annotated copies for %s/%s not uploaded: %s", work.channel_id, work.message_ts,
                        _describe(err))

    def _notify_moderators(self, work: MessageWork, outcome: ImageOutcome, permalink: str | None) -> None:
        assert outcome.record is not None and self.settings.moderation_channel
        text, notice = blocks.moderation_notice(
            outcome.record, channel_id=work.channel_id, permalink=permalink, file_name=outcome.name,
            moderation_min_confidence=self.settings.moderation_min_confidence,
        )
        try:
            self.client.chat_postMessage(channel=self.settings.moderation_channel, text=text, blocks=notice,
                                         unfurl_links=False, unfurl_media=False)
        except (SlackApiError, SlackClientError, OSError) as err:
            log.error("moderation notice for image=%s not posted: %s", outcome.record.id, _describe(err))


def _shares_in(info: dict[str, Any], channel_id: str) -> list[dict[str, Any]]:
    shares = info.get("shares") or {}
    found: list[dict[str, Any]] = []
    for kind in ("public", "private"):
        found.extend(s for s in (shares.get(kind) or {}).get(channel_id) or () if s.get("ts"))
    return found


def _retryable_slack(err: SlackApiError) -> bool:
    status = getattr(err.response, "status_code", 200) or 200
    return err.response.get("error") in RETRYABLE_SLACK_ERRORS or status >= 500 or status == 429


def _describe(err: BaseException) -> str:
    if isinstance(err, SlackApiError):
        return f"Slack error {err.response.get('error')!r}"
    return f"{type(err).__name__}: {err}"


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _int(value: object) -> int:
    """A Slack number that may be missing or a string (``size``)."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return 0
    return max(0, number)
