"""Originals kept in an S3 bucket, always server-side encrypted.

Keys are content-addressed (``ab/abcdef….jpg``), so an object that already exists
holds the same bytes, and a second put only writes them again. ``put`` asks S3 nothing
first: the database already dedupes images, so a HEAD before every upload would be one
more round trip (and more CPU than the upload itself) for an answer that is almost always
"not there"; keys this process stored recently are remembered and not sent again. botocore
errors are translated here into ``NotFound`` / ``StorageError`` with a message a
person can act on; the log gets the error code and S3's message, never the request,
its signature or a presigned URL.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import AwsFailure, classify
from bot.core.types import StoredObject
from bot.errors import ConfigError, NotFound, StorageError

logger = logging.getLogger("imgbot.storage")

SSE_MODES = ("AES256", "aws:kms", "aws:kms:dsse")

_PERMISSION = {"write to": "s3:PutObject", "read from": "s3:GetObject", "delete from": "s3:DeleteObject"}


def join_key(prefix: str, key: str) -> str:
    """``prefix/key`` with no doubled, leading or trailing slashes from the prefix."""
    prefix = prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


class S3Storage:
    """``Storage`` over ``s3://bucket/prefix``; every put carries ``ServerSideEncryption``."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        sse: str = "AES256",
        kms_key_id: str | None = None,
    ) -> None:
        if not bucket:
            raise ConfigError("IMGBOT_STORAGE needs a bucket name: s3://BUCKET/PREFIX.")
        if sse not in SSE_MODES:
            raise ConfigError(f"IMGBOT_S3_SSE must be one of {', '.join(SSE_MODES)}, got {sse!r}.")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.sse = sse
        self.kms_key_id = kms_key_id or None
        self._stored = _RecentKeys()

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def object_key(self, key: str) -> str:
        """The full S3 object key of a storage key (the prefix plus the key)."""
        if not key or key.startswith("/"):
            raise StorageError(
                "imgbot refused to use an unsafe storage key.", detail=f"unsafe storage key {key!r}", retryable=False
            )
        return join_key(self.prefix, key)

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        object_key = self.object_key(key)
        stored = StoredObject(uri=f"s3://{self.bucket}/{object_key}", key=key, bucket=self.bucket)
        if object_key in self._stored:
            logger.debug("already stored bucket=%s key=%s", self.bucket, object_key)
            return stored
        extra: dict[str, str] = {"ServerSideEncryption": self.sse}
        if self.sse.startswith("aws:kms") and self.kms_key_id:
            extra["SSEKMSKeyId"] = self.kms_key_id
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=object_key, Body=data, ContentType=content_type, **extra
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("write to", object_key, exc) from exc
        logger.debug("stored bucket=%s key=%s bytes=%d sse=%s", self.bucket, object_key, len(data), self.sse)
        self._stored.add(object_key)
        return stored

    def get(self, key: str) -> bytes:
        object_key = self.object_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            body: bytes = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._error("read from", object_key, exc) from exc
        return body

    def delete(self, key: str) -> None:
        object_key = self.object_key(key)
        self._stored.discard(object_key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except (ClientError, BotoCoreError) as exc:
            failure = classify(exc)
            if failure.kind == "not_found" and failure.code != "NoSuchBucket":
                return
            raise self._error("delete from", object_key, exc) from exc

    def _error(self, action: str, object_key: str, exc: BaseException) -> StorageError | NotFound:
        failure = classify(exc)
        detail = f"S3 {action} s3://{self.bucket}/{object_key} failed: {failure.detail}"
        logger.debug("%s", detail)
        if failure.kind == "not_found" and failure.code != "NoSuchBucket":
            return NotFound(f"The stored image {object_key} is missing from the S3 bucket '{self.bucket}'.",
                            detail=detail)
        return StorageError(self._user_message(action, failure), detail=detail, retryable=failure.retryable)

    def _user_message(self, action: str, failure: AwsFailure) -> str:
        code = failure.code
        where = f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"
        if code == "NoSuchBucket":
            return (f"The S3 bucket '{self.bucket}' does not exist (NoSuchBucket). "
                    "Check the bucket name in IMGBOT_STORAGE and the AWS region.")
        if failure.kind == "credentials":
            return (f"imgbot's AWS credentials were refused by S3 ({code}). "
                    "Check AWS_PROFILE or the AWS access keys in the environment, and that they have not expired.")
        if failure.kind == "denied":
            permission = _PERMISSION.get(action, "s3:PutObject")
            kms = (" and kms:GenerateDataKey / kms:Decrypt on the KMS key"
                   if self.sse.startswith("aws:kms") else "")
            return (f"imgbot is not allowed to {action} the S3 bucket '{self.bucket}' ({code}). "
                    f"Check the IAM policy: {permission} on {where}*{kms}.")
        if failure.kind == "unsupported" and action == "write to":
            return (f"This S3 endpoint does not support what imgbot asked of it ({code}): server-side "
                    f"encryption {self.sse} is set on every upload (IMGBOT_S3_SSE), so the store must offer it.")
        if failure.kind == "unsupported":
            return f"This S3 endpoint cannot {action.split()[0]} objects the way imgbot asks ({code})."
        if failure.kind in ("throttled", "transient"):
            return f"S3 is busy or unreachable right now ({code}); imgbot will try again later."
        if failure.kind == "rejected":
            return f"S3 refused to {action.split()[0]} the image in the bucket '{self.bucket}' ({code})."
        return f"imgbot could not {action} the S3 bucket '{self.bucket}' ({code})."


class _RecentKeys:
    """The keys stored lately, oldest forgotten first: bounded memory for a long-running process."""

    def __init__(self, size: int = 10_000) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys

    def add(self, key: str) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)
