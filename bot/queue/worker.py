"""The consumer behind ``imgbot worker`` when ``IMGBOT_QUEUE_URL`` is set.

    receive (long poll, up to the free threads) ─► pool (IMGBOT_CONCURRENCY threads)
        each job: parse ─► handler per task ─► done: delete │ retry: hide for a back-off │ busy: hide briefly
    heartbeat thread: extends the visibility of every job still running, so a long job
        is not handed to a second worker; a killed worker stops extending, and the job
        comes back to another one when its visibility expires
    idle work (``finish_pending``) every ``idle_interval`` seconds on its own thread
    stopping (SIGTERM): the poll in progress ends (polls are short: ``wait_seconds``), running
        jobs get ``stop_grace`` seconds to finish, and the rest are handed back (visibility 0) to
        another worker: a stop takes a couple of seconds. A 20 s long poll would hold a stop up
        for as long, and abandoning one is worse: SQS may still hand it the jobs just given back.

A handler returns ``"done"`` (the work is finished, or was already: the job is deleted),
``"retry"`` (it may succeed later) or ``"busy"`` (another live process holds the work).
A handler that raises, and a message nobody understands, leave the job alone: it comes
back after its visibility timeout, and the queue's redrive policy moves it to the
dead-letter queue after ``maxReceiveCount`` receives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Literal

from bot.errors import ImgbotError
from bot.executor import QueueExecutor
from bot.queue import JobQueue, MalformedJob, ReceivedJob, Task, parse_job

log = logging.getLogger("imgbot.queue")

Outcome = Literal["done", "retry", "busy"]
Handler = Callable[[Task], Outcome]


@dataclass
class WorkerStats:
    received: int = 0
    done: int = 0
    retried: int = 0
    busy: int = 0
    left: int = 0  # raised or malformed: left to the visibility timeout and the redrive policy
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass
class WorkerOptions:
    """Timings; production uses the defaults, tests shorten them."""

    retry_delays: Sequence[int] = (30, 120, 300, 600)
    busy_delay: int = 30
    wait_seconds: int = 2  # short polls: a stop waits for the one in progress (an idle poll costs $0.40/M)
    idle_interval: float = 60.0
    receive_error_delay: float = 5.0
    stop_grace: float = 1.0


class QueueWorker:
    def __init__(self, queue: JobQueue, handlers: Mapping[str, Handler], *, concurrency: int = 8,
                 options: WorkerOptions | None = None, idle: Callable[[], object] | None = None,
                 room: Callable[[], int] | None = None) -> None:
        self.queue = queue
        self.handlers = {"ignore": _ignore, **handlers}
        self.concurrency = max(1, concurrency)
        # How many more jobs the pipeline would start now: jobs are not taken from the queue (and kept
        # from other workers) only to wait here for a slot.
        self.room = room
        self.options = options or WorkerOptions()
        self.idle = idle
        self.stats = WorkerStats()
        self._inflight: dict[str, ReceivedJob] = {}
        self._lock = threading.Lock()

    def run(self, stop: threading.Event | None = None, *, once: bool = False) -> WorkerStats:
        """Consume until ``stop`` is set (or, with ``once``, until a receive finds nothing and all is finished)."""
        stop = stop or threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(stop,), name="imgbot-queue-heartbeat",
                                     daemon=True)
        heartbeat.start()
        idle_thread: threading.Thread | None = None
        next_idle = time.monotonic() + self.options.idle_interval
        futures: dict[Future[None], ReceivedJob] = {}
        # Daemon threads: a job still running when the process stops does not hold the exit up.
        pool = QueueExecutor(max_workers=self.concurrency, thread_name_prefix="imgbot-job")
        try:
            while not stop.is_set():
                if self.idle is not None and time.monotonic() >= next_idle and not (
                        idle_thread and idle_thread.is_alive()):
                    idle_thread = threading.Thread(target=self._run_idle, name="imgbot-idle", daemon=True)
                    idle_thread.start()
                    next_idle = time.monotonic() + self.options.idle_interval
                free = self.concurrency - len(futures)
                if self.room is not None and futures:
                    free = min(free, self.room())
                if free <= 0:
                    _wait_some(futures, timeout=0.5)
                    continue
                wait_seconds = 1 if once else self.options.wait_seconds
                try:
                    jobs = self.queue.receive(max_jobs=min(10, free), wait_seconds=wait_seconds)
                except ImgbotError as err:
                    log.warning("receiving from the queue failed: %s", err.detail)
                    stop.wait(self.options.receive_error_delay)
                    continue
                if not jobs:
                    if once and not futures and not stop.is_set():
                        break
                    _wait_some(futures, timeout=0.0)
                    continue
                for job in jobs:
                    with self._lock:
                        self._inflight[job.id] = job
                        self.stats.received += 1
                    futures[pool.submit(self._handle, job)] = job
        finally:
            stop.set()
            self._finish_or_hand_back(futures)
            pool.shutdown(wait=False)
        heartbeat.join(timeout=5)
        if idle_thread is not None:  # finished, unless stopping: then it must not hold the stop up
            idle_thread.join(timeout=None if once else self.options.stop_grace)
        return self.stats

    def _finish_or_hand_back(self, futures: dict[Future[None], ReceivedJob]) -> None:
        """Give running jobs ``stop_grace`` seconds; hand the others back to the queue for another worker."""
        if not futures:
            return
        done, running = wait(futures, timeout=self.options.stop_grace)
        for future in done:
            future.result()  # _handle catches everything; this only surfaces bugs
        for future in running:
            job = futures[future]
            try:
                self.queue.extend(job, 0)
            except ImgbotError as err:
                log.warning("job=%s not handed back (%s); it returns after its visibility timeout", job.id,
                            err.detail)
            else:
                log.info("job=%s handed back to the queue: still running when the worker stopped", job.id)

    # -- one job ------------------------------------------------------------------------------

    def _handle(self, job: ReceivedJob) -> None:
        started = time.perf_counter()
        label = "?"
        outcome: str
        try:
            tasks = parse_job(job.body)
            label = ",".join(task.label for task in tasks)
            outcome = _combine([self._run_task(task) for task in tasks])
        except MalformedJob as err:
            log.error("job=%s receives=%d malformed, left for the dead-letter queue: %s", job.id,
                      job.receive_count, err.detail)
            outcome = "left"
        except Exception:
            log.exception("job=%s receives=%d failed unexpectedly; it comes back after its visibility timeout",
                          job.id, job.receive_count)
            outcome = "left"
        finally:
            with self._lock:
                self._inflight.pop(job.id, None)
        try:
            if outcome == "done":
                self.queue.delete(job)
            elif outcome == "retry":
                delays = self.options.retry_delays
                self.queue.extend(job, delays[min(job.receive_count, len(delays)) - 1])
            elif outcome == "busy":
                self.queue.extend(job, self.options.busy_delay)
        except ImgbotError as err:  # the job comes back after its visibility timeout; handlers are idempotent
            log.warning("job=%s could not be %s: %s", job.id, "deleted" if outcome == "done" else "delayed",
                        err.detail)
        with self._lock:
            field_name = {"done": "done", "retry": "retried", "busy": "busy"}.get(outcome, "left")
            setattr(self.stats, field_name, getattr(self.stats, field_name) + 1)
            self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
        log.info("job=%s task=%s receives=%d outcome=%s secs=%.2f", job.id, label, job.receive_count, outcome,
                 time.perf_counter() - started)

    def _run_task(self, task: Task) -> Outcome:
        handler = self.handlers.get(task.kind)
        if handler is None:
            raise MalformedJob(f"No handler for {task.kind} jobs here.", detail=f"no handler for {task.kind}")
        return handler(task)

    # -- background ---------------------------------------------------------------------------

    def _heartbeat(self, stop: threading.Event) -> None:
        """Extend every running job's visibility well before it runs out."""
        try:
            visibility = max(1, int(self.queue.visibility_timeout))
        except ImgbotError as err:
            log.warning("the queue's visibility timeout is unknown (%s); assuming 30 s", err.detail)
            visibility = 30
        interval = max(0.3, visibility / 3)
        while not stop.wait(interval):
            with self._lock:
                running = list(self._inflight.values())
            for job in running:
                try:
                    self.queue.extend(job, visibility)
                except ImgbotError as err:
                    log.warning("job=%s visibility not extended: %s", job.id, err.detail)

    def _run_idle(self) -> None:
        assert self.idle is not None
        try:
            self.idle()
        except Exception:
            log.exception("periodic work failed")


def _ignore(task: Task) -> Outcome:
    return "done"


def _combine(outcomes: list[Outcome]) -> Outcome:
    if "retry" in outcomes:
        return "retry"
    if "busy" in outcomes:
        return "busy"
    return "done"


def _wait_some(futures: dict[Future[None], ReceivedJob], timeout: float) -> None:
    """Wait up to ``timeout`` for a job to end; ended jobs leave ``futures``."""
    if not futures:
        return
    done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
    for future in done:
        del futures[future]
        future.result()  # _handle catches everything; this only surfaces bugs
