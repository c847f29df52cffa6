"""Storage adapters: S3 through boto3 against moto's server, the local folder, the in-memory fake."""

from __future__ import annotations

import errno
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bot.aws import make_client
from bot.config import Settings
from bot.core.ports import Storage
from bot.errors import ConfigError, NotFound, StorageError
from bot.storage import build_storage
from bot.storage.local import LocalStorage
from bot.storage.memory import MemoryStorage
from bot.storage.s3 import S3Storage
from tests.fakes.aws import moto_enforcing_iam, moto_server, use_fake_aws

KEY = "ab/abcdef0123456789.jpg"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def settings() -> Settings:
    return Settings(aws_max_attempts=2, concurrency=2)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_url: str) -> str:
    """boto3 pointed at moto through AWS_ENDPOINT_URL_S3 (and IAM, for the permission tests)."""
    use_fake_aws(monkeypatch, tmp_path, s3=moto_url, iam=moto_url)
    return moto_url


@pytest.fixture
def bucket(aws: str) -> str:
    name = f"imgbot-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def count_calls(client: Any, operation: str) -> list[str]:
    """Record each ``operation`` the client really sends (a botocore event, not a mock)."""
    seen: list[str] = []
    client.meta.events.register(f"before-call.s3.{operation}", lambda **_: seen.append(operation))
    return seen


# -- S3 -----------------------------------------------------------------------------------------


def test_every_put_is_server_side_encrypted(bucket: str, settings: Settings) -> None:
    storage = S3Storage(bucket, "originals", make_client("s3", settings))

    storage.put(KEY, b"jpeg bytes", "image/jpeg")
    storage.put("cd/cdef.png", b"png bytes", "image/png")

    s3 = boto3.client("s3")
    for key, content_type in (("originals/" + KEY, "image/jpeg"), ("originals/cd/cdef.png", "image/png")):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentType"] == content_type


def test_kms_encryption_names_the_key_when_one_is_given(bucket: str, settings: Settings) -> None:
    storage = S3Storage(bucket, "", make_client("s3", settings), sse="aws:kms", kms_key_id="alias/imgbot")

    storage.put(KEY, b"jpeg bytes", "image/jpeg")

    head = boto3.client("s3").head_object(Bucket=bucket, Key=KEY)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == "alias/imgbot"


def test_the_same_content_addressed_key_is_uploaded_once(bucket: str, settings: Settings) -> None:
    client = make_client("s3", settings)
    uploads = count_calls(client, "PutObject")
    storage = S3Storage(bucket, "originals", client)

    first = storage.put(KEY, b"same bytes", "image/jpeg")
    second = storage.put(KEY, b"same bytes", "image/jpeg")

    assert len(uploads) == 1
    assert first == second
    assert storage.get(KEY) == b"same bytes"


@pytest.mark.parametrize(
    ("prefix", "object_key"),
    [("originals", "originals/" + KEY), ("originals/", "originals/" + KEY), ("/a/b/", "a/b/" + KEY), ("", KEY)],
)
def test_put_returns_the_s3_uri_of_the_full_object_key(
    bucket: str, settings: Settings, prefix: str, object_key: str
) -> None:
    storage = S3Storage(bucket, prefix, make_client("s3", settings))

    stored = storage.put(KEY, b"bytes", "image/jpeg")

    assert stored.uri == f"s3://{bucket}/{object_key}"
    assert stored.key == KEY
    assert stored.bucket == bucket
    assert boto3.client("s3").get_object(Bucket=bucket, Key=object_key)["Body"].read() == b"bytes"


def test_get_of_a_missing_key_raises_not_found(bucket: str, settings: Settings) -> None:
    storage = S3Storage(bucket, "originals", make_client("s3", settings))

    with pytest.raises(NotFound):
        storage.get("zz/missing.jpg")


def test_delete_removes_the_object_and_a_missing_key_is_fine(bucket: str, settings: Settings) -> None:
    storage = S3Storage(bucket, "originals", make_client("s3", settings))
    storage.put(KEY, b"bytes", "image/jpeg")

    storage.delete(KEY)
    storage.delete(KEY)

    with pytest.raises(NotFound):
        storage.get(KEY)


def test_a_missing_bucket_is_a_permanent_error_naming_the_bucket(aws: str, settings: Settings) -> None:
    storage = S3Storage("imgbot-no-such-bucket", "originals", make_client("s3", settings))

    with pytest.raises(StorageError) as caught:
        storage.put(KEY, b"bytes", "image/jpeg")

    assert caught.value.retryable is False
    assert "imgbot-no-such-bucket" in caught.value.user_message
    assert "NoSuchBucket" in caught.value.user_message


