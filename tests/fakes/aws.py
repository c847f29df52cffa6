"""Helpers for tests that talk to AWS fakes (moto's server, ``FakeRekognition``) through boto3.

boto3 is pointed at the fakes the way an operator would point it anywhere else: with
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_REKOGNITION``, so the endpoint plumbing
is tested for real. The environment is cleared of anything from the developer's own
AWS setup first, so a test can never reach a real account.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

AWS_REGION = "us-east-1"

_AWS_VARIABLES = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_REKOGNITION",
    "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_COMPREHEND", "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


def use_fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **endpoints: str) -> None:
    """Fake credentials and region, no config files, and ``AWS_ENDPOINT_URL_<SERVICE>`` for each endpoint.

    ``use_fake_aws(monkeypatch, tmp_path, s3=moto_url, rekognition=fake.endpoint_url)``
    """
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_REGION)
    for service, url in endpoints.items():
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service.upper()}", url)


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free loopback port, in this process; yields its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def moto_enforcing_iam(moto_url: str) -> Iterator[None]:
    """Make moto check IAM permissions and access keys (it accepts anything by default)."""
    import urllib.request

    def set_count(value: str) -> None:
        request = urllib.request.Request(
            f"{moto_url}/moto-api/reset-auth", data=value.encode(), method="POST",
            headers={"Content-Type": "text/plain"},  # a form type would hide the body from moto
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()

    set_count("0")
    try:
        yield
    finally:
        set_count("inf")


def instant_botocore_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard back-off sleeps up to seconds between attempts; tests need not wait."""
    from botocore.retries.standard import ExponentialBackoff

    def no_delay(self: Any, context: Any) -> float:
        return 0.0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", no_delay)
