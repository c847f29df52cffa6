"""Every statement the core needs to write and read images, in one place.

The image row doubles as the analysis job: ``claim_image`` takes a lease on it
with one conditional UPDATE, so two threads or two processes never analyse the
same image at once, and a crashed owner's lease can be taken over. All SQL is
built with SQLAlchemy expressions: values are always bound parameters.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import ColumnElement

from bot.core.records import ImageRecord, ModerationDecisionRecord, SightingRecord
from bot.core.types import (
    Analysis,
    BoundingBox,
    Face,
    FaceLandmark,
    Label,
    LabelInstance,
    ModerationLabel,
    PreparedImage,
    Source,
    StoredObject,
    TextDetection,
    people_count,
)
from db import channel_stats, findings, group_commit, models, visuals

LEASE = timedelta(minutes=10)

# Plain tables for the statements on the ingest path: no ORM bookkeeping per image.
IMAGES: Table = models.Image.__table__  # type: ignore[assignment]
SIGHTINGS: Table = models.Sighting.__table__  # type: ignore[assignment]
RUNS: Table = models.AnalysisRun.__table__  # type: ignore[assignment]
_RESULT_TABLES: tuple[Table, ...] = tuple(
    model.__table__ for model in (models.Label, models.LabelTerm, models.TextDetection,  # type: ignore[misc]
                                  models.ModerationLabel, models.Face, models.SearchDocument,
                                  models.SensitiveFinding, models.ImageVisual, models.ImageColor, models.ImageColorName,
                                  models.ImageEmbedding)
)


def lease_owner() -> str:
    """Who holds a lease: host and process, so a dead process's leases can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process on this host that no longer runs."""
    if not owner or ":" not in owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _insert(session: Session, table: object):  # type: ignore[no-untyped-def]
    """INSERT … ON CONFLICT DO NOTHING for the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)  # type: ignore[arg-type]
    return sqlite.insert(table)  # type: ignore[arg-type]


# -- writing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageState:
    image_id: int
    status: str
    sighting_id: int | None
    storage_key: str | None


def image_state(session: Session, sha256: str) -> ImageState | None:
    row = session.execute(
        select(IMAGES.c.id, IMAGES.c.status, IMAGES.c.storage_key).where(IMAGES.c.sha256 == sha256)
    ).first()
    return ImageState(row.id, row.status, None, row.storage_key) if row else None


def record_image(
    session: Session, *, sha256: str, byte_size: int, now: datetime, prepared: PreparedImage | None = None
) -> int:
    """Create the image row (pending) if this hash is new; fill in metadata. Returns its id."""
    values = _new_image(sha256, byte_size, now)
    session.execute(_insert(session, models.Image).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
    image_id = session.execute(select(models.Image.id).where(models.Image.sha256 == sha256)).scalar_one()
    if prepared is not None:
        session.execute(
            update(IMAGES)
            .where(IMAGES.c.id == image_id)
            .values(format=prepared.format, mime_type=prepared.mime_type, width=prepared.width,
                    height=prepared.height, updated_at=now)
        )
    return int(image_id)


@dataclass(frozen=True)
class Arrival:
    """What recording a copy of an image found: its row, its status, this sighting, and whether this
    worker now holds the image's job (``claimed``)."""

    image_id: int
    status: str
    sighting_id: int
    claimed: bool
    created: bool  # by this call: the image has no results yet


