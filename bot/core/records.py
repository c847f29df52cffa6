"""Read-side values: what search, reports, ``show`` and the Slack replies get back.

They are plain dataclasses built from database rows by ``db.queries`` so no
caller ever holds a live ORM object (or a session) outside a transaction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.types import Face, Finding, ImageProperties, Label, ModerationLabel, TextDetection, people_count


@dataclass(frozen=True)
class SightingRecord:
    id: int
    source_kind: str
    name: str
    seen_at: datetime
    team_id: str | None = None
    channel_id: str | None = None
    channel_name: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    file_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    permalink: str | None = None
    deleted: bool = False

    @property
    def source(self) -> str:
        """``slack:C0123``, ``file:cat.jpg`` or ``s3://bucket/key`` (its own scheme, not ``s3:`` again)."""
        if self.source_kind == "slack":
            return f"slack:{self.channel_id}"
        if self.source_kind == "s3" and self.name.startswith("s3://"):
            return self.name
        return f"{self.source_kind}:{self.name}"


@dataclass(frozen=True)
class ModerationDecisionRecord:
    decision: str  # "confirmed" | "dismissed"
    user_id: str
    decided_at: datetime


@dataclass(frozen=True)
class ImageRecord:
    """One stored image with everything known about it."""

    id: int
    sha256: str
    status: str  # pending | done | failed
    byte_size: int
    format: str | None
    width: int | None
    height: int | None
    storage_key: str | None
    storage_uri: str | None
    created_at: datetime
    analyzed_at: datetime | None = None
    failure_reason: str | None = None
    provider: str | None = None
    model_versions: dict[str, str] = field(default_factory=dict)
    labels: tuple[Label, ...] = ()
    text: tuple[TextDetection, ...] = ()
    moderation: tuple[ModerationLabel, ...] = ()
    faces: tuple[Face, ...] = ()
    sightings: tuple[SightingRecord, ...] = ()
    moderation_decision: ModerationDecisionRecord | None = None
    sensitive: tuple[Finding, ...] = ()
    properties: ImageProperties | None = None
    phash: int | None = None
    #: As stored with the analysis; ``None`` in a record built without it (then counted from the labels).
    person_count: int | None = None

    @property
    def people(self) -> int:
        """How many people it shows (the Person label's boxes)."""
        return self.person_count if self.person_count is not None else people_count(self.labels)

    @property
    def quality_flags(self) -> tuple[str, ...]:
        """``blurry``, ``dark``, ``small``: what a reply warns about and ``quality:`` finds."""
        from bot.core.visual import quality_flags

        if self.properties is None or not self.width or not self.height:
            return ()
        return quality_flags(self.properties, self.width, self.height)

    @property
    def secrets(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.sensitive if f.category == "secret")

    @property
    def lines(self) -> tuple[TextDetection, ...]:
        return tuple(t for t in self.text if t.kind == "LINE")

    @property
    def live_sightings(self) -> tuple[SightingRecord, ...]:
        return tuple(s for s in self.sightings if not s.deleted)

    def top_labels(self, min_confidence: float, limit: int = 5) -> tuple[Label, ...]:
        chosen = [label for label in self.labels if label.confidence >= min_confidence]
        chosen.sort(key=lambda label: -label.confidence)
        return tuple(chosen[:limit])

    def flags(self, min_confidence: float) -> tuple[ModerationLabel, ...]:
        """Moderation labels at or above the threshold, strongest first."""
        return tuple(sorted((m for m in self.moderation if m.confidence >= min_confidence),
                            key=lambda m: -m.confidence))

    def is_flagged(self, min_confidence: float) -> bool:
        return bool(self.flags(min_confidence))

    def to_json(self, *, label_min_confidence: float = 0.0, moderation_min_confidence: float = 0.0) -> dict[str, Any]:
        """The JSON shape of ``imgbot show --json`` and ``imgbot search --json``."""
        newest = max(self.live_sightings or self.sightings, key=lambda s: s.seen_at, default=None)
        return {
            "id": self.id,
            "sha256": self.sha256,
            "status": self.status,
            "failure_reason": self.failure_reason,
            "source": newest.source if newest else None,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "byte_size": self.byte_size,
            "storage_uri": self.storage_uri,
            "created_at": self.created_at.isoformat(),
            "analyzed_at": self.analyzed_at.isoformat() if self.analyzed_at else None,
            "provider": self.provider,
            "model_versions": self.model_versions,
            "people": self.people,
            "labels": [
                {
                    "name": label.name,
                    "confidence": round(label.confidence, 2),
                    "parents": list(label.parents),
                    "aliases": list(label.aliases),
                    "categories": list(label.categories),
                    "instances": [
                        {"box": inst.box.to_dict(), "confidence": round(inst.confidence, 2)}
                        for inst in label.instances
                    ],
                }
                for label in self.labels
                if label.confidence >= label_min_confidence
            ],
            "text": [line.text for line in self.lines],
            "text_detections": [
                {
                    "id": t.id,
                    "type": t.kind,
                    "text": t.text,
                    "confidence": round(t.confidence, 2),
                    "parent_id": t.parent_id,
                    "box": t.box.to_dict(),
                }
                for t in self.text
            ],
            "moderation": [
                {
                    "name": m.name,
                    "parent_name": m.parent_name,
                    "taxonomy_level": m.taxonomy_level,
                    "confidence": round(m.confidence, 2),
                }
                for m in self.moderation
                if m.confidence >= moderation_min_confidence
            ],
            "flagged": (
                self.is_flagged(moderation_min_confidence) if moderation_min_confidence else bool(self.moderation)
            ),
            "moderation_decision": (
                {
                    "decision": self.moderation_decision.decision,
                    "user_id": self.moderation_decision.user_id,
                    "decided_at": self.moderation_decision.decided_at.isoformat(),
                }
                if self.moderation_decision
                else None
            ),
            "sensitive": [
                {
                    "category": f.category,
                    "kind": f.kind,
                    "masked": f.masked,
                    "detector": f.detector,
                    "score": round(f.score, 2) if f.score is not None else None,
                    "boxes": [box.to_dict() for box in f.boxes],
                }
                for f in self.sensitive
            ],
            "properties": None if self.properties is None else {
                "source": self.properties.source,
                "quality": {"brightness": round(self.properties.brightness, 2),
                            "sharpness": round(self.properties.sharpness, 2),
                            "contrast": round(self.properties.contrast, 2)},
                "quality_flags": list(self.quality_flags),
                "dominant_colors": [
                    {"hex": c.hex_code, "css_color": c.css_color, "simplified_color": c.simplified_color,
                     "pixel_percent": round(c.pixel_percent, 2), "red": c.red, "green": c.green, "blue": c.blue}
                    for c in self.properties.dominant_colors
                ],
            },
            "phash": None if self.phash is None else f"{self.phash & (2**64 - 1):016x}",
            "faces": [
                {
                    "box": f.box.to_dict(),
                    "confidence": round(f.confidence, 2),
                    "attributes": f.attributes,
                }
                for f in self.faces
            ],
            "sightings": [
                {
                    "source": s.source,
                    "name": s.name,
                    "seen_at": s.seen_at.isoformat(),
                    "channel_id": s.channel_id,
                    "channel_name": s.channel_name,
                    "user_id": s.user_id,
                    "file_id": s.file_id,
                    "message_ts": s.message_ts,
                    "permalink": s.permalink,
                    "deleted": s.deleted,
                }
                for s in self.sightings
            ],
        }


