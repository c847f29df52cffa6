"""Amazon Rekognition behind the ``Analyzer`` interface.

One ``analyze`` makes DetectLabels, DetectText and DetectModerationLabels at the same
time (plus DetectFaces when faces are switched on) on a thread pool the analyser
owns, so an image costs one round trip of latency, not three. Each API is paced by a
process-wide token bucket at ``IMGBOT_REKOGNITION_TPS``; botocore's adaptive retries
handle the throttling that still gets through. An image already stored in S3 is
passed as an ``S3Object`` so its bytes are not uploaded twice.

Responses are mapped to the provider-neutral types of ``bot.core.types``; the raw
responses (minus ``ResponseMetadata``) are kept in ``Analysis.raw``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import AwsFailure, classify, classify_code, error_code, make_client, short_code
from bot.core.types import (
    Analysis,
    BoundingBox,
    DominantColor,
    Face,
    FaceLandmark,
    ImageProperties,
    Label,
    LabelInstance,
    ModerationLabel,
    PreparedImage,
    StoredObject,
    TextDetection,
)
from bot.core.visual import normalize_simplified
from bot.errors import AnalyzerError
from bot.ratelimit import RateLimiter

if TYPE_CHECKING:
    from bot.config import Settings

logger = logging.getLogger("imgbot.rekognition")

#: Rekognition reads images up to 15 MB from S3, but only 5 MB passed as bytes.
S3_OBJECT_MAX_BYTES = 15 * 1024 * 1024
BYTES_MAX = 5 * 1024 * 1024

DETECT_LABELS = "DetectLabels"
DETECT_TEXT = "DetectText"
DETECT_MODERATION_LABELS = "DetectModerationLabels"
DETECT_FACES = "DetectFaces"

#: Where ``call`` leaves the seconds a call waited for its turn (taken out again by ``analyze``).
_PACED = "_imgbot_paced_seconds"

_METHODS = {
    DETECT_LABELS: "detect_labels",
    DETECT_TEXT: "detect_text",
    DETECT_MODERATION_LABELS: "detect_moderation_labels",
    DETECT_FACES: "detect_faces",
}

#: DetectLabels' ``Features`` when IMGBOT_REKOGNITION_IMAGE_PROPERTIES is on (IMAGE_PROPERTIES is billed apart).
LABEL_FEATURES_WITH_PROPERTIES = ["GENERAL_LABELS", "IMAGE_PROPERTIES"]

# Face fields that are not attributes: they have their own place in ``Face``.
_FACE_CORE_FIELDS = frozenset({"BoundingBox", "Confidence", "Landmarks"})


#: Regions whose default quota is 50 calls per second per API (DetectLabels, DetectText,
#: DetectModerationLabels); the others start at 5. Service Quotas shows an account's own values
#: (quota codes L-E29B542B, L-87CF5BA6, L-7F4D1AC4).
HIGH_QUOTA_REGIONS = frozenset({"us-east-1", "us-west-2", "eu-west-1"})
HIGH_QUOTA_TPS = 50.0
OTHER_REGIONS_TPS = 5.0


def default_tps(region: str | None) -> float:
    """Rekognition's default per-API quota in ``region`` (the lower one when the region is unknown)."""
    return HIGH_QUOTA_TPS if region in HIGH_QUOTA_REGIONS else OTHER_REGIONS_TPS


def create(settings: Settings) -> RekognitionAnalyzer:
    """Entry point of ``imgbot.analyzers``: the analyser ``IMGBOT_ANALYZER=rekognition`` names.

    Standard retries, not adaptive: the pacing here is per API and learns of throttles
    itself (see ``bot.ratelimit``)."""
    client = make_client("rekognition", settings, retry_mode="standard")
    region = client.meta.region_name
    tps = settings.rekognition_tps or default_tps(region)
    logger.info("rekognition region=%s tps=%g per API (%s)", region, tps,
                "IMGBOT_REKOGNITION_TPS" if settings.rekognition_tps else "the region's default quota")
    return RekognitionAnalyzer(
        client,
        faces=settings.faces,
        store_min_confidence=settings.store_min_confidence,
        image_properties=settings.rekognition_image_properties,
        tps=tps,
        max_workers=settings.max_in_flight * 4,
    )


