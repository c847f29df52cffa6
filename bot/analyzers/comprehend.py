"""Amazon Comprehend's DetectPiiEntities: where names, addresses, card numbers… sit in a text.

The text may itself be a secret, so it never appears in a log line or an error: only
sizes, counts, entity types and AWS error codes do. (botocore logs request bodies at
DEBUG; ``imgbot``'s CLI keeps the ``botocore`` logger at WARNING or above.)

What the AWS documentation says, and what this module relies on:

* Limit: "Your input text can include up to 100 kilobytes of UTF-8 encoded characters"
  (Developer Guide, "PII real-time analysis (API)"; the API reference's ``Text``: "A
  UTF-8 text string. The maximum string size is 100 KB"; over it the service answers
  ``TextSizeLimitExceededException``). Counted here as 100,000 bytes, the smaller reading.
* Offsets: the older SDK references (Ruby v2, rusoto) describe ``BeginOffset`` and
  ``EndOffset`` as "the position of each UTF-8 code point in the string […] a multi-byte
  UTF-8 character maps to a single code point", i.e. Python ``str`` indices, not bytes.
  The current API reference calls ``EndOffset`` "the last character in the entity", but
  its own example ("…credit card account 1111-0000-1111-0000 was mailed…" → 69, 88)
  only slices to the card number when the end is exclusive: ``text[begin:end]`` it is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import CONNECTION_ERRORS, classify, make_client, short_code
from bot.core.types import Category, PiiEntity
from bot.errors import AnalyzerError

if TYPE_CHECKING:
    from bot.config import Settings

logger = logging.getLogger("imgbot.comprehend")

OPERATION = "DetectPiiEntities"
LANGUAGE_CODE = "en"
#: DetectPiiEntities' documented limit ("100 KB" of UTF-8), read as the smaller 100,000 bytes.
MAX_TEXT_BYTES = 100_000

_WHITESPACE = re.compile(r"\s")


class ComprehendPii:
    """Finds PII in English text with Amazon Comprehend. Thread-safe, as the boto3 client is."""

    name = "comprehend"

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        # Standard retries, as for Rekognition: botocore retries throttles and 5xx a bounded
        # number of times (IMGBOT_AWS_MAX_ATTEMPTS) with jittered back-off, then gives up.
        self.client = client if client is not None else make_client("comprehend", settings, retry_mode="standard")

    def detect(self, text: str) -> list[PiiEntity]:
        """Every PII entity in ``text``, in order, with offsets into the whole of ``text``.

        Text over the 100,000-byte limit is sent in several calls, cut at line breaks so
        that an entity is only split when a single line is over the limit.
        """
        if not text.strip():
            return []
        entities: list[PiiEntity] = []
        calls = 0
        for start, chunk in chunks(text):
            if not chunk.strip():
                continue  # nothing to find, and Comprehend would only bill for it
            calls += 1
            for found in self._call(chunk).get("Entities") or ():
                kind, category = imgbot_kind(str(found.get("Type", "")))
                entities.append(PiiEntity(
                    type=str(found.get("Type", "")),
                    score=float(found.get("Score", 0.0)),
                    begin=start + int(found.get("BeginOffset", 0)),
                    end=start + int(found.get("EndOffset", 0)),
                    kind=kind, category=category,
                ))
        logger.debug("comprehend op=%s chars=%d calls=%d entities=%d types=%s", OPERATION, len(text), calls,
                     len(entities), sorted({entity.type for entity in entities}))
        return entities

    def _call(self, chunk: str) -> dict[str, Any]:
        try:
            response: dict[str, Any] = self.client.detect_pii_entities(Text=chunk, LanguageCode=LANGUAGE_CODE)
        except (ClientError, BotoCoreError) as exc:
            # Not chained: a ClientError's message may quote the request (the text) and would be
            # printed with any traceback; the detail keeps its code and status.
            raise translate_error(exc) from None
        return response


# -- chunking ------------------------------------------------------------------------------------


def utf8_size(text: str) -> int:
    """Bytes ``text`` takes in UTF-8 (a lone surrogate counted as the 3 bytes it would take)."""
    return len(text.encode("utf-8", "surrogatepass"))


def chunks(text: str, limit: int = MAX_TEXT_BYTES) -> Iterator[tuple[int, str]]:
    """``(character offset, piece)`` pairs that put ``text`` back together, each ≤ ``limit`` UTF-8 bytes.

    Whole lines are packed greedily; only a line over ``limit`` on its own is cut, at
    its last whitespace that fits, or at the last character that fits when that
    whitespace would leave the piece under half full (every request counts against the quota).
    """
    start = 0
    pending: list[str] = []
    pending_bytes = 0
    for line in _pieces(text, limit):
        size = utf8_size(line)
        if pending and pending_bytes + size > limit:
            joined = "".join(pending)
            yield start, joined
            start += len(joined)
            pending, pending_bytes = [], 0
        pending.append(line)
        pending_bytes += size
    if pending:
        yield start, "".join(pending)


def _pieces(text: str, limit: int) -> Iterator[str]:
    """The lines of ``text`` (line breaks kept), long ones cut into pieces of ≤ ``limit`` bytes."""
    for line in text.splitlines(keepends=True):
        while utf8_size(line) > limit:
            cut = _fitting_prefix(line, limit)
            space = max((m.end() for m in _WHITESPACE.finditer(line, 0, cut)), default=0)
            if space and space >= cut // 2:
                cut = space
            yield line[:cut]
            line = line[cut:]
        if line:
            yield line


def _fitting_prefix(line: str, limit: int) -> int:
    """The most characters of ``line`` whose UTF-8 fits in ``limit`` bytes (binary search; ≥ 1)."""
    low, high = 1, min(len(line), limit)  # a character takes at least one byte
    while low < high:
        middle = (low + high + 1) // 2
        if utf8_size(line[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


# -- entity types ------------------------------------------------------------------------------

#: Comprehend's entity types with imgbot's kind and category; others become ``pii`` of the type's own name.
_KINDS: dict[str, tuple[str, Category]] = {
    "EMAIL": ("email", "pii"),
    "PHONE": ("phone", "pii"),
    "CREDIT_DEBIT_NUMBER": ("card", "pii"),
    "CREDIT_DEBIT_CVV": ("card-cvv", "pii"),
    "CREDIT_DEBIT_EXPIRY": ("card-expiry", "pii"),
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": ("iban", "pii"),
    "BANK_ACCOUNT_NUMBER": ("bank-account", "pii"),
    "AWS_ACCESS_KEY": ("aws-access-key", "secret"),
    "AWS_SECRET_KEY": ("aws-secret-key", "secret"),
    "PASSWORD": ("password", "secret"),
    "PIN": ("pin", "secret"),
}
#: Dates, URLs and ages are not personal data on their own.
_IGNORED = frozenset({"DATE_TIME", "URL", "AGE"})


def imgbot_kind(entity_type: str) -> tuple[str, Category]:
    """(kind, category) of a Comprehend entity type; an empty kind for the types imgbot leaves out."""
    if entity_type in _IGNORED or not entity_type:
        return "", "pii"
    return _KINDS.get(entity_type, (entity_type.lower().replace("_", "-"), "pii"))


# -- errors --------------------------------------------------------------------------------------

_REJECTED_MESSAGES = {
    "TextSizeLimitExceededException": (
        "Amazon Comprehend refused the text as too long (TextSizeLimitExceeded); its limit is 100 KB per request."
    ),
    "UnsupportedLanguageException": (
        "Amazon Comprehend cannot look for personal data in this language (UnsupportedLanguage); "
        "it reads English and Spanish only."
    ),
}


def translate_error(exc: BaseException) -> AnalyzerError:
    """A botocore error from DetectPiiEntities as an ``AnalyzerError`` saying what to do about it.

    Throttling and 5xx reach this point only after botocore's retries ran out, so they
    are ``retryable`` (later, not now). ``detail`` carries the error code and HTTP status
    but not the service's message: validation messages can quote the request, which is
    the text. Only a connection error's message (the endpoint, the reason) is kept.
    """
    failure = classify(exc)
    status = f" HTTP {failure.status}" if failure.status else ""
    reason = f": {failure.message}" if isinstance(exc, CONNECTION_ERRORS) and failure.message else ""
    detail = f"Comprehend {OPERATION} failed: {failure.code}{status}{reason}"
    code = short_code(failure.code)
    if failure.code in _REJECTED_MESSAGES:
        return AnalyzerError(_REJECTED_MESSAGES[failure.code], detail=detail, retryable=False)
    if failure.kind == "credentials":
        message = (f"imgbot's AWS credentials were refused by Amazon Comprehend ({code}). "
                   "Check AWS_PROFILE or the AWS access keys in the environment, and that they have not expired.")
    elif failure.kind == "denied":
        message = (f"imgbot is not allowed to use Amazon Comprehend ({code}). "
                   f"Check the IAM policy: it needs comprehend:{OPERATION}.")
    elif failure.kind == "throttled":
        message = f"Amazon Comprehend is busy ({code}); imgbot will look for personal data again later."
    elif failure.kind == "transient":
        message = f"Amazon Comprehend is unavailable right now ({code}); imgbot will look for personal data later."
    elif failure.kind == "unsupported":
        message = (f"This Amazon Comprehend endpoint does not offer {OPERATION} ({code}). "
                   "Check AWS_ENDPOINT_URL_COMPREHEND.")
    elif failure.kind in ("rejected", "not_found"):
        message = f"Amazon Comprehend refused the text ({code})."
    else:
        message = f"Amazon Comprehend failed to look for personal data ({code})."
    return AnalyzerError(message, detail=detail, retryable=failure.retryable)