@dataclass(frozen=True)
class SearchHit:
    image: ImageRecord
    score: float
    sighting: SightingRecord | None  # the newest sighting the caller may see
    snippet: str | None = None  # the matched text, when text matched


@dataclass(frozen=True)
class SearchPage:
    query: str
    hits: tuple[SearchHit, ...]
    page: int
    per_page: int
    total: int
    # True when matches were counted only up to ``total``: there are more ("10,000+").
    total_is_estimate: bool = False
    # Images a ``like:`` or ``dupes:`` names that the caller cannot see: in another channel, not
    # analysed, or not there at all (one answer for each, so it tells nothing of other channels).
    unseen: tuple[int, ...] = ()

    @property
    def has_more(self) -> bool:
        return self.page * self.per_page < self.total or self.total_is_estimate

    @property
    def total_text(self) -> str:
        """``"12"``, or ``"1,000+"`` when matches were counted only that far."""
        return f"{self.total:,}+" if self.total_is_estimate else f"{self.total:,}"


@dataclass(frozen=True)
class LabelCount:
    name: str
    images: int


@dataclass(frozen=True)
class ReportTotals:
    """Counts over every matching image, not only the ones a report lists."""

    images: int
    analysed: int
    failed: int
    with_text: int
    flagged: int
    #: Images showing people and the people in them; ``None`` when not counted over every match.
    with_people: int | None = None
    people: int | None = None


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows; rendered to Markdown, CSV or JSON by ``bot.core.report``."""

    title: str
    query: str
    generated_at: datetime
    label_min_confidence: float
    moderation_min_confidence: float
    images: tuple[ImageRecord, ...]  # done and failed images matching the query
    top_labels: tuple[LabelCount, ...]
    note: str | None = None  # e.g. when the images were capped: "Showing the newest 10,000 of 12,345 …"
    totals: ReportTotals | None = None  # None: count the listed images
    # Near-duplicate groups among the listed images (two or more ids each), judged as ``dupes:``
    # judges them, by hash and embedding: found with the data (``db.search.report_data``).
    duplicate_groups: tuple[tuple[int, ...], ...] = ()

    @property
    def counts(self) -> ReportTotals:
        """The totals, or when there are none, the same counts over the listed images."""
        if self.totals is not None:
            return self.totals  # people left None by the kept per-channel counts, which do not count them
        return ReportTotals(images=len(self.images), analysed=len(self.analysed), failed=len(self.failed),
                            with_text=len(self.with_text), flagged=len(self.flagged),
                            with_people=len(self.with_people), people=sum(i.people for i in self.with_people))

    @functools.cached_property
    def analysed(self) -> tuple[ImageRecord, ...]:
        return tuple(i for i in self.images if i.status == "done")

    @functools.cached_property
    def failed(self) -> tuple[ImageRecord, ...]:
        return tuple(i for i in self.images if i.status == "failed")

    @functools.cached_property
    def with_text(self) -> tuple[ImageRecord, ...]:
        return tuple(i for i in self.analysed if i.lines)

    @functools.cached_property
    def with_people(self) -> tuple[ImageRecord, ...]:
        return tuple(i for i in self.analysed if i.people)

    @functools.cached_property
    def flagged(self) -> tuple[ImageRecord, ...]:
        return tuple(i for i in self.analysed if i.is_flagged(self.moderation_min_confidence))