class RekognitionAnalyzer:
    """``Analyzer`` that asks Amazon Rekognition. Thread-safe: one instance serves every worker."""

    name = "rekognition"

    def __init__(
        self,
        client: Any,
        *,
        faces: bool,
        store_min_confidence: float = 50.0,
        image_properties: bool = False,
        tps: float = 50.0,
        limiter: RateLimiter | None = None,
        max_workers: int = 16,
    ) -> None:
        self.client = client
        self.faces = faces
        self.store_min_confidence = float(store_min_confidence)
        self.image_properties = image_properties
        self.limiter = limiter if limiter is not None else RateLimiter.shared("rekognition", tps)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="imgbot-rekognition")
        # Every attempt is paced, botocore's retries included, and every throttle slows its API down.
        events = client.meta.events
        events.register("before-send.rekognition", self._pace, unique_id=f"imgbot-pace-{id(self)}")
        events.register("needs-retry.rekognition", self._notice_throttle, unique_id=f"imgbot-throttle-{id(self)}")

    @property
    def images_per_second(self) -> float:
        """Each image makes one call of each API, so the quota per API is the quota in images."""
        return self.limiter.rate

    def close(self) -> None:
        """Stop the call pool (idempotent); pending calls finish first."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> RekognitionAnalyzer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------

    def image_argument(self, image: PreparedImage) -> dict[str, Any]:
        """``S3Object`` when Rekognition can read the stored original itself, else the analysis bytes."""
        location = s3_location(image.stored)
        if location is not None and image.analysis_is_original and image.byte_size <= S3_OBJECT_MAX_BYTES:
            bucket, object_key = location
            return {"S3Object": {"Bucket": bucket, "Name": object_key}}
        return {"Bytes": image.analysis_bytes}

    def requests(self, image: PreparedImage) -> dict[str, dict[str, Any]]:
        """The keyword arguments of each call ``analyze`` makes, by operation name.

        DetectLabels gets no ``MaxLabels``: its default is already the API's upper
        limit (1,000), and the confidence floor is what keeps the list short. Nor
        ``Features``, unless image properties are on (``IMGBOT_REKOGNITION_IMAGE_PROPERTIES``):
        general labels are what it returns when none is asked for; with
        ``GENERAL_LABELS`` and ``IMAGE_PROPERTIES`` it also returns colours and quality
        (the default 10 dominant colours, which is what imgbot keeps).
        """
        image_argument = self.image_argument(image)
        labels_call: dict[str, Any] = {"Image": image_argument, "MinConfidence": self.store_min_confidence}
        if self.image_properties:
            labels_call["Features"] = list(LABEL_FEATURES_WITH_PROPERTIES)
        calls: dict[str, dict[str, Any]] = {
            DETECT_LABELS: labels_call,
            DETECT_TEXT: {"Image": image_argument},
            DETECT_MODERATION_LABELS: {"Image": image_argument, "MinConfidence": self.store_min_confidence},
        }
        if self.faces:
            calls[DETECT_FACES] = {"Image": image_argument, "Attributes": ["ALL"]}
        return calls

    def call(self, operation: str, kwargs: dict[str, Any], fallback_bytes: bytes | None = None) -> dict[str, Any]:
        """One paced Rekognition call; botocore errors come out as ``AnalyzerError``.

        When Rekognition cannot read the ``S3Object`` (a bucket in another region, a
        Rekognition endpoint that does not share the S3 one), ``fallback_bytes`` are sent
        instead, once: the analysis copy is always within the 5 MB that ``Bytes`` allows."""
        self.limiter.take_waited()
        started = time.monotonic()
        try:
            response: dict[str, Any] = getattr(self.client, _METHODS[operation])(**kwargs)
        except ClientError as exc:
            if fallback_bytes is not None and "S3Object" in kwargs.get("Image", {}) and (
                    error_code(exc) == "InvalidS3ObjectException"):
                logger.warning("rekognition op=%s could not read %s from S3 (%s); sending the bytes", operation,
                               kwargs["Image"]["S3Object"].get("Name"), classify(exc).detail)
                return self.call(operation, {**kwargs, "Image": {"Bytes": fallback_bytes}})
            raise translate_error(operation, exc) from exc
        except BotoCoreError as exc:
            raise translate_error(operation, exc) from exc
        waited = self.limiter.take_waited()
        logger.debug("rekognition op=%s secs=%.3f paced=%.3f", operation, time.monotonic() - started, waited)
        answer = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        answer[_PACED] = waited
        return answer

    def _pace(self, event_name: str = "", **_: Any) -> None:
        """botocore's ``before-send``: wait for this API's turn (every attempt, retries included)."""
        self.limiter.acquire(event_name.rsplit(".", 1)[-1])

    def _notice_throttle(self, event_name: str = "", response: Any = None, **_: Any) -> None:
        """botocore's ``needs-retry``: a throttled answer slows its API down. Decides nothing itself."""
        if response is None:
            return
        code = str((response[1] or {}).get("Error", {}).get("Code", ""))
        if classify_code(code) == "throttled":
            operation = event_name.rsplit(".", 1)[-1]
            logger.info("rekognition op=%s throttled (%s); slowing down", operation, code)
            self.limiter.throttled(operation)

    # -- the Analyzer interface -------------------------------------------------------------

    def analyze(self, image: PreparedImage) -> Analysis:
        futures: dict[str, Future[dict[str, Any]]] = {
            operation: self._executor.submit(self.call, operation, kwargs, image.analysis_bytes)
            for operation, kwargs in self.requests(image).items()
        }
        responses: dict[str, dict[str, Any]] = {}
        errors: list[AnalyzerError] = []
        paced = 0.0
        for operation, future in futures.items():  # wait for all, so no call outlives the image
            try:
                responses[operation] = future.result()
            except AnalyzerError as exc:
                errors.append(exc)
            else:
                paced = max(paced, responses[operation].pop(_PACED, 0.0))  # the calls run side by side
        if errors:
            # A permanent failure wins: retrying the image cannot help if one call can never succeed.
            permanent = [e for e in errors if not e.retryable]
            raise (permanent or errors)[0]
        return replace(to_analysis(responses, faces_requested=self.faces), paced_seconds=paced)


