"""The one place that builds boto3 clients, and the one place that reads botocore errors.

boto3 keeps its own configuration: ``AWS_PROFILE``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_REKOGNITION`` and the
shared config files all work unchanged, because nothing here passes an endpoint or a
credential (a region only when botocore found none and ``AWS_REGION`` names one). imgbot
only decides how hard botocore retries and how many connections a client may keep open.

Adapters turn an exception into an ``AwsFailure`` with ``classify`` and then word the
``user_message`` themselves, since only they know what was being attempted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import boto3.session
import botocore.config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotocoreConnectionError,
)

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings

RetryMode = Literal["adaptive", "standard", "legacy"]

FailureKind = Literal[
    "not_found", "denied", "credentials", "throttled", "transient", "rejected", "unsupported", "unknown",
]

#: Errors that mean "the network or the service hiccuped": trying later may help.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ConnectTimeoutError,
    BotocoreConnectionError,
)

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})
_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredToken", "ExpiredTokenException", "InvalidToken", "InvalidClientTokenId", "TokenRefreshRequired",
    "MissingAuthenticationToken", "MissingAuthenticationTokenException", "IncompleteSignature",
    "IncompleteSignatureException", "RequestExpired",
})
_DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "403", "Forbidden", "AllAccessDisabled", "AccountProblem",
    "NoSuchBucket", "InvalidBucketName", "KMS.DisabledException", "KMS.NotFoundException",
    "KMS.AccessDeniedException", "KMS.KMSInvalidStateException",
})
_THROTTLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "LimitExceededException",
    "RequestLimitExceeded", "SlowDown", "BandwidthLimitExceeded",
})
#: The endpoint does not offer the operation or the option (an emulator, an S3-compatible store).
_UNSUPPORTED_CODES = frozenset({
    "NotImplemented", "NotImplementedException", "UnknownOperationException", "UnknownOperation",
    "InvalidAction", "UnsupportedOperation", "UnsupportedOperationException", "501",
})
_TRANSIENT_CODES = frozenset({
    "InternalError", "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "OperationAborted",
    "HumanLoopQuotaExceededException", "ResourceNotReadyException",
})


@dataclass(frozen=True)
class AwsFailure:
    """What went wrong with an AWS call, reduced to what the caller can act on.

    ``detail`` is safe to log: the error code and the service's message, never the
    request, its signature, credentials or a presigned URL.
    """

    kind: FailureKind
    code: str
    status: int | None
    message: str
    retryable: bool

    @property
    def detail(self) -> str:
        status = f" HTTP {self.status}" if self.status else ""
        return f"{self.code}{status}: {self.message}" if self.message else f"{self.code}{status}"


def make_client(service: str, settings: Settings, *, retry_mode: RetryMode = "adaptive") -> Any:
    """Build a boto3 client from boto3's own configuration plus imgbot's retry and pool sizes.

    Adaptive retries slow the client down after throttling instead of hammering the
    service; the connection pool is sized so every worker thread (and the concurrent
    Rekognition calls each makes) gets its own connection. ``retry_mode`` exists so
    tests can use standard retries, whose back-off they can shorten.
    """
    config = botocore.config.Config(
        retries={"mode": retry_mode, "max_attempts": settings.aws_max_attempts},
        max_pool_connections=max(10, settings.max_in_flight * 4),
    )
    session = boto3.session.Session()
    # botocore reads AWS_DEFAULT_REGION and the profile, but AWS_REGION (what the other AWS SDKs
    # and the AWS documentation use) only inside AWS's own runtimes: honour it everywhere.
    region = session.region_name or os.environ.get("AWS_REGION") or None
    try:
        return session.client(service, config=config, region_name=region)
    except NoRegionError as exc:
        raise ConfigError(
            f"imgbot needs an AWS region to use {service}: set AWS_REGION (or AWS_DEFAULT_REGION, "
            "or a region in the AWS_PROFILE's config)."
        ) from exc


def error_code(exc: ClientError) -> str:
    """The service's error code, falling back to the HTTP status (HEAD answers carry no body)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    if not code:
        status = http_status(exc)
        code = str(status) if status else "Unknown"
    return code


def http_status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def short_code(code: str) -> str:
    """``InvalidImageFormatException`` → ``InvalidImageFormat``, for messages people read."""
    return code[: -len("Exception")] if code.endswith("Exception") and code != "Exception" else code


def classify_code(code: str) -> FailureKind | None:
    """The kind of failure an error code alone names (throttled, transient…), or None when it takes more."""
    for codes, kind in ((_NOT_FOUND_CODES, "not_found"), (_CREDENTIAL_CODES, "credentials"),
                        (_DENIED_CODES, "denied"), (_UNSUPPORTED_CODES, "unsupported"),
                        (_THROTTLE_CODES, "throttled"), (_TRANSIENT_CODES, "transient")):
        if code in codes:
            return kind  # type: ignore[return-value]
    return None


def classify(exc: BaseException) -> AwsFailure:
    """Sort a botocore exception into not found / denied / credentials / throttled / transient / rejected."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = http_status(exc)
        message = str(exc.response.get("Error", {}).get("Message") or "")
        if code in _NOT_FOUND_CODES:
            return AwsFailure("not_found", code, status, message, retryable=False)
        if code in _CREDENTIAL_CODES:
            return AwsFailure("credentials", code, status, message, retryable=False)
        if code in _DENIED_CODES:
            return AwsFailure("denied", code, status, message, retryable=False)
        if code in _UNSUPPORTED_CODES or status == 501:
            return AwsFailure("unsupported", code, status, message, retryable=False)
        if code in _THROTTLE_CODES:
            return AwsFailure("throttled", code, status, message, retryable=True)
        if code in _TRANSIENT_CODES or (status is not None and status >= 500):
            return AwsFailure("transient", code, status, message, retryable=True)
        if status is not None and 400 <= status < 500:
            return AwsFailure("rejected", code, status, message, retryable=False)
        return AwsFailure("unknown", code, status, message, retryable=True)
    if isinstance(exc, CONNECTION_ERRORS):
        return AwsFailure("transient", type(exc).__name__, None, str(exc), retryable=True)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, NoRegionError)):
        return AwsFailure("credentials", type(exc).__name__, None, str(exc), retryable=False)
    if isinstance(exc, BotoCoreError):
        return AwsFailure("unknown", type(exc).__name__, None, str(exc), retryable=False)
    return AwsFailure("unknown", type(exc).__name__, None, str(exc), retryable=False)


def is_aws_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from botocore (and so should be translated, not passed on)."""
    return isinstance(exc, (ClientError, BotoCoreError))