def record_arrival(
    session: Session, *, sha256: str, byte_size: int, source: Source, owner: str, now: datetime,
    prepared: PreparedImage | None = None, stored: StoredObject | None = None,
) -> Arrival:
    """Record an image seen at ``source`` (with where its original is stored) and take its job if it needs one.

    Every new image goes through here on the path that sets a batch's pace, and on SQLite each
    statement is time the database's single writer is held. So a new image (the usual case) is
    ONE insert that also sets its metadata, storage, lease and last-seen time, returning its row,
    and one for its sighting: 2 statements where reading, inserting, updating and claiming took 9.
    An image already known (a repost, a retry) takes the longer path of ``record_sighting`` and
    ``claim_image``. Without ``prepared`` (the file could not be read) no job is taken."""
    seen_at = _seen_at(source, now)
    values = {**_new_image(sha256, byte_size, now), "last_seen_at": seen_at}
    metadata: dict[str, Any] = {}
    if prepared is not None:
        metadata = {"format": prepared.format, "mime_type": prepared.mime_type, "width": prepared.width,
                    "height": prepared.height}
        if stored is not None:
            metadata.update(storage_key=stored.key, storage_uri=stored.uri)
        values.update(metadata, lease_owner=owner, lease_expires_at=now + LEASE, attempts=1)
    statement = _insert(session, IMAGES).values(**values)  # the table, not the class: no ORM bulk-insert path
    # A no-op update rather than DO NOTHING, so the row comes back (and is locked) when it exists.
    statement = statement.on_conflict_do_update(index_elements=["sha256"], set_={"sha256": statement.excluded.sha256})
    row = session.execute(statement.returning(IMAGES.c.id, IMAGES.c.status, IMAGES.c.created_at)).one()
    image_id = int(row.id)
    if row.created_at == now:  # this statement inserted it (``now`` is this call's own microsecond)
        sighting_id = session.execute(
            insert(SIGHTINGS).values(**_sighting_values(image_id, source, seen_at)).returning(SIGHTINGS.c.id)
        ).scalar_one()
        if source.channel_id:
            channel_stats.joined(session, image_id, source.channel_id)
        return Arrival(image_id, str(row.status), int(sighting_id), claimed=prepared is not None, created=True)

    sighting_id = record_sighting(session, image_id, source, now)
    claimed = False
    if row.status != "done" and prepared is not None:
        session.execute(update(IMAGES).where(IMAGES.c.id == image_id).values(**metadata, updated_at=now))
        claimed = claim_image(session, image_id, owner, now)
    return Arrival(image_id, str(row.status), sighting_id, claimed, created=False)


def _new_image(sha256: str, byte_size: int, now: datetime) -> dict[str, Any]:
    """A new image row: pending, no results yet."""
    return {
        "sha256": sha256, "byte_size": byte_size, "status": "pending", "failure_retryable": False,
        "attempts": 0, "label_count": 0, "text_line_count": 0, "face_count": 0, "person_count": 0,
        "max_moderation_confidence": 0.0, "created_at": now, "updated_at": now,
    }


def _sighting_values(image_id: int, source: Source, seen_at: datetime) -> dict[str, Any]:
    return {
        "image_id": image_id, "source_kind": source.kind, "source_key": source.key, "name": source.name[:1024],
        "team_id": source.team_id, "channel_id": source.channel_id, "channel_name": source.channel_name,
        "user_id": source.user_id, "user_name": source.user_name, "file_id": source.file_id,
        "message_ts": source.message_ts, "thread_ts": source.thread_ts, "permalink": source.permalink,
        "seen_at": seen_at,
    }


def record_sighting(session: Session, image_id: int, source: Source, now: datetime) -> int:
    """Add where the image was seen (once per source); a re-delivery revives a deleted sighting."""
    values = _sighting_values(image_id, source, _seen_at(source, now))
    was_member = True
    if source.channel_id:
        channel_stats.lock_image(session, image_id)
        was_member = channel_stats.is_member(session, image_id, source.channel_id)
    session.execute(
        _insert(session, models.Sighting).values(**values).on_conflict_do_nothing(
            index_elements=["image_id", "source_key"]
        )
    )
    sightings = SIGHTINGS.c
    sighting = session.execute(
        select(sightings.id, sightings.permalink, sightings.deleted_at, sightings.seen_at)
        .where(sightings.image_id == image_id, sightings.source_key == source.key)
    ).one()
    if source.permalink and not sighting.permalink:
        session.execute(update(SIGHTINGS).where(sightings.id == sighting.id).values(permalink=source.permalink))
    if source.channel_id and not was_member and sighting.deleted_at is None:
        channel_stats.joined(session, image_id, source.channel_id)
    if sighting.deleted_at is None:
        # Only ever moves forward, so two workers recording the same image cannot undo each other.
        session.execute(
            update(IMAGES)
            .where(IMAGES.c.id == image_id,
                   or_(IMAGES.c.last_seen_at.is_(None), IMAGES.c.last_seen_at < sighting.seen_at))
            .values(last_seen_at=sighting.seen_at)
        )
    return int(sighting.id)


