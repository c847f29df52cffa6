"""A small fake Amazon Rekognition that speaks the real wire protocol over loopback.

boto3 talks to it exactly as to AWS (AWS JSON 1.1: ``POST /`` with
``X-Amz-Target: RekognitionService.DetectLabels``, base64 ``Image.Bytes``), so the
real client, its endpoint configuration (``AWS_ENDPOINT_URL_REKOGNITION``), its
retries and its error parsing are all exercised. moto knows only DetectLabels and
DetectText; this fake also answers DetectModerationLabels and DetectFaces.

Results are deterministic and derived from the image:

* labels: the image's dominant colour (``Red``, ``Blue``…, category "Colors and Visual
  Composition"), plus any names in a PNG text chunk ``imgbot:labels`` ("Cat,Pet");
* text: the lines of a PNG text chunk ``imgbot:text`` or of a JPEG comment;
* moderation: the names in a PNG text chunk ``imgbot:moderation`` ("Explicit Nudity");
* faces: ``imgbot:faces`` (a count) in a PNG text chunk;
* image properties (DetectLabels with ``Features=[..., "IMAGE_PROPERTIES"]``): colours and
  quality computed by ``bot.core.visual.image_properties`` in the API's shape, for the
  whole image, its foreground (here: the middle half of each side) and its background
  (the rest). Unlike the real service, colours are the mean of their pixels rather than
  snapped to the CSS colour's own value.

or scripted per image with ``script(sha256_or_bytes_or_s3_uri, labels=…, text=…, …)``.
Errors use Rekognition's real shape (HTTP 400/500, ``x-amzn-ErrorType``, and a body
``{"__type", "Code", "Logref", "Message"}``).

Usage::

    with FakeRekognition(latency=0.05, tps_limit=20) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", fake.endpoint_url)
        fake.script(png_bytes, text=["Hello <!channel>"], moderation=["Explicit Nudity"])
        fake.fail_next("DetectLabels", "ThrottlingException", times=2)
        ...
        assert fake.call_count("DetectText") == 1

Also runnable on its own: ``python -m tests.fakes.rekognition --port 4599``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.core.types import DominantColor, ImageProperties
from bot.core.visual import image_properties

OPERATIONS = ("DetectLabels", "DetectText", "DetectModerationLabels", "DetectFaces")
TARGET_PREFIX = "RekognitionService."
CONTENT_TYPE = "application/x-amz-json-1.1"

LABEL_MODEL_VERSION = "3.0"
TEXT_MODEL_VERSION = "3.0"
MODERATION_MODEL_VERSION = "7.0"

#: Rekognition's messages for the errors tests usually script.
ERROR_MESSAGES = {
    "ThrottlingException": "Amazon Rekognition is temporarily unable to process the request. Try your call again.",
    "ProvisionedThroughputExceededException": (
        "The number of requests exceeded your throughput limit. If you want to increase this limit, "
        "contact Amazon Rekognition."
    ),
    "LimitExceededException": "An Amazon Rekognition service limit was exceeded.",
    "InternalServerError": "Amazon Rekognition experienced a service issue. Try your call again.",
    "InvalidImageFormatException": "Request has invalid image format",
    "ImageTooLargeException": "Image size is too large.",
    "InvalidParameterException": "Request has invalid parameters",
    "InvalidS3ObjectException": (
        "Unable to get object metadata from S3. Check object key, region and/or access permissions."
    ),
    "AccessDeniedException": "User is not authorized to perform: rekognition:DetectLabels",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "InvalidSignatureException": "The request signature we calculated does not match the signature you provided.",
    "ExpiredTokenException": "The security token included in the request is expired",
    "MissingAuthenticationTokenException": "Missing Authentication Token",
    "UnknownOperationException": "",
    "SerializationException": "Start of structure or map found where not expected.",
}

#: Errors AWS marks as server faults (HTTP 500); every other one is a 400.
SERVER_FAULTS = frozenset({"ThrottlingException", "InternalServerError"})

#: A slice of Rekognition's moderation taxonomy (v7), child → parent.
MODERATION_PARENTS = {
    "Explicit": "",
    "Explicit Nudity": "Explicit",
    "Exposed Male Genitalia": "Explicit Nudity",
    "Exposed Female Genitalia": "Explicit Nudity",
    "Explicit Sexual Activity": "Explicit",
    "Non-Explicit Nudity of Intimate parts and Kissing": "",
    "Non-Explicit Nudity": "Non-Explicit Nudity of Intimate parts and Kissing",
    "Swimwear or Underwear": "",
    "Violence": "",
    "Graphic Violence": "Violence",
    "Weapon Violence": "Violence",
    "Weapons": "Violence",
    "Visually Disturbing": "",
    "Drugs & Tobacco": "",
    "Alcohol": "",
    "Rude Gestures": "",
    "Middle Finger": "Rude Gestures",
    "Gambling": "",
    "Hate Symbols": "",
}

#: Colours the dominant-colour label can take.
COLOURS = {
    "Red": (220, 30, 30), "Orange": (240, 140, 20), "Yellow": (240, 220, 40), "Green": (40, 170, 60),
    "Blue": (40, 80, 220), "Purple": (130, 50, 170), "Pink": (240, 150, 190), "Brown": (120, 75, 35),
    "Black": (10, 10, 10), "White": (245, 245, 245), "Gray": (128, 128, 128),
}


class FakeRekognitionError(Exception):
    """Raised inside the fake to answer with Rekognition's error shape."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = ERROR_MESSAGES.get(code, code) if message is None else message
        self.status = status if status is not None else (500 if code in SERVER_FAULTS else 400)


