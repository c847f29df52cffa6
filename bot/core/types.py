"""Provider-neutral values that flow through the core.

Every analyser (Rekognition, the offline engine, the test fake) returns an
``Analysis`` built from these, so the database, search, reports and Slack
replies cannot tell providers apart except by ``provider`` and
``model_versions``. Boxes use Rekognition's convention: ratios of the image's
width and height, origin top-left, on the *oriented* analysis copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class BoundingBox:
    left: float
    top: float
    width: float
    height: float

    def to_dict(self) -> dict[str, float]:
        return {"Left": self.left, "Top": self.top, "Width": self.width, "Height": self.height}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoundingBox:
        return cls(
            left=float(data.get("Left", 0.0)),
            top=float(data.get("Top", 0.0)),
            width=float(data.get("Width", 0.0)),
            height=float(data.get("Height", 0.0)),
        )


@dataclass(frozen=True)
class LabelInstance:
    box: BoundingBox
    confidence: float


@dataclass(frozen=True)
class Label:
    name: str
    confidence: float
    parents: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    instances: tuple[LabelInstance, ...] = ()


TextKind = Literal["LINE", "WORD"]


@dataclass(frozen=True)
class TextDetection:
    """One LINE or WORD; words point at their line through ``parent_id``."""

    id: int
    kind: TextKind
    text: str
    confidence: float
    box: BoundingBox
    parent_id: int | None = None
    polygon: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class ModerationLabel:
    """A label of Rekognition's moderation taxonomy (level 1 has no parent)."""

    name: str
    confidence: float
    parent_name: str | None = None
    taxonomy_level: int = 1


@dataclass(frozen=True)
class FaceLandmark:
    type: str
    x: float
    y: float


