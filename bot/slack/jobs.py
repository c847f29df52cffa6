"""Delivery of the work after the ack: when each claimed Slack message is worked on, and by whom.

    listener (after ack) ──claim (channel, ts)──► pool ──► MessageHandler.process (bot/slack/handling.py)
        not claimed in an ``off`` channel, nor in an ``on-demand`` one until someone asks
        (``accept_request``: a 🔍 reaction, the shortcut, a mention); the claim makes each message once
    scheduler thread: delayed file_shared look-ups, retries with back-off, a periodic sweep
    lease keeper thread: renews the lease of every claim this process is working on

What a message gets once it is worked on (download, ingest, reply, reactions, annotated
copies, moderation notice) is ``MessageHandler`` in ``bot/slack/handling.py``.

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
from bot.errors import ImgbotError
from bot.executor import QueueExecutor
from bot.queue import JobQueue, slack_message_job
from bot.slack import messages
from bot.slack.download import Downloader
from bot.slack.handling import MessageHandler
from bot.slack.work import MessageWork, RetryLater, describe, maybe_image
from bot.wiring import Core
from db import slack_queries
from db.queries import lease_owner
from db.slack_queries import QUEUED, MessageClaim

log = logging.getLogger("imgbot.slack.jobs")

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
        self.handler = MessageHandler(core=self.core, client=self.client, settings=self.settings,
                                      downloader=self.downloader, give_up_after=self.options.give_up_after,
                                      pending_wait=self.options.pending_wait, cache_ttl=self.options.cache_ttl)
        self._pool = QueueExecutor(max_workers=self.settings.max_in_flight, thread_name_prefix="imgbot-slack")
        self._light = QueueExecutor(max_workers=2, thread_name_prefix="imgbot-slack-light")
        self._scheduler: Scheduler | None = None
        self._lock = threading.Lock()
        self._inflight: set[int] = set()
        self._attempts: dict[int, int] = {}
        self._retry_due: dict[int, float] = {}
        self._works: dict[int, MessageWork] = {}
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

    @property
    def bot_user_id(self) -> str | None:
        return self._bot_user_id

    def run_light(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` after the ack on the small pool for quick Slack chores (a Home tab, a look-up)."""
        self._submit_light(fn, *args)

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

    def accept_request(self, channel_id: str, ts: str, user_id: str, team_id: str | None,
                       message: dict[str, Any] | None = None,
                       answer: Callable[[str], None] | None = None) -> None:
        """Someone asked for the images of message ``ts`` to be analysed. Looked up after the ack; the
        claim makes it happen once however many ask; ``answer`` (default: an ephemeral message to the
        asker) says why nothing will happen when the message has no images or imgbot is off here."""
        self._submit_light(self._resolve_request, channel_id, ts, user_id, team_id, message, answer)

    def _resolve_request(self, channel_id: str, ts: str, user_id: str, team_id: str | None,
                         message: dict[str, Any] | None, answer: Callable[[str], None] | None) -> None:
        def tell(text: str) -> None:
            if answer is not None:
                answer(text)
                return
            try:
                self.client.chat_postEphemeral(channel=channel_id, user=user_id, text=text)
            except (SlackApiError, SlackClientError, OSError) as err:
                log.info("could not answer %s in %s privately: %s", user_id, channel_id, describe(err))

        if self.core.channel_mode(channel_id) == "off":
            tell(messages.off_here())
            return
        if message is None or not message.get("files"):
            message = self._find_message(channel_id, ts, None) or self._find_reply_message(channel_id, ts)
        files = tuple(f for f in (message or {}).get("files") or () if isinstance(f, dict) and f.get("id"))
        files = tuple(f for f in files if maybe_image(f))
        if message is None or not files or message.get("bot_id") or message.get("subtype") == "bot_message":
            tell(messages.nothing_to_analyse())
            return
        work = MessageWork(team_id=team_id, channel_id=channel_id, message_ts=ts, thread_ts=message.get("thread_ts"),
                           user_id=message.get("user"), files=files)
        if not self._claim_and_submit(work, requested=True):
            log.info("analysis of channel=%s ts=%s asked by %s: already handled", channel_id, ts, user_id)

    def _find_reply_message(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        """A message inside a thread (``conversations.history`` lists only the threads' parents)."""
        try:
            response = self.client.conversations_replies(channel=channel_id, ts=ts, limit=200)
        except (SlackApiError, SlackClientError, OSError) as err:
            log.info("could not read message %s in %s: %s", ts, channel_id, describe(err))
            return None
        return next((dict(m) for m in response.get("messages") or [] if m.get("ts") == ts), None)

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

    def _claim_and_submit(self, work: MessageWork, *, requested: bool = False) -> bool:
        """Claim the message and hand it on; ``requested``: someone asked (a reaction, the shortcut, a mention)."""
        mode = self.core.channel_mode(work.channel_id)
        if mode == "off" or (mode == "on-demand" and not requested):  # off: never downloaded, stored, searchable
            log.info("slack message channel=%s ts=%s left alone: imgbot is %s in this channel", work.channel_id,
                     work.message_ts, mode)
            return False
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
            outcome = self.handler.process(claim, work) if self._take(claim) else "busy"
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
            outcome = self.handler.process(claim, work)
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
            log.warning("file_shared %s: files.info failed: %s", file_id, describe(err))
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
            log.info("could not read message %s in %s: %s", ts, channel_id, describe(err))
            return None
        for message in response.get("messages") or []:
            if message.get("ts") == ts:
                return dict(message)
        return None


def _shares_in(info: dict[str, Any], channel_id: str) -> list[dict[str, Any]]:
    shares = info.get("shares") or {}
    found: list[dict[str, Any]] = []
    for kind in ("public", "private"):
        found.extend(s for s in (shares.get(kind) or {}).get(channel_id) or () if s.get("ts"))
    return found
