"""The schema: images and where they were seen, and what analysers found in them.

An ``Image`` is one set of bytes (unique SHA-256); each time it is posted or
found again is a ``Sighting``. Results hang off the image, so a repost costs no
new analysis. ``LabelTerm`` flattens each label with its parents and aliases
into lower-case terms, which is what makes ``label:animal`` an index lookup.
``SearchDocument`` holds the words of labels and text for full-text search
(an FTS5 table on SQLite, a tsvector index on PostgreSQL, both made by migrations).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, UTCDateTime

IMAGE_STATUSES = ("pending", "done", "failed")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        Index("ix_images_status_updated_at", "status", "updated_at"),
        # Recency order for search and reports without sorting every match; with the columns a
        # report totals, so the totals over a whole collection are read from the index alone.
        Index("ix_images_status_last_seen_at_totals", "status", "last_seen_at", "text_line_count",
              "max_moderation_confidence"),
        Index("ix_images_max_moderation_confidence", "max_moderation_confidence"),
        Index("ix_images_person_count", "person_count"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    byte_size: Mapped[int] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    mime_type: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    storage_key: Mapped[str | None] = mapped_column(String(512))
    storage_uri: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The image row is also the job: a worker owns it while the lease holds (crash-safe claims).
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider: Mapped[str | None] = mapped_column(String(32))
    label_count: Mapped[int] = mapped_column(Integer, default=0)
    text_line_count: Mapped[int] = mapped_column(Integer, default=0)
    face_count: Mapped[int] = mapped_column(Integer, default=0)
    # People in the image (the Person label's boxes): what ``people>3`` and reports count.
    person_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_moderation_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    analyzed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When it was last posted: the newest live sighting's seen_at (NULL once every sighting is deleted).
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    sightings: Mapped[list[Sighting]] = relationship(back_populates="image", cascade="all, delete-orphan")
    labels: Mapped[list[Label]] = relationship(cascade="all, delete-orphan", order_by="Label.confidence.desc()")
    text_detections: Mapped[list[TextDetection]] = relationship(
        cascade="all, delete-orphan", order_by="TextDetection.detection_id"
    )
    moderation_labels: Mapped[list[ModerationLabel]] = relationship(
        cascade="all, delete-orphan", order_by="ModerationLabel.confidence.desc()"
    )
    faces: Mapped[list[Face]] = relationship(cascade="all, delete-orphan")
    runs: Mapped[list[AnalysisRun]] = relationship(cascade="all, delete-orphan", order_by="AnalysisRun.id")
    sensitive_findings: Mapped[list[SensitiveFinding]] = relationship(
        cascade="all, delete-orphan", order_by="SensitiveFinding.id")
    visual: Mapped[ImageVisual | None] = relationship(cascade="all, delete-orphan")
    embedding: Mapped[ImageEmbedding | None] = relationship(cascade="all, delete-orphan")
    colors: Mapped[list[ImageColor]] = relationship(cascade="all, delete-orphan", order_by="ImageColor.rank")


class Sighting(Base):
    """One appearance of an image: a file path, a Slack message, an S3 object."""

    __tablename__ = "sightings"
    __table_args__ = (
        UniqueConstraint("image_id", "source_key"),
        # The image id last: in:, from: and date searches are read from the index alone.
        Index("ix_sightings_channel_id_seen_at_image_id", "channel_id", "seen_at", "image_id"),
        Index("ix_sightings_user_id_image_id", "user_id", "image_id"),
        Index("ix_sightings_file_id", "file_id"),
        Index("ix_sightings_seen_at_image_id", "seen_at", "image_id"),
        # Live posts by channel, image id included: which images a channel holds, from the index alone.
        Index("ix_sightings_live_channel_id_image_id", "channel_id", "image_id",
              sqlite_where=text("deleted_at IS NULL"), postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    source_kind: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(String(512))
    name: Mapped[str] = mapped_column(String(1024))
    team_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    channel_name: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(32))
    user_name: Mapped[str | None] = mapped_column(String(255))
    file_id: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    permalink: Mapped[str | None] = mapped_column(String(1024))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    image: Mapped[Image] = relationship(back_populates="sightings")


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_name_confidence", "name", "confidence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    confidence: Mapped[float] = mapped_column(Float)
    parents: Mapped[list[str]] = mapped_column(JSON, default=list)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    instances: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class LabelTerm(Base):
    """A label, one of its parents or one of its aliases, lower-cased, with the label's confidence."""

    __tablename__ = "label_terms"
    # The image id is in the index so label lookups never read the table.
    __table_args__ = (Index("ix_label_terms_term_confidence_image_id", "term", "confidence", "image_id"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(255), primary_key=True)
    confidence: Mapped[float] = mapped_column(Float)


class TextDetection(Base):
    __tablename__ = "text_detections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    detection_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    parent_id: Mapped[int | None] = mapped_column(Integer)
    box: Mapped[dict[str, float]] = mapped_column(JSON)
    polygon: Mapped[list[list[float]]] = mapped_column(JSON, default=list)


class ModerationLabel(Base):
    __tablename__ = "moderation_labels"
    __table_args__ = (Index("ix_moderation_labels_name_confidence", "name", "confidence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    parent_name: Mapped[str | None] = mapped_column(String(255))
    taxonomy_level: Mapped[int] = mapped_column(Integer, default=1)
    confidence: Mapped[float] = mapped_column(Float)


class Face(Base):
    __tablename__ = "faces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    box: Mapped[dict[str, float]] = mapped_column(JSON)
    landmarks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    embedding: Mapped[list[float] | None] = mapped_column(JSON)


class SensitiveFinding(Base):
    """A secret or piece of personal data read in an image: its kind and mask, never its value."""

    __tablename__ = "sensitive_findings"
    # The image id last: has:secret, secret:aws and pii:card are read from the index alone.
    __table_args__ = (Index("ix_sensitive_findings_category_kind_image_id", "category", "kind", "image_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(16))  # secret | pii
    kind: Mapped[str] = mapped_column(String(64))
    masked: Mapped[str] = mapped_column(String(255))
    detector: Mapped[str] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    line_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    boxes: Mapped[list[dict[str, float]]] = mapped_column(JSON, default=list)
    # [line id, first character, end character] in the stored (masked) line; NULL from before 0013.
    spans: Mapped[list[list[int]] | None] = mapped_column(JSON)


class ImageVisual(Base):
    """How an image looks: its perceptual hash and quality scores (0-100), for every image and engine."""

    __tablename__ = "image_visuals"
    __table_args__ = (
        # Rows in the order they were written: the near-duplicate index loads what is new since it last looked.
        Index("ix_image_visuals_seq", "seq"),
        # quality:blurry (sharpness and contrast) and quality:dark read an index alone.
        Index("ix_image_visuals_sharpness_contrast_image_id", "sharpness", "contrast", "image_id"),
        Index("ix_image_visuals_brightness_image_id", "brightness", "image_id"),
    )

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    phash: Mapped[int | None] = mapped_column(BigInteger)  # 64 bits, stored signed
    brightness: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    contrast: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))  # pixels | rekognition


class ImageEmbedding(Base):
    """An image's embedding (256 float16, unit length) for "more like this" and near-duplicates."""

    __tablename__ = "image_embeddings"
    __table_args__ = (Index("ix_image_embeddings_seq", "seq"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(String(128))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class ImageColor(Base):
    """One of an image's dominant colours (Rekognition's DominantColors shape), largest first."""

    __tablename__ = "image_colors"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    red: Mapped[int] = mapped_column(Integer)
    green: Mapped[int] = mapped_column(Integer)
    blue: Mapped[int] = mapped_column(Integer)
    hex: Mapped[str] = mapped_column(String(7))
    css: Mapped[str] = mapped_column(String(32))
    simplified: Mapped[str] = mapped_column(String(16))
    percent: Mapped[float] = mapped_column(Float)


class ImageColorName(Base):
    """A name an image's colours go by, simplified or CSS, with the largest share of any colour so named.

    What ``color:teal>40`` reads, from one index alone. Asked of ``image_colors`` it is an OR of
    two columns, which PostgreSQL answers from two indexes and then the table's own pages (23,000
    of them for ``color:blue>50`` at 1,000,000 images)."""

    __tablename__ = "image_color_names"
    __table_args__ = (Index("ix_image_color_names_name_percent_image_id", "name", "percent", "image_id"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    percent: Mapped[float] = mapped_column(Float)


class AnalysisRun(Base):
    """One attempt at analysing an image: who, which models, how long, what came back."""

    __tablename__ = "analysis_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    model_versions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seconds: Mapped[float] = mapped_column(Float)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SearchDocument(Base):
    """The words of an image's labels (with parents and aliases) and of its text, for full-text search."""

    __tablename__ = "search_documents"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    labels: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")


class ChannelStat(Base):
    """Images with a live post in a channel, by status, text and moderation floor (see db/channel_stats.py)."""

    __tablename__ = "channel_stats"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    has_text: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    moderation_floor: Mapped[int] = mapped_column(Integer, primary_key=True)
    images: Mapped[int] = mapped_column(Integer, default=0)


class ChannelLabelStat(Base):
    """Images with a live post in a channel, by label name and the floor of its confidence."""

    __tablename__ = "channel_label_stats"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    confidence_floor: Mapped[int] = mapped_column(Integer, primary_key=True)
    images: Mapped[int] = mapped_column(Integer, default=0)


class ChannelSetting(Base):
    """How imgbot behaves in one Slack channel (``/imgbot mode …``); channels never set use the default."""

    __tablename__ = "channel_settings"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    set_by: Mapped[str | None] = mapped_column(String(32))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ModerationDecision(Base):
    """A moderator's verdict on a flagged image (the latest one counts)."""

    __tablename__ = "moderation_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    decision: Mapped[str] = mapped_column(String(16))  # confirmed | dismissed
    user_id: Mapped[str] = mapped_column(String(32))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlackMessage(Base):
    """A Slack message whose images imgbot handles: the claim that makes its reply happen once."""

    __tablename__ = "slack_messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "message_ts"),
        Index("ix_slack_messages_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(32))
    file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="received")  # received | replied
    reply_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The claim is also a job: whoever holds the lease works on it (see db/slack_queries.py).
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set just before the reply is posted: a later attempt looks for it in the thread before posting again.
    reply_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SlackInbox(Base):
    """An Events API delivery acknowledged to Slack but not yet handled by a listener."""

    __tablename__ = "slack_inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class S3Watermark(Base):
    """How far ``imgbot watch s3://bucket/prefix`` has listed: keys up to ``last_key`` are handled."""

    __tablename__ = "s3_watermarks"
    __table_args__ = (UniqueConstraint("bucket", "prefix"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(1024))
    last_key: Mapped[str] = mapped_column(String(1024))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
