"""The in-process fake ``JobQueue``, with the SQS behaviour imgbot relies on.

A received job is hidden for ``visibility_timeout`` seconds and comes back unless it is
deleted; each receive counts, and with ``dead_letter`` set a job received
``max_receive_count`` times is moved there on the next receive, as SQS's redrive policy
does. Receipt handles change on every receive, and a stale one deletes nothing.
``sent`` and ``deleted`` count calls so tests can assert on them.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.queue import ReceivedJob


@dataclass
class _Message:
    id: str
    body: str
    visible_at: float
    receive_count: int = 0
    receipt: str = ""


class MemoryQueue:
    def __init__(self, *, visibility_timeout: int = 30, dead_letter: MemoryQueue | None = None,
                 max_receive_count: int = 5) -> None:
        self.visibility_timeout = visibility_timeout
        self.dead_letter = dead_letter
        self.max_receive_count = max_receive_count
        self._messages: list[_Message] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self.sent = 0
        self.deleted = 0

    def send(self, body: Mapping[str, Any], *, delay: int = 0) -> None:
        self.send_raw(json.dumps(dict(body)), delay=delay)

    def send_raw(self, body: str, *, delay: int = 0) -> None:
        """Queue any text as it is (an S3 notification, or garbage)."""
        with self._cond:
            self._messages.append(_Message(f"m{next(self._ids)}", body, time.monotonic() + delay))
            self.sent += 1
            self._cond.notify_all()

    def receive(self, *, max_jobs: int = 10, wait_seconds: int = 20) -> list[ReceivedJob]:
        deadline = time.monotonic() + wait_seconds
        with self._cond:
            while True:
                jobs = self._take(max_jobs)
                remaining = deadline - time.monotonic()
                if jobs or remaining <= 0:
                    return jobs
                soonest = min((m.visible_at for m in self._messages), default=None)
                timeout = remaining if soonest is None else max(0.0, min(remaining, soonest - time.monotonic()))
                self._cond.wait(timeout or 0.01)

    def _take(self, max_jobs: int) -> list[ReceivedJob]:
        now = time.monotonic()
        jobs: list[ReceivedJob] = []
        for message in list(self._messages):
            if len(jobs) >= max_jobs:
                break
            if message.visible_at > now:
                continue
            if self.dead_letter is not None and message.receive_count >= self.max_receive_count:
                self._messages.remove(message)
                self.dead_letter.send_raw(message.body)
                continue
            message.receive_count += 1
            message.receipt = f"{message.id}-{message.receive_count}"
            message.visible_at = now + self.visibility_timeout
            jobs.append(ReceivedJob(message.id, message.body, message.receipt, message.receive_count))
        return jobs

    def delete(self, job: ReceivedJob) -> None:
        with self._cond:
            for message in self._messages:
                if message.receipt == job.receipt:
                    self._messages.remove(message)
                    self.deleted += 1
                    return

    def extend(self, job: ReceivedJob, seconds: int) -> None:
        with self._cond:
            for message in self._messages:
                if message.receipt == job.receipt:
                    message.visible_at = time.monotonic() + seconds
                    self._cond.notify_all()
                    return

    def __len__(self) -> int:
        with self._cond:
            return len(self._messages)

    def bodies(self) -> list[str]:
        with self._cond:
            return [message.body for message in self._messages]
