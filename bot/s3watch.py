"""S3 as a second way in ("analyse on upload"): ``imgbot watch s3://bucket/prefix``.

Two ways of noticing new objects end in the same ``S3Watcher.ingest_object``:

* **listing** (``scan``): ListObjectsV2 under the prefix, starting after the stored
  watermark (``s3_watermarks``), one page of up to 1,000 keys at a time; the watermark
  moves to the end of a page once every object in it is handled. S3 lists keys in
  UTF-8 order, so "new" means "sorts after the last key seen": right for keys that begin
  with a date or a time, as most upload paths do. ``--from-start`` lists everything again.
* **events**: S3 event notifications delivered to the SQS queue (``IMGBOT_QUEUE_URL``)
  are handled by ``imgbot worker`` (see ``bot.queue.handlers``) and catch every new key.

Each object is a sighting ``s3://bucket/key``: the same object twice is the same
sighting and is analysed once, and an object already sighted is not even downloaded
again. Every object is offered to the pipeline, which decides by content whether it is
an image (anything else fails with a reason, as in ``imgbot analyze``). Objects larger
than ``IMGBOT_MAX_BYTES`` are skipped without downloading them. The originals imgbot
itself keeps under ``IMGBOT_STORAGE`` are never ingested: watching a prefix inside that
location is refused, and its keys are skipped when it lies inside the watched prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import classify
from bot.core.types import IngestResult, Source
from bot.errors import ConfigError, ImgbotError, StorageError
from bot.wiring import Core
from db import work_queries

log = logging.getLogger("imgbot.watch")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        scheme, sep, rest = url.strip().partition("://")
        bucket, _, prefix = rest.partition("/")
        if not sep or scheme.lower() != "s3" or not bucket:
            raise ConfigError(f"{url!r} is not an S3 location: use s3://BUCKET/PREFIX (the prefix may be empty).")
        return cls(bucket, prefix)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class WatchResult:
    """What happened to one object: an ingest outcome, or ``skipped`` / ``seen`` / ``gone`` / ``unreachable``."""

    key: str
    outcome: str
    result: IngestResult | None = None
    reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "unreachable")


class S3Watcher:
    """Finds new objects in S3 and hands each to the core once."""

    def __init__(self, core: Core, client: Any) -> None:
        self.core = core
        self.client = client
        self.own = _own_location(core.settings.storage_url)

    # -- one object ---------------------------------------------------------------------------

    def is_own(self, bucket: str, key: str) -> bool:
        """Whether ``key`` is one of the originals imgbot stores under ``IMGBOT_STORAGE``."""
        if self.own is None or bucket != self.own.bucket:
            return False
        own_prefix = self.own.prefix.strip("/")
        return not own_prefix or key.startswith(own_prefix + "/")

    def ingest_object(self, bucket: str, key: str, size: int | None = None, *, check_seen: bool = True
                      ) -> WatchResult:
        """Download and ingest one object unless it is imgbot's own, too large, or already sighted."""
        location = S3Location(bucket, "")
        if key.endswith("/"):
            return WatchResult(key, "skipped", reason="a folder placeholder")
        if self.is_own(bucket, key):
            return WatchResult(key, "skipped", reason="one of imgbot's own stored originals (IMGBOT_STORAGE)")
        source = Source.s3(location.uri(key))
        if check_seen and self.core.seen([source]):
            return WatchResult(key, "seen")
        if size is not None and size > self.core.settings.max_bytes:
            log.info("s3 object %s skipped: %d bytes, over IMGBOT_MAX_BYTES", location.uri(key), size)
            return WatchResult(key, "skipped", reason=f"larger than IMGBOT_MAX_BYTES ({size:,} bytes)")
        with self.core.flow.admit(size or 0):  # admitted before the download: its bytes count from the start
            try:
                data = self._download(bucket, key)
            except _Gone:
                return WatchResult(key, "gone", reason="deleted before it could be read")
            except StorageError as err:
                log.warning("s3 object %s not read: %s", location.uri(key), err.detail)
                return WatchResult(key, "unreachable" if err.retryable else "failed", reason=err.user_message)
            result = self.core.ingest(data, source)
        return WatchResult(key, result.outcome, result=result, reason=result.reason)

    def _download(self, bucket: str, key: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=bucket, Key=key)
            data: bytes = answer["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            failure = classify(exc)
            if failure.kind == "not_found" and failure.code != "NoSuchBucket":
                raise _Gone() from exc
            message = (f"imgbot could not read s3://{bucket}/{key} ({failure.code})"
                       + (": check s3:GetObject in the IAM policy." if failure.kind in ("denied", "credentials")
                          else "."))
            raise StorageError(message, detail=f"GetObject s3://{bucket}/{key}: {failure.detail}",
                               retryable=failure.retryable) from exc
        return data

    # -- listing ------------------------------------------------------------------------------

    def check(self, location: S3Location) -> None:
        """Refuse to watch a location inside imgbot's own storage (its originals would come back in)."""
        if self.own is None or location.bucket != self.own.bucket:
            return
        own_prefix = self.own.prefix.strip("/")
        if not own_prefix or location.prefix.startswith(own_prefix + "/") or location.prefix == own_prefix:
            raise ConfigError(
                f"{location} is where imgbot keeps its own originals "
                f"(IMGBOT_STORAGE={self.core.settings.storage_url}); "
                "watch another prefix, or store originals elsewhere."
            )

    def scan(self, location: S3Location, *, on_result: Callable[[WatchResult], None] | None = None,
             from_start: bool = False) -> list[WatchResult]:
        """One pass: every object after the watermark, a page at a time; the watermark follows each finished page.

        Stops at the first page where an object could not be read for a reason that may
        pass (the next pass starts there again; objects already ingested are not downloaded twice).
        """
        self.check(location)
        with self.core.database.transaction() as session:
            if from_start:
                work_queries.reset_watermark(session, location.bucket, location.prefix)
            start_after = work_queries.get_watermark(session, location.bucket, location.prefix)
        results: list[WatchResult] = []
        for page in self._pages(location, start_after):
            page_results = self._handle_page(location, page, on_result)
            results.extend(page_results)
            last_good = _last_contiguous(page, page_results)
            if last_good is not None:
                with self.core.database.transaction() as session:
                    work_queries.set_watermark(session, location.bucket, location.prefix, last_good,
                                               datetime.now(UTC))
            if any(r.outcome == "unreachable" for r in page_results):
                break
        return results

    def _handle_page(self, location: S3Location, page: list[dict[str, Any]],
                     on_result: Callable[[WatchResult], None] | None) -> list[WatchResult]:
        sources = [Source.s3(location.uri(obj["Key"])) for obj in page]
        seen = self.core.seen(sources)

        def one(obj: dict[str, Any]) -> WatchResult:
            if Source.s3(location.uri(obj["Key"])).key in seen:
                return WatchResult(obj["Key"], "seen")
            try:
                return self.ingest_object(location.bucket, obj["Key"], obj.get("Size"), check_seen=False)
            except ImgbotError as err:  # the database or storage failing under us: try this object again later
                log.warning("s3 object %s: %s", location.uri(obj["Key"]), err.detail)
                return WatchResult(obj["Key"], "unreachable", reason=err.user_message)

        results = []
        with ThreadPoolExecutor(max_workers=self.core.settings.max_in_flight,
                                thread_name_prefix="imgbot-watch") as pool:
            for result in pool.map(one, page):
                results.append(result)
                if on_result is not None and result.outcome != "seen":
                    on_result(result)
        return results

    def _pages(self, location: S3Location, start_after: str | None) -> Iterator[list[dict[str, Any]]]:
        kwargs: dict[str, Any] = {"Bucket": location.bucket, "Prefix": location.prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        while True:
            try:
                answer = self.client.list_objects_v2(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                failure = classify(exc)
                hint = (" Check s3:ListBucket on the bucket in the IAM policy."
                        if failure.kind in ("denied", "credentials") else "")
                if failure.code == "NoSuchBucket":
                    raise ConfigError(f"The S3 bucket '{location.bucket}' does not exist (NoSuchBucket).") from exc
                raise StorageError(f"imgbot could not list {location} ({failure.code}).{hint}",
                                   detail=f"ListObjectsV2 {location}: {failure.detail}",
                                   retryable=failure.retryable) from exc
            contents = answer.get("Contents") or []
            if contents:
                yield [{"Key": obj["Key"], "Size": obj.get("Size")} for obj in contents]
            token = answer.get("NextContinuationToken")
            if not answer.get("IsTruncated") or not token:
                return
            kwargs.pop("StartAfter", None)
            kwargs["ContinuationToken"] = token


class _Gone(Exception):
    pass


def _own_location(storage_url: str) -> S3Location | None:
    scheme, sep, _ = storage_url.strip().partition("://")
    return S3Location.parse(storage_url) if sep and scheme.lower() == "s3" else None


def _last_contiguous(page: list[dict[str, Any]], results: list[WatchResult]) -> str | None:
    """The last key of the page before the first object that must be tried again."""
    last = None
    for obj, result in zip(page, results, strict=True):
        if result.outcome == "unreachable":
            break
        last = obj["Key"]
    return last