def s3_location(stored: StoredObject | None) -> tuple[str, str] | None:
    """``(bucket, full object key)`` of an original stored in S3, read from its ``s3://`` URI.

    ``StoredObject.key`` lacks the storage prefix; the URI has the whole key.
    """
    if stored is None or not stored.bucket:
        return None
    head = f"s3://{stored.bucket}/"
    if not stored.uri.startswith(head) or len(stored.uri) == len(head):
        return None
    return stored.bucket, stored.uri[len(head):]


# -- response mapping ------------------------------------------------------------------------


def to_analysis(responses: dict[str, dict[str, Any]], *, faces_requested: bool) -> Analysis:
    """Build the provider-neutral ``Analysis`` from the responses, keyed by operation name."""
    labels_response = responses.get(DETECT_LABELS, {})
    text_response = responses.get(DETECT_TEXT, {})
    moderation_response = responses.get(DETECT_MODERATION_LABELS, {})
    faces_response = responses.get(DETECT_FACES, {})
    versions = {
        "labels": labels_response.get("LabelModelVersion"),
        "text": text_response.get("TextModelVersion"),
        "moderation": moderation_response.get("ModerationModelVersion"),
        "faces": faces_response.get("FaceModelVersion"),
    }
    return Analysis(
        provider="rekognition",
        model_versions={k: str(v) for k, v in versions.items() if v},
        labels=labels_from(labels_response),
        text=text_from(text_response),
        moderation=moderation_from(moderation_response),
        faces=faces_from(faces_response),
        faces_requested=faces_requested,
        raw=dict(responses),
        properties=properties_from(labels_response),
    )