@dataclass(frozen=True)
class Face:
    box: BoundingBox
    confidence: float
    landmarks: tuple[FaceLandmark, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    embedding: tuple[float, ...] | None = None


@dataclass(frozen=True)
class DominantColor:
    """One of an image's dominant colours, in Rekognition's ``DominantColors`` shape."""

    red: int
    green: int
    blue: int
    hex_code: str  # "#1a2b3c"
    css_color: str  # the nearest CSS colour name: "teal"
    simplified_color: str  # one of Rekognition's simplified colour names: "green"
    pixel_percent: float  # 0-100


@dataclass(frozen=True)
class ImageProperties:
    """Colours and quality, in Rekognition's ``ImageProperties`` shape (scores 0-100).

    ``source`` is ``pixels`` when imgbot computed them, ``rekognition`` when DetectLabels did."""

    brightness: float
    sharpness: float
    contrast: float
    dominant_colors: tuple[DominantColor, ...] = ()
    source: str = "pixels"


Category = Literal["secret", "pii"]
#: Where a finding was read: (line id, first character, end character) in that line's text.
Span = tuple[int, int, int]
#: Personal data treated like a secret: no full card number (or its code) is ever kept (PCI DSS).
MASKED_PII = frozenset({"card", "card-cvv"})


@dataclass(frozen=True)
class PiiEntity:
    """One entity a PII detector found: its type as the service names it, a 0-1 score, character offsets,
    and, named by the adapter, imgbot's kind and category for it (an empty kind: not personal data)."""

    type: str
    score: float
    begin: int
    end: int
    kind: str = ""
    category: Category = "pii"


@dataclass(frozen=True)
class Finding:
    """A secret or a piece of personal data read in an image: its kind and a mask, never the value."""

    category: Category
    kind: str
    masked: str
    spans: tuple[Span, ...] = ()
    boxes: tuple[BoundingBox, ...] = ()
    #: Who found it: imgbot's own detectors, or ``comprehend`` (with its score, 0-100).
    detector: str = "imgbot"
    score: float | None = None

    @property
    def line_ids(self) -> tuple[int, ...]:
        return tuple(sorted({line_id for line_id, _, _ in self.spans}))

    @property
    def hides_text(self) -> bool:
        """Secrets and card numbers are never kept whole; other personal data is kept and tagged."""
        return self.category == "secret" or self.kind in MASKED_PII


def people_count(labels: Iterable[Label]) -> int:
    """How many people the labels show: the Person label's boxes (one person when it has none)."""
    for label in labels:
        if label.name == "Person":
            return max(1, len(label.instances))
    return 0


@dataclass(frozen=True)
class Analysis:
    """Everything one analyser found in one image."""

    provider: str
    model_versions: dict[str, str] = field(default_factory=dict)
    labels: tuple[Label, ...] = ()
    text: tuple[TextDetection, ...] = ()
    moderation: tuple[ModerationLabel, ...] = ()
    faces: tuple[Face, ...] = ()
    faces_requested: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    #: Colours and quality (Rekognition's when it was asked for them; else the pipeline computes them).
    properties: ImageProperties | None = None
    #: The 64-bit perceptual hash of the pixels, signed (near-duplicates; set by the pipeline).
    phash: int | None = None
    #: The embedding (float16 little-endian bytes) and the version of the model that made it.
    embedding: bytes | None = None
    embedding_model: str | None = None
    #: Secrets and personal data read in the text (masked in ``text`` and ``raw`` already; see core/redaction.py).
    sensitive: tuple[Finding, ...] = ()
    #: Seconds this analysis waited for the provider's rate limit (not stored: it sizes the work in flight).
    paced_seconds: float = 0.0

    @property
    def lines(self) -> tuple[TextDetection, ...]:
        return tuple(t for t in self.text if t.kind == "LINE")

    @property
    def people(self) -> int:
        return people_count(self.labels)

    @property
    def words(self) -> tuple[TextDetection, ...]:
        return tuple(t for t in self.text if t.kind == "WORD")


@dataclass(frozen=True)
class StoredObject:
    """Where storage put an original; ``bucket``/``key`` are set for S3 only."""

    uri: str
    key: str
    bucket: str | None = None


@dataclass(frozen=True)
class PreparedImage:
    """A decoded, checked image and the copy analysers should look at.

    ``data`` is the untouched original. ``analysis_bytes`` is JPEG or PNG,
    EXIF-oriented, within Rekognition's limits (≤ 5 MB, 80–10,000 px a side);
    it *is* the original when the original already fits (``analysis_is_original``),
    which lets an S3-backed analyser read the stored object instead of bytes.
    """

    sha256: str
    data: bytes
    format: str  # "JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF"
    mime_type: str
    width: int
    height: int
    analysis_bytes: bytes
    analysis_format: Literal["JPEG", "PNG"]
    analysis_width: int
    analysis_height: int
    analysis_is_original: bool
    stored: StoredObject | None = None

    @property
    def byte_size(self) -> int:
        return len(self.data)

    @property
    def extension(self) -> str:
        return {
            "JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif",
            "TIFF": "tif", "BMP": "bmp", "HEIF": "heic",
        }.get(self.format, "bin")


SourceKind = Literal["file", "slack", "s3"]


@dataclass(frozen=True)
class Source:
    """Where an image was seen: a file on disk, a Slack message, an S3 object."""

    kind: SourceKind
    name: str
    team_id: str | None = None
    channel_id: str | None = None
    channel_name: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    file_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    permalink: str | None = None

    @classmethod
    def file(cls, path: str) -> Source:
        return cls(kind="file", name=path)

    @classmethod
    def s3(cls, uri: str) -> Source:
        return cls(kind="s3", name=uri)

    @classmethod
    def slack(
        cls,
        *,
        team_id: str | None,
        channel_id: str,
        user_id: str | None,
        file_id: str,
        message_ts: str | None,
        name: str = "",
        thread_ts: str | None = None,
        permalink: str | None = None,
        channel_name: str | None = None,
        user_name: str | None = None,
    ) -> Source:
        return cls(
            kind="slack", name=name or file_id, team_id=team_id, channel_id=channel_id,
            channel_name=channel_name, user_id=user_id, user_name=user_name, file_id=file_id,
            message_ts=message_ts, thread_ts=thread_ts, permalink=permalink,
        )

    @property
    def key(self) -> str:
        """Identity of the sighting: the same key twice is the same sighting."""
        if self.kind == "slack":
            return f"slack:{self.team_id or ''}:{self.channel_id or ''}:{self.file_id or ''}:{self.message_ts or ''}"
        return f"{self.kind}:{self.name}"

    @property
    def label(self) -> str:
        """Short form for logs: ``slack:C0123``, ``file:cat.jpg``, ``s3://bucket/key``."""
        if self.kind == "slack":
            return f"slack:{self.channel_id}"
        if self.kind == "s3" and self.name.startswith("s3://"):
            return self.name
        return f"{self.kind}:{self.name}"


Outcome = Literal["done", "reused", "failed", "pending"]


@dataclass(frozen=True)
class IngestResult:
    """What happened to one image handed to the pipeline."""

    image_id: int | None
    sha256: str
    outcome: Outcome
    seconds: float
    sighting_id: int | None = None
    reason: str | None = None
    retryable: bool = False
    labels: int = 0
    text_lines: int = 0
    flagged: bool = False
    source_name: str = ""
    sensitive: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in ("done", "reused")