def test_access_denied_is_a_permanent_error_that_names_the_missing_permission(
    bucket: str, settings: Settings, aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam = boto3.client("iam")
    user = f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}],
    }))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    storage = S3Storage(bucket, "originals", make_client("s3", settings))

    with moto_enforcing_iam(aws), pytest.raises(StorageError) as caught:
        storage.put(KEY, b"bytes", "image/jpeg")

    error = caught.value
    assert error.retryable is False
    assert error.user_message == (
        f"imgbot is not allowed to write to the S3 bucket '{bucket}' (AccessDenied). "
        f"Check the IAM policy: s3:PutObject on s3://{bucket}/originals/*."
    )


def test_refused_credentials_are_a_permanent_error_that_never_shows_the_secret(
    bucket: str, settings: Settings, aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIMGBOTUNKNOWN000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    storage = S3Storage(bucket, "originals", make_client("s3", settings))

    with moto_enforcing_iam(aws), pytest.raises(StorageError) as caught:
        storage.put(KEY, b"bytes", "image/jpeg")

    error = caught.value
    assert error.retryable is False
    assert "InvalidAccessKeyId" in error.user_message
    assert "AWS_PROFILE" in error.user_message
    assert "very-secret-value" not in f"{error.user_message} {error.detail}"


def test_an_unreachable_endpoint_is_a_retryable_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_fake_aws(monkeypatch, tmp_path, s3="http://127.0.0.1:9")  # the discard port: nothing listens
    storage = S3Storage("imgbot-any", "", make_client("s3", Settings(aws_max_attempts=1)))

    with pytest.raises(StorageError) as caught:
        storage.get(KEY)

    assert caught.value.retryable is True
    assert "try again later" in caught.value.user_message


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [("SlowDown", 503, True), ("InternalError", 500, True), ("AccessDenied", 403, False),
     ("SignatureDoesNotMatch", 403, False), ("InvalidArgument", 400, False), ("NotImplemented", 501, False)],
)
def test_s3_errors_are_sorted_into_retryable_and_permanent(
    aws: str, settings: Settings, code: str, status: int, retryable: bool
) -> None:
    client = make_client("s3", settings)
    storage = S3Storage("imgbot-stubbed", "", client)
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        with pytest.raises(StorageError) as caught:
            storage.get(KEY)

    assert caught.value.retryable is retryable
    assert code in caught.value.user_message


def test_a_store_without_server_side_encryption_names_the_setting(aws: str, settings: Settings) -> None:
    client = make_client("s3", settings)
    storage = S3Storage("imgbot-stubbed", "", client)
    with Stubber(client) as stub:  # what S3-compatible stores without a KMS answer
        stub.add_client_error("put_object", service_error_code="NotImplemented", http_status_code=501,
                              service_message="Server side encryption specified but KMS is not configured")
        with pytest.raises(StorageError) as caught:
            storage.put(KEY, b"data", "image/png")

    assert caught.value.retryable is False
    assert "IMGBOT_S3_SSE" in caught.value.user_message


def test_s3_storage_url_reaches_the_endpoint_from_the_environment(bucket: str) -> None:
    storage = build_storage(Settings(storage_url=f"s3://{bucket}/team/originals/"))

    stored = storage.put(KEY, b"bytes", "image/jpeg")

    assert isinstance(storage, S3Storage)
    assert stored.uri == f"s3://{bucket}/team/originals/{KEY}"
    head = boto3.client("s3").head_object(Bucket=bucket, Key=f"team/originals/{KEY}")
    assert head["ServerSideEncryption"] == "AES256"


def test_an_unknown_sse_mode_is_a_config_error_naming_the_variable(aws: str, settings: Settings) -> None:
    with pytest.raises(ConfigError, match="IMGBOT_S3_SSE"):
        S3Storage("imgbot-any", "", make_client("s3", settings), sse="rot13")


# -- choosing a storage -------------------------------------------------------------------------


def test_relative_file_urls_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    storage = build_storage(Settings(storage_url="file://./data/images"))
    stored = storage.put(KEY, b"bytes", "image/jpeg")

    assert isinstance(storage, LocalStorage)
    assert (tmp_path / "data" / "images" / "ab" / "abcdef0123456789.jpg").read_bytes() == b"bytes"
    assert stored.uri == (tmp_path / "data" / "images" / KEY).resolve().as_uri()