def _names(items: list[dict[str, Any]] | None) -> tuple[str, ...]:
    return tuple(str(item["Name"]) for item in items or () if item.get("Name"))


def labels_from(response: dict[str, Any]) -> tuple[Label, ...]:
    """Every named label (``Name`` is optional in the API's shape: a nameless one says nothing)."""
    return tuple(
        Label(
            name=str(label["Name"]),
            confidence=float(label.get("Confidence", 0.0)),
            parents=_names(label.get("Parents")),
            aliases=_names(label.get("Aliases")),
            categories=_names(label.get("Categories")),
            instances=tuple(
                LabelInstance(
                    box=BoundingBox.from_dict(instance.get("BoundingBox", {})),
                    confidence=float(instance.get("Confidence", 0.0)),
                )
                for instance in label.get("Instances") or ()
            ),
        )
        for label in response.get("Labels") or ()
        if label.get("Name")
    )


def properties_from(response: dict[str, Any]) -> ImageProperties | None:
    """DetectLabels' ``ImageProperties`` (whole image only), or ``None`` when it was not asked for.

    Colours keep Rekognition's order; ``HexCode`` becomes lower-case ``#rrggbb`` (made from
    the RGB values when absent or malformed), ``CSSColor`` lower case as given,
    ``SimplifiedColor`` lower case with ``gray`` spelled ``grey``.
    """
    found = response.get("ImageProperties")
    if not isinstance(found, dict):
        return None
    quality = found.get("Quality") or {}
    return ImageProperties(
        brightness=float(quality.get("Brightness", 0.0)),
        sharpness=float(quality.get("Sharpness", 0.0)),
        contrast=float(quality.get("Contrast", 0.0)),
        dominant_colors=tuple(_dominant_color(colour) for colour in found.get("DominantColors") or ()),
        source="rekognition",
    )


def _dominant_color(colour: dict[str, Any]) -> DominantColor:
    red, green, blue = (min(255, max(0, int(colour.get(key, 0)))) for key in ("Red", "Green", "Blue"))
    return DominantColor(
        red=red,
        green=green,
        blue=blue,
        hex_code=_hex_code(colour.get("HexCode"), (red, green, blue)),
        css_color=str(colour.get("CSSColor") or "").strip().lower(),
        simplified_color=normalize_simplified(str(colour.get("SimplifiedColor") or "")),
        pixel_percent=float(colour.get("PixelPercent", 0.0)),
    )


def _hex_code(value: Any, rgb: tuple[int, int, int]) -> str:
    """``"#2F4F4F"`` or ``"2f4f4f"`` → ``"#2f4f4f"``; from ``rgb`` when ``value`` is no 6-digit hex code."""
    digits = str(value or "").strip().lstrip("#").lower()
    if len(digits) == 6 and all(c in "0123456789abcdef" for c in digits):
        return f"#{digits}"
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def text_from(response: dict[str, Any]) -> tuple[TextDetection, ...]:
    detections = []
    for found in response.get("TextDetections") or ():
        geometry = found.get("Geometry") or {}
        parent = found.get("ParentId")
        detections.append(
            TextDetection(
                id=int(found.get("Id", 0)),
                kind="WORD" if found.get("Type") == "WORD" else "LINE",
                text=str(found.get("DetectedText", "")),
                confidence=float(found.get("Confidence", 0.0)),
                box=BoundingBox.from_dict(geometry.get("BoundingBox") or {}),
                parent_id=int(parent) if parent is not None else None,
                polygon=tuple(
                    (float(point.get("X", 0.0)), float(point.get("Y", 0.0))) for point in geometry.get("Polygon") or ()
                ),
            )
        )
    return tuple(detections)