def _seen_at(source: Source, now: datetime) -> datetime:
    """A Slack message's own time when known (its ts is epoch seconds), else now."""
    if source.message_ts:
        try:

            return datetime.fromtimestamp(float(source.message_ts), tz=UTC)
        except (ValueError, OverflowError):
            pass
    return now


def claim_image(session: Session, image_id: int, owner: str, now: datetime, lease: timedelta = LEASE) -> bool:
    """Take the job lease on a not-done image; False if another live worker holds it."""
    images = IMAGES.c
    current = session.execute(
        select(images.status, images.lease_owner, images.lease_expires_at).where(images.id == image_id)
    ).one()
    if current.status == "done":
        return False
    free = or_(images.lease_expires_at.is_(None), images.lease_expires_at < now, images.lease_owner == owner)
    if _owner_is_dead(current.lease_owner):
        free = or_(free, images.lease_owner == current.lease_owner)
    result = session.execute(
        update(IMAGES)
        .where(images.id == image_id, images.status != "done", free)
        .values(lease_owner=owner, lease_expires_at=now + lease, attempts=images.attempts + 1, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_stored(session: Session, image_id: int, key: str, uri: str, now: datetime) -> None:
    session.execute(update(IMAGES).where(IMAGES.c.id == image_id).values(storage_key=key, storage_uri=uri,
                                                                         updated_at=now))


def mark_failed(
    session: Session, image_id: int, reason: str, *, retryable: bool, now: datetime,
    provider: str | None = None, seconds: float = 0.0,
) -> None:
    with channel_stats.restate(session, image_id):
        session.execute(
            update(IMAGES)
            .where(IMAGES.c.id == image_id)
            .values(status="failed", failure_reason=reason, failure_retryable=retryable, lease_owner=None,
                    lease_expires_at=None, updated_at=now)
        )
    if provider:
        session.execute(insert(RUNS), [{"image_id": image_id, "provider": provider, "model_versions": {},
                                        "outcome": "failed", "error": reason, "started_at": now,
                                        "seconds": seconds, "raw": {}}])


def save_analysis(
    session: Session, image_id: int, analysis: Analysis, *, started_at: datetime, seconds: float,
    now: datetime, store_min_confidence: float, fresh: bool = False,
) -> None:
    """Replace the image's results with ``analysis`` and mark it done (idempotent on retry).

    Plain table statements with many rows each (no ORM objects): this runs once per image on
    the path that sets a batch's pace, and the ORM's unit of work costs more than the SQL.
    ``fresh``: the image was created by this worker's ``record_arrival`` and has no results yet."""
    with channel_stats.restate(session, image_id) as channels:
        # In no channel, nothing reads the rows back in this transaction: they may join other images'.
        _replace_results(session, image_id, analysis, started_at=started_at, seconds=seconds, now=now,
                         store_min_confidence=store_min_confidence, fresh=fresh, may_defer=not channels)


def _replace_results(
    session: Session, image_id: int, analysis: Analysis, *, started_at: datetime, seconds: float,
    now: datetime, store_min_confidence: float, fresh: bool, may_defer: bool = False,
) -> None:
    # Results are only ever written here, with ``analyzed_at``: an image never analysed has none to
    # replace, and skipping ten DELETEs matters on the path that sets a batch's pace.
    analysed_before = not fresh and session.execute(
        select(IMAGES.c.analyzed_at).where(IMAGES.c.id == image_id)).scalar_one_or_none() is not None
    if analysed_before:
        for table in _RESULT_TABLES:
            session.execute(delete(table).where(table.c.image_id == image_id))

    labels = [label for label in analysis.labels if label.confidence >= store_min_confidence]
    moderation = [m for m in analysis.moderation if m.confidence >= store_min_confidence]
    faces = list(analysis.faces) if analysis.faces_requested else []

    terms: dict[str, float] = {}
    for label in labels:
        for term in (label.name, *label.parents, *label.aliases):
            key = term.strip().lower()[:255]
            if key:
                terms[key] = max(terms.get(key, 0.0), label.confidence)
    lines = [t.text for t in analysis.text if t.kind == "LINE"]
    rows: list[tuple[Table, list[dict[str, Any]]]] = [
        (models.Label.__table__, [  # type: ignore[list-item]
            {"image_id": image_id, "name": label.name, "confidence": label.confidence,
             "parents": list(label.parents), "aliases": list(label.aliases), "categories": list(label.categories),
             "instances": [{"box": inst.box.to_dict(), "confidence": inst.confidence} for inst in label.instances]}
            for label in labels
        ]),
        (models.LabelTerm.__table__, [  # type: ignore[list-item]
            {"image_id": image_id, "term": term, "confidence": conf} for term, conf in terms.items()
        ]),
        (models.TextDetection.__table__, [  # type: ignore[list-item]
            {"image_id": image_id, "detection_id": t.id, "kind": t.kind, "text": t.text, "confidence": t.confidence,
             "parent_id": t.parent_id, "box": t.box.to_dict(), "polygon": [list(point) for point in t.polygon]}
            for t in analysis.text
        ]),
        (models.ModerationLabel.__table__, [  # type: ignore[list-item]
            {"image_id": image_id, "name": m.name, "parent_name": m.parent_name, "taxonomy_level": m.taxonomy_level,
             "confidence": m.confidence}
            for m in moderation
        ]),
        (models.Face.__table__, [  # type: ignore[list-item]
            {"image_id": image_id, "confidence": f.confidence, "box": f.box.to_dict(),
             "landmarks": [{"type": lm.type, "x": lm.x, "y": lm.y} for lm in f.landmarks],
             "attributes": f.attributes, "embedding": list(f.embedding) if f.embedding is not None else None}
            for f in faces
        ]),
        (models.SearchDocument.__table__, [  # type: ignore[list-item]
            {"image_id": image_id, "labels": " ".join(sorted(terms)), "text": "\n".join(lines)}
        ]),
        (findings.TABLE, findings.rows(image_id, analysis.sensitive)),
        *visuals.rows(image_id, analysis.properties, analysis.phash, analysis.embedding, analysis.embedding_model),
        (RUNS, [
            {"image_id": image_id, "provider": analysis.provider, "model_versions": dict(analysis.model_versions),
             "outcome": "done", "error": None, "started_at": started_at, "seconds": seconds, "raw": analysis.raw}
        ]),
    ]
    for table, values in rows:
        if values:
            group_commit.insert_rows(session, table, values, may_defer=may_defer)
    session.execute(
        update(IMAGES)
        .where(IMAGES.c.id == image_id)
        .values(
            status="done", failure_reason=None, failure_retryable=False, lease_owner=None, lease_expires_at=None,
            provider=analysis.provider, label_count=len(labels), text_line_count=len(lines), face_count=len(faces),
            person_count=people_count(labels),
            max_moderation_confidence=max((m.confidence for m in moderation), default=0.0),
            analyzed_at=now, updated_at=now,
        )
    )


@dataclass(frozen=True)
class PendingImage:
    image_id: int
    sha256: str
    storage_key: str | None
    file_paths: tuple[str, ...]


def unfinished_images(session: Session, now: datetime, limit: int = 1000) -> list[PendingImage]:
    """Images a crash left pending (lease gone) or that failed for a reason that may pass."""
    rows = session.execute(
        select(models.Image.id, models.Image.sha256, models.Image.storage_key, models.Image.lease_owner,
               models.Image.lease_expires_at)
        .where(or_(models.Image.status == "pending",
                   (models.Image.status == "failed") & models.Image.failure_retryable.is_(True)))
        .order_by(models.Image.id)
        .limit(limit)
    ).all()
    ready = [
        row for row in rows
        if row.lease_expires_at is None or row.lease_expires_at < now or _owner_is_dead(row.lease_owner)
        or row.lease_owner == lease_owner()
    ]
    paths: dict[int, list[str]] = {}
    if ready:
        for image_id, name in session.execute(
            select(models.Sighting.image_id, models.Sighting.name).where(
                models.Sighting.image_id.in_([row.id for row in ready]), models.Sighting.source_kind == "file"
            )
        ):
            paths.setdefault(image_id, []).append(name)
    return [PendingImage(row.id, row.sha256, row.storage_key, tuple(paths.get(row.id, ()))) for row in ready]


def delete_sightings(
    session: Session, *, now: datetime, file_id: str | None = None, channel_id: str | None = None,
    message_ts: str | None = None,
) -> list[tuple[int, str | None]]:
    """Mark matching sightings deleted; return (image id, storage key) of images no live sighting uses any more."""
    conditions: list[ColumnElement[bool]] = [models.Sighting.deleted_at.is_(None)]
    if file_id is not None:
        conditions.append(models.Sighting.file_id == file_id)
    if channel_id is not None:
        conditions.append(models.Sighting.channel_id == channel_id)
    if message_ts is not None:
        conditions.append(models.Sighting.message_ts == message_ts)
    if len(conditions) == 1:
        raise ValueError("delete_sightings needs file_id or channel_id and message_ts")
    pairs = set(session.execute(select(models.Sighting.image_id, models.Sighting.channel_id).where(*conditions)))
    image_ids = sorted({image_id for image_id, _ in pairs})
    if not image_ids:
        return []
    for image_id in image_ids:  # in id order: two deletions never wait on each other in a circle
        channel_stats.lock_image(session, image_id)
    session.execute(update(models.Sighting).where(*conditions).values(deleted_at=now))
    for image_id, channel in sorted(pairs, key=lambda pair: (pair[0], pair[1] or "")):
        if channel and not channel_stats.is_member(session, image_id, channel):
            channel_stats.left(session, image_id, channel)
    _refresh_last_seen(session, image_ids)
    live = set(session.execute(
        select(models.Sighting.image_id).where(
            models.Sighting.image_id.in_(image_ids), models.Sighting.deleted_at.is_(None)
        )
    ).scalars())
    orphaned = []
    for image_id in image_ids:
        if image_id in live:
            continue
        key = session.execute(select(models.Image.storage_key).where(models.Image.id == image_id)).scalar_one()
        session.execute(
            update(models.Image).where(models.Image.id == image_id).values(storage_key=None, updated_at=now)
        )
        orphaned.append((image_id, key))
    # Another image row may share the key only if it has the same bytes, which the unique hash forbids.
    return orphaned


def _refresh_last_seen(session: Session, image_ids: list[int]) -> None:
    """Set ``last_seen_at`` to the newest live sighting again (NULL when none is left)."""
    if session.get_bind().dialect.name == "postgresql":
        # Lock the rows first: the UPDATE below then reads sightings committed up to now, and a
        # repost recorded meanwhile waits and moves the value forward (see ``record_sighting``).
        session.execute(
            select(models.Image.id).where(models.Image.id.in_(image_ids)).with_for_update(key_share=True)
        )
    newest = (
        select(func.max(models.Sighting.seen_at))
        .where(models.Sighting.image_id == models.Image.id, models.Sighting.deleted_at.is_(None))
        .scalar_subquery()
    )
    session.execute(
        update(models.Image).where(models.Image.id.in_(image_ids)).values(last_seen_at=newest)
        .execution_options(synchronize_session=False)
    )


def flagged_awaiting_review(session: Session, channels: Sequence[str], moderation_min_confidence: float,
                            cap: int = 1000) -> int:
    """Flagged images with a live post in ``channels`` that no moderator has decided on (counted up to ``cap``)."""
    if not channels:
        return 0
    sightings = SIGHTINGS.c
    posted = select(sightings.image_id).where(sightings.channel_id.in_(list(channels)), sightings.deleted_at.is_(None))
    decided = select(models.ModerationDecision.image_id)
    flagged = (
        select(IMAGES.c.id)
        .where(IMAGES.c.status == "done", IMAGES.c.max_moderation_confidence >= moderation_min_confidence,
               IMAGES.c.id.in_(posted), IMAGES.c.id.not_in(decided))
        .limit(cap)
        .subquery()
    )
    return int(session.execute(select(func.count()).select_from(flagged)).scalar_one())


def record_moderation_decision(session: Session, image_id: int, decision: str, user_id: str, now: datetime) -> None:
    if decision not in ("confirmed", "dismissed"):
        raise ValueError(f"unknown moderation decision {decision!r}")
    session.add(models.ModerationDecision(image_id=image_id, decision=decision, user_id=user_id, decided_at=now))


# -- reading -----------------------------------------------------------------------------


def find_image(session: Session, id_or_sha: str) -> ImageRecord | None:
    """By numeric id, full SHA-256, or a unique SHA-256 prefix of at least 8 hex digits."""
    text = id_or_sha.strip().lower()
    image_id: int | None = None
    if text.isdigit() and len(text) < 16:
        image_id = int(text)
    elif len(text) >= 8 and all(c in "0123456789abcdef" for c in text):
        matches = session.execute(
            select(models.Image.id).where(models.Image.sha256.startswith(text, autoescape=True)).limit(2)
        ).scalars().all()
        image_id = matches[0] if len(matches) == 1 else None
    if image_id is None:
        return None
    records = load_image_records(session, [image_id])
    return records[0] if records else None


def load_image_records(session: Session, image_ids: Sequence[int]) -> list[ImageRecord]:
    """Full records for ``image_ids``, in the same order (missing ids are skipped)."""
    if not image_ids:
        return []
    images = session.execute(
        select(models.Image)
        .where(models.Image.id.in_(list(image_ids)))
        .options(
            selectinload(models.Image.sightings), selectinload(models.Image.labels),
            selectinload(models.Image.text_detections), selectinload(models.Image.moderation_labels),
            selectinload(models.Image.faces), selectinload(models.Image.sensitive_findings),
            selectinload(models.Image.visual), selectinload(models.Image.colors),
        )
    ).scalars().all()
    by_id = {image.id: image for image in images}
    versions = _latest_model_versions(session, list(by_id))
    decisions = _latest_decisions(session, list(by_id))
    return [
        _to_record(by_id[image_id], versions.get(image_id, {}), decisions.get(image_id))
        for image_id in image_ids if image_id in by_id
    ]


def _latest_model_versions(session: Session, image_ids: list[int]) -> dict[int, dict[str, str]]:
    if not image_ids:
        return {}
    latest = (
        select(func.max(models.AnalysisRun.id))
        .where(models.AnalysisRun.image_id.in_(image_ids), models.AnalysisRun.outcome == "done")
        .group_by(models.AnalysisRun.image_id)
    )
    rows = session.execute(
        select(models.AnalysisRun.image_id, models.AnalysisRun.model_versions).where(models.AnalysisRun.id.in_(latest))
    )
    return {row.image_id: dict(row.model_versions or {}) for row in rows}


def _latest_decisions(session: Session, image_ids: list[int]) -> dict[int, ModerationDecisionRecord]:
    if not image_ids:
        return {}
    latest = (
        select(func.max(models.ModerationDecision.id))
        .where(models.ModerationDecision.image_id.in_(image_ids))
        .group_by(models.ModerationDecision.image_id)
    )
    rows = session.execute(select(models.ModerationDecision).where(models.ModerationDecision.id.in_(latest))).scalars()
    return {row.image_id: ModerationDecisionRecord(row.decision, row.user_id, row.decided_at) for row in rows}


def _to_record(
    image: models.Image, versions: dict[str, str], decision: ModerationDecisionRecord | None
) -> ImageRecord:
    return ImageRecord(
        id=image.id, sha256=image.sha256, status=image.status, byte_size=image.byte_size, format=image.format,
        width=image.width, height=image.height, storage_key=image.storage_key, storage_uri=image.storage_uri,
        created_at=image.created_at, analyzed_at=image.analyzed_at, failure_reason=image.failure_reason,
        provider=image.provider, model_versions=versions,
        labels=tuple(
            Label(
                name=row.name, confidence=row.confidence, parents=tuple(row.parents or ()),
                aliases=tuple(row.aliases or ()), categories=tuple(row.categories or ()),
                instances=tuple(
                    LabelInstance(BoundingBox.from_dict(inst["box"]), float(inst["confidence"]))
                    for inst in (row.instances or ())
                ),
            )
            for row in sorted(image.labels, key=lambda r: -r.confidence)
        ),
        text=tuple(
            TextDetection(
                id=row.detection_id, kind=row.kind, text=row.text, confidence=row.confidence,  # type: ignore[arg-type]
                box=BoundingBox.from_dict(row.box), parent_id=row.parent_id,
                polygon=tuple((float(p[0]), float(p[1])) for p in (row.polygon or ())),
            )
            for row in sorted(image.text_detections, key=lambda r: r.detection_id)
        ),
        moderation=tuple(
            ModerationLabel(name=row.name, confidence=row.confidence, parent_name=row.parent_name,
                            taxonomy_level=row.taxonomy_level)
            for row in sorted(image.moderation_labels, key=lambda r: -r.confidence)
        ),
        faces=tuple(
            Face(
                box=BoundingBox.from_dict(row.box), confidence=row.confidence,
                landmarks=tuple(FaceLandmark(lm["type"], lm["x"], lm["y"]) for lm in (row.landmarks or ())),
                attributes=dict(row.attributes or {}),
                embedding=tuple(row.embedding) if row.embedding is not None else None,
            )
            for row in image.faces
        ),
        sightings=tuple(_to_sighting(s) for s in sorted(image.sightings, key=lambda s: s.seen_at)),
        moderation_decision=decision,
        sensitive=tuple(findings.to_finding(row) for row in image.sensitive_findings),
        properties=visuals.to_properties(image.visual, image.colors),
        phash=image.visual.phash if image.visual is not None else None,
        person_count=image.person_count,
    )


def _to_sighting(row: models.Sighting) -> SightingRecord:
    return SightingRecord(
        id=row.id, source_kind=row.source_kind, name=row.name, seen_at=row.seen_at, team_id=row.team_id,
        channel_id=row.channel_id, channel_name=row.channel_name, user_id=row.user_id, user_name=row.user_name,
        file_id=row.file_id, message_ts=row.message_ts, thread_ts=row.thread_ts, permalink=row.permalink,
        deleted=row.deleted_at is not None,
    )


def live_slack_sightings(session: Session, image_ids: Sequence[int], limit: int = 50) -> list[SightingRecord]:
    """The oldest live Slack posts of ``image_ids`` (where the same picture or a near-duplicate was posted)."""
    if not image_ids:
        return []
    rows = session.execute(
        select(models.Sighting).where(models.Sighting.image_id.in_(list(image_ids)),
                                      models.Sighting.source_kind == "slack", models.Sighting.deleted_at.is_(None))
        .order_by(models.Sighting.seen_at, models.Sighting.id).limit(limit)
    ).scalars().all()
    return [_to_sighting(row) for row in rows]


def image_ids_with_status(session: Session, statuses: Iterable[str]) -> list[int]:
    return list(session.execute(
        select(models.Image.id).where(models.Image.status.in_(list(statuses))).order_by(models.Image.id)
    ).scalars())
