"""The SQL of the work queue and of ``imgbot watch``: one image's job, S3 watermarks, sightings already made.

Values are always bound parameters; works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.core.types import Source
from db import models
from db.queries import PendingImage


def pending_image(session: Session, image_id: int) -> PendingImage | None:
    """The image as a job when it still needs work (pending, or failed for a reason that may pass), else None."""
    row = session.execute(
        select(models.Image.id, models.Image.sha256, models.Image.storage_key, models.Image.status,
               models.Image.failure_retryable).where(models.Image.id == image_id)
    ).one_or_none()
    if row is None or row.status == "done" or (row.status == "failed" and not row.failure_retryable):
        return None
    paths = session.execute(
        select(models.Sighting.name).where(models.Sighting.image_id == image_id, models.Sighting.source_kind == "file")
    ).scalars().all()
    return PendingImage(row.id, row.sha256, row.storage_key, tuple(paths))


def seen_sources(session: Session, sources: Sequence[Source]) -> set[str]:
    """The keys of those ``sources`` that already have a sighting (so their objects need no download)."""
    keys = [source.key for source in sources]
    seen: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        seen.update(session.execute(
            select(models.Sighting.source_key).where(models.Sighting.source_key.in_(chunk))
        ).scalars())
    return seen


def get_watermark(session: Session, bucket: str, prefix: str) -> str | None:
    """The last key handled under ``s3://bucket/prefix``, or None when it was never watched."""
    return session.execute(
        select(models.S3Watermark.last_key).where(models.S3Watermark.bucket == bucket,
                                                 models.S3Watermark.prefix == prefix)
    ).scalar_one_or_none()


def set_watermark(session: Session, bucket: str, prefix: str, last_key: str, now: datetime) -> None:
    """Move the watermark forward to ``last_key``, never back (two watchers cannot undo each other).

    Keys are compared in Python, by code point, which is S3's listing order (UTF-8 bytes);
    a database collation might order them differently.
    """
    values = {"bucket": bucket, "prefix": prefix, "last_key": last_key, "updated_at": now}
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    inserted = session.execute(module.insert(models.S3Watermark).values(**values).on_conflict_do_nothing(
        index_elements=["bucket", "prefix"]).returning(models.S3Watermark.id)).scalar_one_or_none()
    if inserted is not None:
        return
    current = get_watermark(session, bucket, prefix)
    if current is not None and current >= last_key:
        return
    session.execute(
        update(models.S3Watermark)
        .where(models.S3Watermark.bucket == bucket, models.S3Watermark.prefix == prefix,
               models.S3Watermark.last_key == current)
        .values(last_key=last_key, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def reset_watermark(session: Session, bucket: str, prefix: str) -> None:
    """Forget how far ``s3://bucket/prefix`` was listed (``imgbot watch --from-start``)."""
    session.execute(delete(models.S3Watermark).where(models.S3Watermark.bucket == bucket,
                                                    models.S3Watermark.prefix == prefix))