def moderation_from(response: dict[str, Any]) -> tuple[ModerationLabel, ...]:
    labels = []
    for found in response.get("ModerationLabels") or ():
        if not found.get("Name"):
            continue
        parent = found.get("ParentName") or None  # Rekognition says "" for a top-level label
        level = found.get("TaxonomyLevel")
        labels.append(
            ModerationLabel(
                name=str(found["Name"]),
                confidence=float(found.get("Confidence", 0.0)),
                parent_name=parent,
                taxonomy_level=int(level) if level else (2 if parent else 1),
            )
        )
    return tuple(labels)


def faces_from(response: dict[str, Any]) -> tuple[Face, ...]:
    return tuple(
        Face(
            box=BoundingBox.from_dict(detail.get("BoundingBox") or {}),
            confidence=float(detail.get("Confidence", 0.0)),
            landmarks=tuple(
                FaceLandmark(type=str(mark.get("Type", "")), x=float(mark.get("X", 0.0)), y=float(mark.get("Y", 0.0)))
                for mark in detail.get("Landmarks") or ()
            ),
            attributes={k: v for k, v in detail.items() if k not in _FACE_CORE_FIELDS},
        )
        for detail in response.get("FaceDetails") or ()
    )


# -- errors ----------------------------------------------------------------------------------

_IMAGE_MESSAGES = {
    "InvalidImageFormatException": (
        "Rekognition could not read this image (InvalidImageFormat). It accepts JPEG and PNG files only, "
        "and this one may be damaged."
    ),
    "ImageTooLargeException": (
        "Rekognition refused this image as too large (ImageTooLarge): the limit is 5 MB sent directly, "
        "15 MB from S3."
    ),
    "InvalidS3ObjectException": (
        "Rekognition could not read the stored image from S3 (InvalidS3Object). Check that the bucket is in "
        "the same AWS region as Rekognition and that Rekognition may read it (s3:GetObject)."
    ),
    "InvalidParameterException": (
        "Rekognition refused this image (InvalidParameter). It may be too small (under 80 pixels a side) "
        "or otherwise not something Rekognition can analyse."
    ),
}


def translate_error(operation: str, exc: BaseException) -> AnalyzerError:
    """A botocore error from ``operation`` as an ``AnalyzerError`` saying what to do about it.

    Throttling and 5xx reach this point only after botocore's own retries ran out, so
    they are ``retryable``: the image can be tried again later, not now.
    """
    failure: AwsFailure = classify(exc)
    detail = f"Rekognition {operation} failed: {failure.detail}"
    code = failure.code
    if code in _IMAGE_MESSAGES:
        return AnalyzerError(_IMAGE_MESSAGES[code], detail=detail, retryable=False)
    if failure.kind == "credentials":
        message = (f"imgbot's AWS credentials were refused by Amazon Rekognition ({short_code(code)}). "
                   "Check AWS_PROFILE or the AWS access keys in the environment, and that they have not expired.")
    elif failure.kind == "denied":
        message = (f"imgbot is not allowed to use Amazon Rekognition ({short_code(code)}). Check the IAM policy: "
                   "rekognition:DetectLabels, DetectText and DetectModerationLabels (and DetectFaces when "
                   "IMGBOT_FACES is on).")
    elif failure.kind == "throttled":
        message = (f"Amazon Rekognition is busy ({short_code(code)}); imgbot will try this image again later. "
                   "Lowering IMGBOT_REKOGNITION_TPS or asking AWS for a higher quota avoids this.")
    elif failure.kind == "transient":
        message = (f"Amazon Rekognition is unavailable right now ({short_code(code)}); "
                   "imgbot will try this image again later.")
    elif failure.kind == "unsupported":
        message = (f"This Amazon Rekognition endpoint does not offer {operation} ({short_code(code)}), so the image "
                   "could not be analysed. Check AWS_ENDPOINT_URL_REKOGNITION.")
        return AnalyzerError(message, detail=detail, retryable=False)
    elif failure.kind in ("rejected", "not_found"):
        message = f"Rekognition refused this image ({short_code(code)})."
        return AnalyzerError(message, detail=detail, retryable=False)
    else:
        message = f"Amazon Rekognition failed on this image ({short_code(code)})."
    return AnalyzerError(message, detail=detail, retryable=failure.retryable)
