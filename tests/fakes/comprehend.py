"""A small fake Amazon Comprehend (DetectPiiEntities only) speaking the real wire protocol over loopback.

boto3 talks to it exactly as to AWS: AWS JSON 1.1, ``POST /`` with
``X-Amz-Target: Comprehend_20171127.DetectPiiEntities`` and a body
``{"Text": ..., "LanguageCode": "en"}``, so the real client, its endpoint
configuration (``AWS_ENDPOINT_URL_COMPREHEND``), its retries and its error parsing
are all exercised. moto does not implement DetectPiiEntities.

It refuses what Comprehend refuses (shapes and names from botocore's
``comprehend/2017-11-27/service-2.json``): no ``Text`` or ``LanguageCode``, an empty
``Text`` or a ``LanguageCode`` outside the API's enum → ``ValidationException``; a code
in the enum that PII detection does not read (only ``en`` and ``es``) →
``UnsupportedLanguageException``; ``Text`` over 100,000 UTF-8 bytes →
``TextSizeLimitExceededException``; an unsigned request → ``MissingAuthenticationTokenException``.

It finds, with regexes good enough for tests: NAME (the ``names`` given), ADDRESS
("12 Main Street"), EMAIL and PHONE, with offsets in characters (code points), end
exclusive, as Comprehend gives them.

Usage::

    with FakeComprehend(names=["Jane Doe"]) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", fake.endpoint_url)
        fake.fail_next("ThrottlingException", times=2)
        ...
        assert [call.params["Text"] for call in fake.requests] == [...]
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET_PREFIX = "Comprehend_20171127."
OPERATIONS = ("DetectPiiEntities",)
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_TEXT_BYTES = 100_000

#: The API's ``LanguageCode`` enum (anything else fails validation) and the ones PII detection reads.
LANGUAGE_CODES = ("en", "es", "fr", "de", "it", "pt", "ar", "hi", "ja", "ko", "zh", "zh-TW")
PII_LANGUAGES = ("en", "es")

DEFAULT_NAMES = ("Jane Doe", "John Smith")

#: Fixed scores, so tests can compare whole entities.
SCORES = {"NAME": 0.9999, "ADDRESS": 0.9998, "EMAIL": 0.9997, "PHONE": 0.9995}

_PATTERNS = {
    "ADDRESS": re.compile(r"\b\d+ [A-Z][a-z]+ (?:Street|St|Avenue|Ave|Road|Rd)\b"),
    "EMAIL": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    "PHONE": re.compile(r"(?<![\w+])(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}\b"),
}

#: HTTP status of the errors whose status is not 400.
STATUSES = {"InternalServerException": 500, "MissingAuthenticationTokenException": 403}


class FakeComprehendError(Exception):
    """Raised inside the fake to answer with AWS JSON's error shape."""

    def __init__(self, code: str, message: str = "", status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUSES.get(code, 400)


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake answered (or refused), with its parsed JSON body."""

    operation: str
    params: dict[str, Any]
    status: int
    error: str | None = None


@dataclass
class _Failure:
    code: str
    status: int | None
    remaining: int
    message: str | None


class FakeComprehend:
    """A threaded HTTP server on 127.0.0.1 (a free port) playing Amazon Comprehend's DetectPiiEntities."""

    def __init__(self, names: Sequence[str] = DEFAULT_NAMES, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.names = list(names)
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._recorded: list[RecordedCall] = []
        self._failures: list[_Failure] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeComprehend:
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer((self._host, self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-comprehend", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeComprehend:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeComprehend is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3's Comprehend client here."""
        return {"AWS_ENDPOINT_URL_COMPREHEND": self.endpoint_url}

    # -- scripting and observing -------------------------------------------------------------

    def fail_next(self, code: str, status: int | None = None, *, times: int = 1, message: str | None = None) -> None:
        """Answer the next ``times`` calls with ``code`` (HTTP ``status``: 400 unless the code says 500)."""
        with self._lock:
            self._failures.append(_Failure(code, status, times, message))

    def reset(self) -> None:
        """Forget calls and pending failures (names stay)."""
        with self._lock:
            self._recorded.clear()
            self._failures.clear()

    @property
    def requests(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._recorded)

    def call_count(self) -> int:
        """Requests received, refused ones included."""
        with self._lock:
            return len(self._recorded)

    # -- serving -----------------------------------------------------------------------------

    def handle(self, target: str, content_type: str, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one request: ``(status, JSON body)``. Errors come back as ``{"__type", "Message"}``."""
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target
        params: dict[str, Any] = {}
        try:
            # A SigV4 header signed for this service, as the real endpoint wants (the signature is not checked).
            if not authorization.startswith("AWS4-HMAC-SHA256 ") or "/comprehend/aws4_request" not in authorization:
                raise FakeComprehendError("MissingAuthenticationTokenException", "Missing Authentication Token")
            if operation not in OPERATIONS:
                raise FakeComprehendError("UnknownOperationException")
            if not content_type.startswith(CONTENT_TYPE):
                raise FakeComprehendError("SerializationException", f"unexpected content type {content_type!r}")
            try:
                params = json.loads(body or b"{}")
            except ValueError as exc:
                raise FakeComprehendError("SerializationException", "Invalid JSON") from exc
            if not isinstance(params, dict):
                raise FakeComprehendError("SerializationException", "Start of list found where not expected")
            self._scripted_failure()
            result = {"Entities": self.find(validated_text(params))}
        except FakeComprehendError as exc:
            self._record(operation, params, exc.status, exc.code)
            return exc.status, {"__type": exc.code, "Message": exc.message}
        self._record(operation, params, 200, None)
        return 200, result

    def find(self, text: str) -> list[dict[str, Any]]:
        """The entities in ``text``, in order, overlapping ones dropped; offsets in characters, end exclusive."""
        patterns = dict(_PATTERNS)
        if self.names:
            patterns["NAME"] = re.compile(r"\b(?:" + "|".join(map(re.escape, self.names)) + r")\b")
        found = sorted(
            (match.start(), -match.end(), kind)
            for kind, pattern in patterns.items() for match in pattern.finditer(text)
        )
        entities: list[dict[str, Any]] = []
        last_end = 0
        for begin, negative_end, kind in found:
            if begin >= last_end:
                entities.append({"Score": SCORES[kind], "Type": kind, "BeginOffset": begin, "EndOffset": -negative_end})
                last_end = -negative_end
        return entities

    def _scripted_failure(self) -> None:
        with self._lock:
            if not self._failures:
                return
            failure = self._failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failures.pop(0)
        raise FakeComprehendError(failure.code, failure.message or f"Scripted {failure.code}", failure.status)

    def _record(self, operation: str, params: dict[str, Any], status: int, error: str | None) -> None:
        with self._lock:
            self._recorded.append(RecordedCall(operation, params, status, error))


def validated_text(params: dict[str, Any]) -> str:
    """``Text`` if Comprehend would analyse it, else the error Comprehend answers with.

    Messages follow AWS's validation wording, which leaves sensitive values (``Text``) out.
    """
    text, language = params.get("Text"), params.get("LanguageCode")
    problems = []
    if language is None:
        problems.append("Value null at 'languageCode' failed to satisfy constraint: Member must not be null")
    elif language not in LANGUAGE_CODES:
        problems.append(f"Value '{language}' at 'languageCode' failed to satisfy constraint: "
                        f"Member must satisfy enum value set: [{', '.join(LANGUAGE_CODES)}]")
    if text is None:
        problems.append("Value null at 'text' failed to satisfy constraint: Member must not be null")
    elif not isinstance(text, str):
        raise FakeComprehendError("SerializationException", "Unexpected value type for 'Text'")
    elif not text:
        problems.append("Value at 'text' failed to satisfy constraint: "
                        "Member must have length greater than or equal to 1")
    if problems:
        count = f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} detected: "
        raise FakeComprehendError("ValidationException", count + "; ".join(problems))
    assert isinstance(text, str)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise FakeComprehendError(
            "TextSizeLimitExceededException",
            f"Input text size exceeds limit. Max length of request text allowed is {MAX_TEXT_BYTES} bytes "
            f"while in this request the text size is {size} bytes",
        )
    if language not in PII_LANGUAGES:
        raise FakeComprehendError("UnsupportedLanguageException",
                                  f"DetectPiiEntities does not support the language '{language}'")
    return text


class _Handler(BaseHTTPRequestHandler):
    owner: FakeComprehend
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path not in ("/", ""):
            status, answer = 404, {"__type": "UnknownOperationException", "Message": ""}
        else:
            status, answer = self.owner.handle(
                self.headers.get("X-Amz-Target", ""),
                self.headers.get("Content-Type", ""),
                self.headers.get("Authorization", ""),
                body,
            )
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if status >= 400:
            self.send_header("x-amzn-ErrorType", str(answer.get("__type", "")))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        """Quiet: tests read the recorded calls, not an access log."""