def test_absolute_file_urls_and_memory_urls_are_understood(tmp_path: Path) -> None:
    local = build_storage(Settings(storage_url=f"file://{tmp_path}/originals"))
    memory = build_storage(Settings(storage_url="memory://"))

    assert isinstance(local, LocalStorage)
    assert local.folder == (tmp_path / "originals").resolve()
    assert isinstance(memory, MemoryStorage)


@pytest.mark.parametrize("url", ["ftp://host/images", "./data/images", "s3://", "file://", "gs://bucket"])
def test_an_unknown_storage_url_is_a_config_error_naming_imgbot_storage(url: str) -> None:
    with pytest.raises(ConfigError, match="IMGBOT_STORAGE"):
        build_storage(Settings(storage_url=url))


def test_every_storage_satisfies_the_storage_protocol(tmp_path: Path, aws: str, settings: Settings) -> None:
    storages = [LocalStorage(tmp_path), MemoryStorage(), S3Storage("imgbot-any", "", make_client("s3", settings))]

    assert all(isinstance(storage, Storage) for storage in storages)


# -- local folder -------------------------------------------------------------------------------


def test_local_put_and_get_round_trip_with_a_file_uri(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    stored = storage.put(KEY, b"bytes", "image/jpeg")

    assert stored.uri == f"file://{tmp_path.resolve()}/{KEY}"
    assert stored.key == KEY and stored.bucket is None
    assert storage.get(KEY) == b"bytes"


def test_local_get_of_a_missing_key_raises_not_found_and_delete_is_fine(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    storage.delete(KEY)
    with pytest.raises(NotFound):
        storage.get(KEY)


def test_a_failed_local_write_leaves_neither_a_partial_file_nor_a_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError) as caught:
        storage.put(KEY, b"bytes", "image/jpeg")

    assert caught.value.retryable is True
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_local_rewrite_replaces_the_file_whole(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put(KEY, b"old" * 1000, "image/jpeg")
    payloads = [bytes([i]) * 200_000 for i in range(8)]

    threads = [threading.Thread(target=storage.put, args=(KEY, data, "image/jpeg")) for data in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert storage.get(KEY) in payloads
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["abcdef0123456789.jpg"]


@pytest.mark.parametrize(
    "key",
    ["../escape.jpg", "ab/../../escape.jpg", "/etc/passwd", "C:\\Windows\\x.jpg", "ab\\..\\x",
     "", "./x", "ab//x", "ab/"],
)
def test_local_keys_that_would_leave_the_folder_are_refused(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "store")

    with pytest.raises(StorageError) as caught:
        storage.put(key, b"bytes", "image/jpeg")

    assert caught.value.retryable is False
    assert not (tmp_path / "escape.jpg").exists()


def test_a_symlink_inside_the_folder_cannot_lead_outside_it(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "store" / "ab").symlink_to(tmp_path / "outside")
    storage = LocalStorage(tmp_path / "store")

    with pytest.raises(StorageError):
        storage.put(KEY, b"bytes", "image/jpeg")

    assert list((tmp_path / "outside").iterdir()) == []


def test_an_unwritable_folder_is_a_permanent_error_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)

    def refuse(*args: Any, **kwargs: Any) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")  # chmod cannot stop root, so say it directly

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(StorageError) as caught:
        storage.put(KEY, b"bytes", "image/jpeg")

    assert caught.value.retryable is False
    assert str(tmp_path.resolve()) in caught.value.user_message


# -- in-memory fake -----------------------------------------------------------------------------


def test_memory_storage_counts_puts_and_raises_not_found() -> None:
    storage = MemoryStorage()

    stored = storage.put(KEY, b"bytes", "image/jpeg")
    storage.put(KEY, b"bytes", "image/jpeg")

    assert stored.uri == f"memory://{KEY}"
    assert storage.puts == 2
    assert storage.get(KEY) == b"bytes"
    assert storage.content_type(KEY) == "image/jpeg"
    storage.delete(KEY)
    storage.delete(KEY)
    with pytest.raises(NotFound):
        storage.get(KEY)


def test_memory_storage_can_be_told_to_fail() -> None:
    storage = MemoryStorage()
    storage.fail_next(StorageError("S3 is busy", retryable=True))

    with pytest.raises(StorageError):
        storage.put(KEY, b"bytes", "image/jpeg")
    storage.put(KEY, b"bytes", "image/jpeg")

    assert KEY in storage
    assert len(storage) == 1
