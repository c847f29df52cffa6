"""The work queue: a small port, the jobs that travel on it, and how to pick one from ``IMGBOT_QUEUE_URL``.

    JobQueue (Protocol)          send / receive (long poll) / delete / extend (change visibility)
    ├── SqsQueue    sqs.py       Amazon SQS through boto3 (``AWS_ENDPOINT_URL_SQS`` works)
    └── MemoryQueue memory.py    the in-process fake, with SQS's semantics: visibility timeouts,
                                 receive counts and a dead-letter queue after N receives

Delivery is at least once. Nothing on the queue is the source of truth: a job names
work the database already records (a Slack message claim, an image row, an S3 object
whose sighting makes it once), so a redelivered job whose work is done is deleted with
no side effects. Job bodies are small JSON objects (``parse_job`` reads them):

    {"kind": "slack_message", "channel": "C0123", "ts": "1700000000.000100"}
    {"kind": "image", "image_id": 42}
    an S3 event notification: {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": …},
        "object": {"key": …}}}]} with URL-encoded keys, also wrapped in an SNS notification;
        the ``s3:TestEvent`` S3 sends when notifications are configured is ignored
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import unquote_plus

from bot.errors import ConfigError, ImgbotError

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["JobQueue", "MalformedJob", "ReceivedJob", "Task", "build_queue", "image_job", "parse_job",
           "slack_message_job"]

TaskKind = Literal["slack_message", "image", "s3_object", "ignore"]


@dataclass(frozen=True)
class ReceivedJob:
    """One message as received: its body, the handle to delete or extend it, and how often it was received."""

    id: str
    body: str
    receipt: str
    receive_count: int


class JobQueue(Protocol):
    """At-least-once delivery with visibility timeouts; errors are ``QueueError``."""

    @property
    def visibility_timeout(self) -> int:
        """Seconds a received job stays hidden from other consumers unless extended."""
        ...

    def send(self, body: Mapping[str, Any], *, delay: int = 0) -> None:
        """Queue a job (a JSON object), visible after ``delay`` seconds."""
        ...

    def receive(self, *, max_jobs: int = 10, wait_seconds: int = 20) -> list[ReceivedJob]:
        """Up to ``max_jobs`` visible jobs, waiting up to ``wait_seconds`` for the first (long polling)."""
        ...

    def delete(self, job: ReceivedJob) -> None:
        """Acknowledge: the job is finished and never delivered again."""
        ...

    def extend(self, job: ReceivedJob, seconds: int) -> None:
        """Keep the job hidden for ``seconds`` from now (a heartbeat, or a delay before the next try)."""
        ...


class MalformedJob(ImgbotError):
    """A message no handler can understand; it is left for the queue's dead-letter policy."""


@dataclass(frozen=True)
class Task:
    """One piece of work named by a job (an S3 notification may name several objects)."""

    kind: TaskKind
    channel: str = ""
    ts: str = ""
    image_id: int = 0
    bucket: str = ""
    key: str = ""

    @property
    def label(self) -> str:
        """Short form for logs."""
        if self.kind == "slack_message":
            return f"slack:{self.channel}/{self.ts}"
        if self.kind == "image":
            return f"image:{self.image_id}"
        if self.kind == "s3_object":
            return f"s3://{self.bucket}/{self.key}"
        return "ignored"


def slack_message_job(channel: str, ts: str) -> dict[str, Any]:
    return {"kind": "slack_message", "channel": channel, "ts": ts}


def image_job(image_id: int) -> dict[str, Any]:
    return {"kind": "image", "image_id": image_id}


def parse_job(body: str) -> list[Task]:
    """The tasks a message names; ``MalformedJob`` when it names none we know."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MalformedJob("The job is not JSON.", detail=f"not JSON: {body[:200]!r}") from exc
    if not isinstance(data, dict):
        raise MalformedJob("The job is not a JSON object.", detail=f"not an object: {body[:200]!r}")
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):  # S3 → SNS → SQS
        return parse_job(data["Message"])
    kind = data.get("kind")
    if kind == "slack_message":
        channel, ts = data.get("channel"), data.get("ts")
        if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
            return [Task("slack_message", channel=channel, ts=ts)]
    elif kind == "image":
        image_id = data.get("image_id")
        if isinstance(image_id, int) and not isinstance(image_id, bool) and image_id > 0:
            return [Task("image", image_id=image_id)]
    elif kind is None and data.get("Event") == "s3:TestEvent":
        return [Task("ignore")]
    elif kind is None and isinstance(data.get("Records"), list):
        return _s3_records(data["Records"], body)
    raise MalformedJob("The job names no work imgbot knows.", detail=f"unknown job: {body[:200]!r}")


def _s3_records(records: list[Any], body: str) -> list[Task]:
    tasks = []
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            raise MalformedJob("The job is not an S3 event notification.", detail=f"record: {str(record)[:200]}")
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            tasks.append(Task("ignore"))  # removals, restores, lifecycle: nothing to analyse
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = (s3.get("object") or {}).get("key")
        if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
            raise MalformedJob("The S3 event names no object.", detail=f"record: {str(record)[:200]}")
        tasks.append(Task("s3_object", bucket=bucket, key=unquote_plus(key)))  # keys arrive form-encoded
    if not tasks:
        raise MalformedJob("The S3 event has no records.", detail=f"no records: {body[:200]!r}")
    return tasks


def build_queue(settings: Settings) -> JobQueue | None:
    """The queue named by ``IMGBOT_QUEUE_URL`` (an SQS queue URL), or None when it is unset."""
    url = (settings.queue_url or "").strip()
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise ConfigError(
            f"IMGBOT_QUEUE_URL={url!r} is not an SQS queue URL "
            "(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME, as `aws sqs get-queue-url` prints it)."
        )
    from bot.aws import make_client
    from bot.queue.sqs import SqsQueue

    return SqsQueue(url, make_client("sqs", settings))