@dataclass
class Script:
    """Scripted findings for one image; ``None`` means "derive from the image as usual"."""

    labels: list[dict[str, Any]] | None = None
    text: list[dict[str, Any]] | None = None
    moderation: list[dict[str, Any]] | None = None
    faces: list[dict[str, Any]] | None = None
    image_properties: dict[str, Any] | None = None


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake answered (or refused). Image bytes are replaced by their sha256."""

    operation: str
    params: dict[str, Any]
    image_sha256: str | None
    status: int
    error: str | None = None


@dataclass
class _Failure:
    code: str
    remaining: int
    message: str | None
    status: int | None


@dataclass
class _Bucket:
    """Token bucket per API, as AWS meters a TPS quota."""

    rate: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FakeRekognition:
    """A threaded HTTP server on 127.0.0.1 (a free port) playing Amazon Rekognition.

    Knobs: ``latency`` seconds added to every call; ``tps_limit`` calls per second per
    API before answering ``throttle_error``; ``throttle_fraction`` the share of
    calls throttled at random (seeded); ``s3_client`` to read ``S3Object`` images
    (without one, an S3 image gets its script or a generic result); ``min_side`` the
    smallest image side accepted (Rekognition's 80 px); ``typical`` to answer every
    unscripted image with ``TYPICAL_LABELS`` and ``TYPICAL_TEXT``, as much as the real
    service returns for a product banner (for benchmarks: a light answer is a light load).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        tps_limit: float | None = None,
        throttle_fraction: float = 0.0,
        throttle_error: str = "ProvisionedThroughputExceededException",
        s3_client: Any = None,
        min_side: int = 80,
        host: str = "127.0.0.1",
        port: int = 0,
        typical: bool = False,
    ) -> None:
        self.latency = latency
        self.typical = typical
        self.tps_limit = tps_limit
        self.throttle_fraction = throttle_fraction
        self._random = random.Random(20261125)  # seeded: the same run throttles the same calls
        self.throttle_error = throttle_error
        self.s3_client = s3_client
        self.min_side = min_side
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()
        self._recorded: list[RecordedCall] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._scripts: dict[str, Script] = {}
        self._findings_cache: dict[str, _Findings] = {}
        self._properties_cache: dict[str, dict[str, Any]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeRekognition:
        fake = self

        class Handler(_Handler):
            owner = fake

        server = _Server((self._host, self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-rekognition", daemon=True
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

    def __enter__(self) -> FakeRekognition:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeRekognition is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3's Rekognition client here."""
        return {"AWS_ENDPOINT_URL_REKOGNITION": self.endpoint_url}

    # -- scripting ---------------------------------------------------------------------------

    def fail_next(
        self,
        operation: str,
        error_code: str,
        times: int = 1,
        *,
        message: str | None = None,
        status: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` (``"*"``: any) with ``error_code``."""
        if operation != "*" and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")
        with self._lock:
            self._failures.setdefault(operation, []).append(_Failure(error_code, times, message, status))

    def script(
        self,
        image: bytes | str,
        *,
        labels: Iterable[str | tuple[str, float] | dict[str, Any]] | None = None,
        text: Iterable[str] | None = None,
        moderation: Iterable[str | tuple[str, float] | dict[str, Any]] | None = None,
        faces: int | Iterable[dict[str, Any]] | None = None,
        image_properties: dict[str, Any] | None = None,
    ) -> str:
        """Script what the fake finds in ``image`` (its bytes, sha256 hex, or ``s3://bucket/key``).

        ``labels`` and ``moderation`` take names, ``(name, confidence)`` pairs or full
        Rekognition dicts; ``text`` takes lines; ``faces`` a count or FaceDetail dicts;
        ``image_properties`` the ``ImageProperties`` DetectLabels returns when asked for it.
        The image must still be a JPEG or PNG the fake can decode, as Rekognition's would.
        Returns the key the script is stored under.
        """
        key = hashlib.sha256(image).hexdigest() if isinstance(image, bytes) else image
        scripted = Script(
            labels=[_label(item) for item in labels] if labels is not None else None,
            text=text_detections(list(text)) if text is not None else None,
            moderation=_moderation(moderation) if moderation is not None else None,
            faces=(face_details(faces) if isinstance(faces, int) else list(faces)) if faces is not None else None,
            image_properties=dict(image_properties) if image_properties is not None else None,
        )
        with self._lock:
            self._scripts[key] = scripted
        return key

    def reset(self) -> None:
        """Forget calls, failures, scripts and rate state (knobs stay)."""
        with self._lock:
            self._calls.clear()
            self._throttled.clear()
            self._recorded.clear()
            self._failures.clear()
            self._scripts.clear()
            self._buckets.clear()
            self.max_in_flight = 0

    # -- observing ---------------------------------------------------------------------------

    def call_count(self, operation: str | None = None) -> int:
        """Requests received for ``operation`` (all operations when ``None``), errors included."""
        with self._lock:
            return sum(self._calls.values()) if operation is None else self._calls[operation]

    @property
    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    @property
    def throttled(self) -> dict[str, int]:
        """Calls answered with the throttling error because of ``tps_limit``."""
        with self._lock:
            return dict(self._throttled)

    @property
    def requests(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._recorded)

    def wait_for_calls(self, operation: str | None, count: int, timeout: float = 5.0) -> bool:
        """Poll until ``count`` calls arrived; for tests of background work."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call_count(operation) >= count:
                return True
            time.sleep(0.01)
        return self.call_count(operation) >= count

    # -- serving -----------------------------------------------------------------------------

    def handle(self, target: str, content_type: str, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one request: ``(status, JSON body)``. Errors come back in Rekognition's shape."""
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target
        params: dict[str, Any] = {}
        image_sha: str | None = None
        with self._lock:
            self._calls[operation] += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            if not authorization.startswith("AWS4-HMAC-SHA256"):
                raise FakeRekognitionError("MissingAuthenticationTokenException")
            if operation not in OPERATIONS:
                raise FakeRekognitionError("UnknownOperationException", status=400)
            if not content_type.startswith(CONTENT_TYPE):
                raise FakeRekognitionError("SerializationException", f"unexpected content type {content_type!r}")
            try:
                params = json.loads(body or b"{}")
            except ValueError as exc:
                raise FakeRekognitionError("SerializationException") from exc
            self._scripted_failure(operation)
            self._meter(operation)
            _validate(operation, params)
            data, script_keys = self._image(params)
            image_sha = hashlib.sha256(data).hexdigest() if data is not None else None
            result = self._answer(operation, params, data, script_keys)
        except FakeRekognitionError as exc:
            self._record(operation, params, image_sha, exc.status, exc.code)
            return exc.status, {
                "__type": exc.code, "Code": exc.code, "Logref": str(uuid.uuid4()), "Message": exc.message,
            }
        finally:
            with self._lock:
                self._in_flight -= 1
        self._record(operation, params, image_sha, 200, None)
        return 200, result

    def _record(self, operation: str, params: dict[str, Any], sha: str | None, status: int, error: str | None) -> None:
        shown = json.loads(json.dumps(params))
        image = shown.get("Image")
        if isinstance(image, dict) and "Bytes" in image:
            image["Bytes"] = f"<{sha or 'undecodable'}>"
        with self._lock:
            self._recorded.append(RecordedCall(operation, shown, sha, status, error))

    def _scripted_failure(self, operation: str) -> None:
        with self._lock:
            for key in (operation, "*"):
                queue = self._failures.get(key)
                if queue:
                    failure = queue[0]
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        queue.pop(0)
                    raise FakeRekognitionError(failure.code, failure.message, failure.status)

    def _meter(self, operation: str) -> None:
        if self.throttle_fraction:
            with self._lock:
                if self._random.random() < self.throttle_fraction:
                    self._throttled[operation] += 1
                    raise FakeRekognitionError(self.throttle_error)
        if not self.tps_limit:
            return
        with self._lock:
            bucket = self._buckets.get(operation)
            if bucket is None:
                bucket = self._buckets[operation] = _Bucket(rate=self.tps_limit, tokens=self.tps_limit)
            if not bucket.take():
                self._throttled[operation] += 1
                raise FakeRekognitionError(self.throttle_error)

    def _image(self, params: dict[str, Any]) -> tuple[bytes | None, tuple[str, ...]]:
        """The image bytes (``None`` for an S3 object we cannot read) and the script keys to look up."""
        image = params.get("Image")
        if not isinstance(image, dict) or ("Bytes" in image) == ("S3Object" in image):
            raise FakeRekognitionError("InvalidParameterException")
        if "Bytes" in image:
            try:
                data = base64.b64decode(image["Bytes"], validate=True)
            except (binascii.Error, TypeError) as exc:
                raise FakeRekognitionError("SerializationException", "Invalid base64") from exc
            if len(data) > 5 * 1024 * 1024:
                raise FakeRekognitionError("ImageTooLargeException")
            return data, (hashlib.sha256(data).hexdigest(),)
        s3_object = image["S3Object"]
        bucket, name = s3_object.get("Bucket"), s3_object.get("Name")
        if not bucket or not name:
            raise FakeRekognitionError("InvalidParameterException")
        uri = f"s3://{bucket}/{name}"
        if self.s3_client is None:
            return None, (uri,)
        try:
            data = self.s3_client.get_object(Bucket=bucket, Key=name)["Body"].read()
        except Exception as exc:  # any S3 failure is InvalidS3Object to the caller, as with AWS
            raise FakeRekognitionError("InvalidS3ObjectException") from exc
        if len(data) > 15 * 1024 * 1024:
            raise FakeRekognitionError("ImageTooLargeException")
        return data, (hashlib.sha256(data).hexdigest(), uri)

    def _findings(self, data: bytes | None) -> _Findings:
        """Findings derived from the image, decoded once per image rather than once per operation."""
        if data is None:
            return _Findings.generic()
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            cached = self._findings_cache.get(sha)
        if cached is None:
            cached = _Findings.of(data, min_side=self.min_side)  # raises for unreadable images: never cached
            with self._lock:
                if len(self._findings_cache) >= 256:
                    self._findings_cache.clear()
                self._findings_cache[sha] = cached
        return cached

    def _image_properties(self, data: bytes | None, max_colors: int) -> dict[str, Any]:
        """DetectLabels' ``ImageProperties`` for ``data``, computed once per image and colour cap."""
        if data is None:
            return image_properties_json(GENERIC_PROPERTIES)
        key = f"{hashlib.sha256(data).hexdigest()}:{max_colors}"
        with self._lock:
            cached = self._properties_cache.get(key)
        if cached is None:
            cached = image_properties_block(data, max_colors)
            with self._lock:
                if len(self._properties_cache) >= 256:
                    self._properties_cache.clear()
                self._properties_cache[key] = cached
        return cached

    def _answer(
        self, operation: str, params: dict[str, Any], data: bytes | None, keys: tuple[str, ...]
    ) -> dict[str, Any]:
        with self._lock:
            scripted = next((self._scripts[key] for key in keys if key in self._scripts), Script())
        findings = self._findings(data)
        if self.typical:
            findings = replace(findings, labels=TYPICAL_LABELS, text=TYPICAL_TEXT)
        min_confidence = float(params.get("MinConfidence", 55.0 if operation == "DetectLabels" else 50.0))
        if operation == "DetectLabels":
            features = params.get("Features") or ["GENERAL_LABELS"]
            labels: list[dict[str, Any]] = []
            if "GENERAL_LABELS" in features:
                labels = scripted.labels if scripted.labels is not None else findings.labels
                labels = [label for label in labels if label["Confidence"] >= min_confidence]
                if "MaxLabels" in params:
                    labels = labels[: int(params["MaxLabels"])]
            answer: dict[str, Any] = {"Labels": labels, "LabelModelVersion": LABEL_MODEL_VERSION}
            if "IMAGE_PROPERTIES" in features:
                settings = (params.get("Settings") or {}).get("ImageProperties") or {}
                max_colors = int(settings.get("MaxDominantColors", 10))
                if scripted.image_properties is not None:
                    answer["ImageProperties"] = scripted.image_properties
                else:
                    answer["ImageProperties"] = self._image_properties(data, max_colors)
            return answer
        if operation == "DetectText":
            text = scripted.text if scripted.text is not None else findings.text
            return {"TextDetections": text, "TextModelVersion": TEXT_MODEL_VERSION}
        if operation == "DetectModerationLabels":
            moderation = scripted.moderation if scripted.moderation is not None else findings.moderation
            moderation = [label for label in moderation if label["Confidence"] >= min_confidence]
            return {"ModerationLabels": moderation, "ModerationModelVersion": MODERATION_MODEL_VERSION,
                    "ContentTypes": []}
        # DetectFaces: default attributes only unless ALL was asked for, as the real API does.
        faces = scripted.faces if scripted.faces is not None else findings.faces
        if "ALL" not in (params.get("Attributes") or ["DEFAULT"]):
            keep = {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
            faces = [{k: v for k, v in face.items() if k in keep} for face in faces]
        return {"FaceDetails": faces}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a read timeout in a test) is normal here; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeRekognition
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


# -- deterministic findings --------------------------------------------------------------------


@dataclass
class _Findings:
    labels: list[dict[str, Any]]
    text: list[dict[str, Any]]
    moderation: list[dict[str, Any]]
    faces: list[dict[str, Any]]

    @classmethod
    def generic(cls) -> _Findings:
        """What an S3 image the fake cannot read gets: one plain label, nothing else."""
        return cls(labels=[_label(("Photography", 90.0))], text=[], moderation=[], faces=[])

    @classmethod
    def of(cls, data: bytes, *, min_side: int) -> _Findings:
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if image.format not in ("JPEG", "PNG"):
                    raise FakeRekognitionError("InvalidImageFormatException")
                if min(image.size) < min_side:
                    raise FakeRekognitionError("InvalidParameterException")
                notes = _notes(image)
                colour, share = dominant_colour(image)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise FakeRekognitionError("InvalidImageFormatException") from exc
        labels = [_label({"Name": colour, "Confidence": round(55.0 + 44.0 * share, 3),
                          "Categories": [{"Name": "Colors and Visual Composition"}]})]
        labels += [_label(name.strip()) for name in notes.get("imgbot:labels", "").split(",") if name.strip()]
        lines = [line for line in notes.get("imgbot:text", "").splitlines() if line.strip()]
        names = [name.strip() for name in notes.get("imgbot:moderation", "").split(",") if name.strip()]
        count = int(notes.get("imgbot:faces", "0") or 0)
        return cls(labels=labels, text=text_detections(lines), moderation=_moderation(names),
                   faces=face_details(count))


def _notes(image: Image.Image) -> dict[str, str]:
    """PNG text chunks and a JPEG comment (as ``imgbot:text``)."""
    notes: dict[str, str] = {}
    for key, value in (getattr(image, "text", None) or {}).items():
        notes[str(key)] = str(value)
    comment = image.info.get("comment")
    if comment and "imgbot:text" not in notes:
        notes["imgbot:text"] = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else str(comment)
    return notes


def dominant_colour(image: Image.Image) -> tuple[str, float]:
    """The named colour most pixels are closest to, and the share of pixels that chose it."""
    small = image.convert("RGB").resize((32, 32))
    votes: Counter[str] = Counter()
    for count, pixel in small.getcolors(32 * 32) or ():  # distinct colours only: fast on flat images
        rgb = tuple(pixel) if isinstance(pixel, tuple) else (int(pixel),) * 3
        votes[min(COLOURS, key=lambda name: _distance(rgb, COLOURS[name]))] += count
    name, count = votes.most_common(1)[0]
    return name, count / (32 * 32)


#: DetectLabels' ``Features`` values (botocore's ``DetectLabelsFeatureName``; at most 2 in a list).
FEATURES = ("GENERAL_LABELS", "IMAGE_PROPERTIES")

#: What an S3 image the fake cannot read gets for IMAGE_PROPERTIES: a mid grey, fairly sharp.
GENERIC_PROPERTIES = ImageProperties(
    brightness=50.0, sharpness=70.0, contrast=40.0,
    dominant_colors=(DominantColor(red=128, green=128, blue=128, hex_code="#808080", css_color="gray",
                                   simplified_color="grey", pixel_percent=100.0),),
)


def _validate(operation: str, params: dict[str, Any]) -> None:
    """Refuse what the real API refuses with InvalidParameterException: unknown ``Features`` values,
    more than two, and a ``MaxDominantColors`` outside 0-20."""
    if operation != "DetectLabels":
        return
    features = params.get("Features")
    if features is not None:
        if not isinstance(features, list) or len(features) > len(FEATURES) or any(
                feature not in FEATURES for feature in features):
            raise FakeRekognitionError(
                "InvalidParameterException",
                f"Features must be a list of at most 2 of {', '.join(FEATURES)}; got {features!r}",
            )
    settings = (params.get("Settings") or {}).get("ImageProperties") or {}
    if "MaxDominantColors" in settings:
        value = settings["MaxDominantColors"]
        if not isinstance(value, int) or not 0 <= value <= 20:
            raise FakeRekognitionError("InvalidParameterException",
                                       f"MaxDominantColors must be between 0 and 20; got {value!r}")


def _colours_json(colours: Iterable[DominantColor]) -> list[dict[str, Any]]:
    return [
        {"Red": c.red, "Green": c.green, "Blue": c.blue, "HexCode": c.hex_code, "CSSColor": c.css_color,
         "SimplifiedColor": c.simplified_color, "PixelPercent": c.pixel_percent}
        for c in colours
    ]


def image_properties_json(
    whole: ImageProperties, foreground: ImageProperties | None = None, background: ImageProperties | None = None
) -> dict[str, Any]:
    """``ImageProperties`` in the API's JSON shape. Foreground and background quality have no
    ``Contrast``, as in the real API; without them, the whole image stands in for both."""
    foreground = foreground or whole
    background = background or whole
    return {
        "Quality": {"Brightness": whole.brightness, "Sharpness": whole.sharpness, "Contrast": whole.contrast},
        "DominantColors": _colours_json(whole.dominant_colors),
        "Foreground": {
            "Quality": {"Brightness": foreground.brightness, "Sharpness": foreground.sharpness},
            "DominantColors": _colours_json(foreground.dominant_colors),
        },
        "Background": {
            "Quality": {"Brightness": background.brightness, "Sharpness": background.sharpness},
            "DominantColors": _colours_json(background.dominant_colors),
        },
    }


def image_properties_block(data: bytes, max_colors: int = 10) -> dict[str, Any]:
    """``ImageProperties`` computed from the pixels (``bot.core.visual``): the whole image, the
    middle half of each side as the foreground, the rest (its colours; the whole image's
    quality) as the background."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = image.size
    centre = (width // 4, height // 4, width - width // 4, height - height // 4)
    whole = image_properties(image, max_colors=max_colors)
    foreground = image_properties(image.crop(centre), max_colors=max_colors)
    surround = image.convert("RGBA")
    surround.paste((0, 0, 0, 0), centre)
    background = replace(whole, dominant_colors=image_properties(surround, max_colors=max_colors).dominant_colors)
    return image_properties_json(whole, foreground, background)


def _typical_labels() -> list[dict[str, Any]]:
    def box(left: float, top: float) -> dict[str, Any]:
        return {"BoundingBox": {"Width": 0.2, "Height": 0.25, "Left": left, "Top": top}, "Confidence": 93.1}

    apparel = [{"Name": "Apparel and Accessories"}]
    people = [{"Name": "Person Description"}]
    return [_label(item) for item in (
        {"Name": "Clothing", "Confidence": 99.1, "Aliases": [{"Name": "Apparel"}], "Categories": apparel},
        {"Name": "Footwear", "Confidence": 98.7, "Parents": [{"Name": "Clothing"}], "Categories": apparel},
        {"Name": "Shoe", "Confidence": 98.7, "Parents": [{"Name": "Footwear"}, {"Name": "Clothing"}],
         "Categories": apparel, "Instances": [box(0.1, 0.6), box(0.5, 0.62)]},
        {"Name": "Sneaker", "Confidence": 96.2, "Parents": [{"Name": "Shoe"}, {"Name": "Footwear"},
                                                              {"Name": "Clothing"}], "Categories": apparel},
        {"Name": "Person", "Confidence": 97.4, "Aliases": [{"Name": "Human"}], "Categories": people,
         "Instances": [box(0.3, 0.05)]},
        {"Name": "Adult", "Confidence": 97.4, "Parents": [{"Name": "Person"}], "Categories": people},
        {"Name": "Female", "Confidence": 97.4, "Parents": [{"Name": "Person"}], "Categories": people},
        {"Name": "Woman", "Confidence": 97.4, "Parents": [{"Name": "Adult"}, {"Name": "Female"}, {"Name": "Person"}],
         "Categories": people},
        {"Name": "Text", "Confidence": 99.8, "Categories": [{"Name": "Text and Documents"}]},
        {"Name": "Advertisement", "Confidence": 91.5, "Parents": [{"Name": "Poster"}, {"Name": "Text"}],
         "Categories": [{"Name": "Text and Documents"}]},
        {"Name": "Poster", "Confidence": 91.5, "Parents": [{"Name": "Text"}],
         "Categories": [{"Name": "Text and Documents"}]},
        {"Name": "Logo", "Confidence": 84.0, "Categories": [{"Name": "Symbols and Flags"}]},
        {"Name": "Smile", "Confidence": 81.3, "Parents": [{"Name": "Face"}, {"Name": "Head"}, {"Name": "Person"}],
         "Categories": [{"Name": "Expressions and Emotions"}]},
    )]



def _distance(a: tuple[int, ...], b: tuple[int, int, int]) -> int:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def _label(item: str | tuple[str, float] | dict[str, Any]) -> dict[str, Any]:
    """A Label in DetectLabels' GENERAL_LABELS shape."""
    if isinstance(item, str):
        item = {"Name": item, "Confidence": 95.0}
    elif isinstance(item, tuple):
        item = {"Name": item[0], "Confidence": float(item[1])}
    return {
        "Name": item["Name"],
        "Confidence": float(item.get("Confidence", 95.0)),
        "Instances": list(item.get("Instances", [])),
        "Parents": list(item.get("Parents", [])),
        "Aliases": list(item.get("Aliases", [])),
        "Categories": list(item.get("Categories", [])),
    }


def _moderation(items: Iterable[str | tuple[str, float] | dict[str, Any]]) -> list[dict[str, Any]]:
    """ModerationLabels with their ancestors, as DetectModerationLabels returns them."""
    found: dict[str, dict[str, Any]] = {}
    for item in items:
        if isinstance(item, dict):
            found[item["Name"]] = {"ParentName": "", "TaxonomyLevel": 1, **item}
            continue
        name, confidence = (item, 92.5) if isinstance(item, str) else (item[0], float(item[1]))
        chain = [name]
        while MODERATION_PARENTS.get(chain[-1]):
            chain.append(MODERATION_PARENTS[chain[-1]])
        for level, label in enumerate(reversed(chain), start=1):
            if label not in found:
                found[label] = {"Confidence": confidence, "Name": label,
                                "ParentName": MODERATION_PARENTS.get(label, ""), "TaxonomyLevel": level}
    return list(found.values())


def text_detections(lines: Sequence[str]) -> list[dict[str, Any]]:
    """LINE detections, then their WORDs (``ParentId`` → the line), with boxes and polygons."""
    detections: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    next_word_id = len(lines)
    for line_id, line in enumerate(lines):
        top = 0.1 + 0.8 * line_id / max(1, len(lines))
        height = min(0.08, 0.8 / max(1, len(lines)))
        detections.append(_text(line, "LINE", line_id, None, 0.1, top, 0.8, height))
        tokens = line.split()
        for index, token in enumerate(tokens):
            width = 0.8 / max(1, len(tokens))
            words.append(_text(token, "WORD", next_word_id, line_id, 0.1 + index * width, top, width, height))
            next_word_id += 1
    return detections + words


def _text(text: str, kind: str, ident: int, parent: int | None, left: float, top: float, width: float,
          height: float) -> dict[str, Any]:
    detection: dict[str, Any] = {
        "DetectedText": text,
        "Type": kind,
        "Id": ident,
        "Confidence": 99.2,
        "Geometry": {
            "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
            "Polygon": [{"X": left, "Y": top}, {"X": left + width, "Y": top},
                        {"X": left + width, "Y": top + height}, {"X": left, "Y": top + height}],
        },
    }
    if parent is not None:
        detection["ParentId"] = parent
    return detection


def face_details(count: int) -> list[dict[str, Any]]:
    """``count`` FaceDetails with every attribute DetectFaces returns for ``Attributes=["ALL"]``."""
    faces = []
    for index in range(count):
        left = 0.05 + 0.9 * index / max(1, count)
        width = min(0.2, 0.9 / max(1, count))
        faces.append({
            "BoundingBox": {"Width": width, "Height": 0.3, "Left": left, "Top": 0.2},
            "AgeRange": {"Low": 25, "High": 35},
            "Smile": {"Value": True, "Confidence": 93.1},
            "Eyeglasses": {"Value": False, "Confidence": 98.7},
            "Sunglasses": {"Value": False, "Confidence": 99.5},
            "Gender": {"Value": "Female", "Confidence": 96.0},
            "Beard": {"Value": False, "Confidence": 97.4},
            "Mustache": {"Value": False, "Confidence": 98.9},
            "EyesOpen": {"Value": True, "Confidence": 95.2},
            "MouthOpen": {"Value": False, "Confidence": 88.3},
            "Emotions": [{"Type": "HAPPY", "Confidence": 91.0}, {"Type": "CALM", "Confidence": 6.5}],
            "Landmarks": [
                {"Type": "eyeLeft", "X": left + width * 0.3, "Y": 0.3},
                {"Type": "eyeRight", "X": left + width * 0.7, "Y": 0.3},
                {"Type": "nose", "X": left + width * 0.5, "Y": 0.37},
                {"Type": "mouthLeft", "X": left + width * 0.35, "Y": 0.43},
                {"Type": "mouthRight", "X": left + width * 0.65, "Y": 0.43},
            ],
            "Pose": {"Roll": 1.5, "Yaw": -4.2, "Pitch": 3.3},
            "Quality": {"Brightness": 78.4, "Sharpness": 92.2},
            "Confidence": 99.9,
            "FaceOccluded": {"Value": False, "Confidence": 97.0},
            "EyeDirection": {"Yaw": 2.1, "Pitch": -5.0, "Confidence": 94.0},
        })
    return faces


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake in the foreground, for benchmarks and manual poking."""
    import argparse

    parser = argparse.ArgumentParser(description="Fake Amazon Rekognition on loopback.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--tps-limit", type=float, default=None)
    args = parser.parse_args(argv)
    with FakeRekognition(latency=args.latency, tps_limit=args.tps_limit, port=args.port) as fake:
        print(f"AWS_ENDPOINT_URL_REKOGNITION={fake.endpoint_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()


#: What Rekognition finds in a typical product banner: 13 labels (3 boxes), 2 lines and their 6 words.
TYPICAL_LABELS: list[dict[str, Any]] = _typical_labels()
TYPICAL_TEXT: list[dict[str, Any]] = text_detections(["SUMMER SALE", "UP TO 50% OFF"])
