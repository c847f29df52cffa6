"""What ``imgbot worker`` does with each kind of job: the same code paths as the in-process ones.

    slack_message  the claim is loaded from the database and processed by ``SlackJobs``
                   (download, ingest, one threaded reply): needs SLACK_BOT_TOKEN
    image          ``Core.resume_image``: finish a recorded image by id
    s3_object      ``S3Watcher.ingest_object``: download and ingest once (S3 event notifications)

Each handler is idempotent by the database (claim status and lease, image status and
lease, the object's sighting), so a redelivered job whose work is done is only deleted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.queue import Task
from bot.queue.worker import Handler, Outcome
from bot.wiring import Core

log = logging.getLogger("imgbot.queue")


@dataclass
class JobHandlers:
    """Builds the adapters a handler needs on first use (a worker fed only S3 events needs no Slack token)."""

    core: Core
    slack_factory: Callable[[], Any] | None = None
    s3_factory: Callable[[], Any] | None = None
    _slack: Any = field(default=None, init=False)
    _s3: Any = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def as_dict(self) -> dict[str, Handler]:
        return {"slack_message": self.slack_message, "image": self.image, "s3_object": self.s3_object}

    def slack_message(self, task: Task) -> Outcome:
        with self._lock:
            if self._slack is None:
                if self.slack_factory is None:
                    raise RuntimeError("this worker cannot handle Slack jobs: SLACK_BOT_TOKEN is not set")
                self._slack = self.slack_factory()
        outcome = self._slack.process_queued(task.channel, task.ts)
        return "retry" if outcome == "retry" else "busy" if outcome == "busy" else "done"

    def image(self, task: Task) -> Outcome:
        result = self.core.resume_image(task.image_id)
        if result is None:
            return "done"
        if result.outcome == "pending":
            return "busy"  # another live worker holds its lease
        return "retry" if result.outcome == "failed" and result.retryable else "done"

    def s3_object(self, task: Task) -> Outcome:
        with self._lock:
            if self._s3 is None:
                if self.s3_factory is None:
                    raise RuntimeError("this worker cannot read S3 objects")
                self._s3 = self.s3_factory()
        result = self._s3.ingest_object(task.bucket, task.key)
        if result.outcome == "skipped":
            log.info("s3 object s3://%s/%s skipped: %s", task.bucket, task.key, result.reason)
        # A failed image is retried from the database (`finish_pending`); only an unreadable object comes back.
        return "retry" if result.outcome == "unreachable" else "done"

    def close(self) -> None:
        if self._slack is not None:
            self._slack.shutdown(wait=True)


def build_handlers(core: Core) -> JobHandlers:
    """Handlers for every job kind, with the Slack and S3 adapters built from the core's settings."""
    settings = core.settings

    def slack() -> Any:
        from bot.slack.app import build_client
        from bot.slack.jobs import SlackJobs

        return SlackJobs(core=core, client=build_client(settings), settings=settings)

    def s3() -> Any:
        from bot.aws import make_client
        from bot.s3watch import S3Watcher

        return S3Watcher(core, make_client("s3", settings))

    return JobHandlers(core=core, slack_factory=slack if settings.slack_bot_token else None, s3_factory=s3)
