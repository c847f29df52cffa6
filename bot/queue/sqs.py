"""``JobQueue`` on Amazon SQS (standard queues), through the one boto3 client factory.

The queue's own ``VisibilityTimeout`` is read once (``GetQueueAttributes``) so the
worker knows how often to extend a long job; retries, the dead-letter queue and its
``maxReceiveCount`` are the queue's redrive policy, not imgbot's. botocore errors are
translated here into ``QueueError`` naming the IAM action that is missing, if any.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import classify
from bot.errors import QueueError
from bot.queue import ReceivedJob

log = logging.getLogger("imgbot.queue")

MAX_VISIBILITY = 12 * 3600  # SQS's limit for ChangeMessageVisibility
DEFAULT_VISIBILITY = 30


class SqsQueue:
    def __init__(self, url: str, client: Any) -> None:
        self.url = url
        self.client = client
        self._visibility: int | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqsQueue({self.url})"

    @property
    def visibility_timeout(self) -> int:
        with self._lock:
            if self._visibility is None:
                attributes = self._call("sqs:GetQueueAttributes", self.client.get_queue_attributes,
                                        QueueUrl=self.url, AttributeNames=["VisibilityTimeout"])
                self._visibility = int(attributes.get("Attributes", {}).get("VisibilityTimeout", DEFAULT_VISIBILITY))
            return self._visibility

    def send(self, body: Mapping[str, Any], *, delay: int = 0) -> None:
        self._call("sqs:SendMessage", self.client.send_message, QueueUrl=self.url,
                   MessageBody=json.dumps(dict(body), separators=(",", ":")), DelaySeconds=max(0, min(delay, 900)))

    def receive(self, *, max_jobs: int = 10, wait_seconds: int = 20) -> list[ReceivedJob]:
        answer = self._call(
            "sqs:ReceiveMessage", self.client.receive_message, QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(max_jobs, 10)), WaitTimeSeconds=max(0, min(wait_seconds, 20)),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            ReceivedJob(id=m["MessageId"], body=m.get("Body", ""), receipt=m["ReceiptHandle"],
                        receive_count=int((m.get("Attributes") or {}).get("ApproximateReceiveCount", 1)))
            for m in answer.get("Messages") or []
        ]

    def delete(self, job: ReceivedJob) -> None:
        self._call("sqs:DeleteMessage", self.client.delete_message, QueueUrl=self.url, ReceiptHandle=job.receipt)

    def extend(self, job: ReceivedJob, seconds: int) -> None:
        self._call("sqs:ChangeMessageVisibility", self.client.change_message_visibility, QueueUrl=self.url,
                   ReceiptHandle=job.receipt, VisibilityTimeout=max(0, min(int(seconds), MAX_VISIBILITY)))

    def _call(self, action: str, method: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            failure = classify(exc)
            detail = f"{action} on {self.url} failed: {failure.detail}"
            if failure.kind in ("denied", "credentials") or failure.code in ("AccessDenied", "AccessDeniedException"):
                message = (f"imgbot is not allowed to use the SQS queue ({failure.code}). Check the IAM policy: "
                           f"{action} on the queue, and the AWS credentials.")
            elif failure.code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                message = ("The SQS queue in IMGBOT_QUEUE_URL does not exist (or is in another region than "
                           "AWS_REGION).")
            elif failure.retryable:
                message = f"SQS is busy or unreachable right now ({failure.code}); imgbot will try again."
            else:
                message = f"SQS refused {action} ({failure.code})."
            raise QueueError(message, detail=detail, retryable=failure.retryable) from exc
        return answer
