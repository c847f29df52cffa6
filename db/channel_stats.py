"""Per-channel report totals, kept as images are posted, analysed and deleted.

A Slack user's ``/imgreport`` covers the images posted in the channels they are in. When
those channels hold most of a large collection, counting the totals and the top labels of
hundreds of thousands of images row by row takes seconds. So each channel keeps its own
counts, of the images with a live post in it:

* ``channel_stats``: images by status, with or without text, and the floor of their highest
  moderation confidence (so "flagged at 60" is a sum over floors 60–100);
* ``channel_label_stats``: images by label name and the floor of the label's confidence.

A report over channels U adds up U's rows, then takes off what images posted in several of
U's channels were counted more than once (few: read from the live-post index).

Every change goes through here, inside the transaction that makes it: a channel gains an
image when its first live post there is recorded (``joined``) and loses it when its last one
is deleted (``left``); an image whose results change (analysed, failed) is restated in every
channel it is in (``restate``). On PostgreSQL the image row is locked first, so two
transactions cannot both decide they added an image's first post to a channel.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import (
    Integer,
    Table,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ColumnElement

from db import models
from db.bulk_records import one_of

STATS: Table = models.ChannelStat.__table__  # type: ignore[assignment]
LABEL_STATS: Table = models.ChannelLabelStat.__table__  # type: ignore[assignment]
SIGHTINGS: Table = models.Sighting.__table__  # type: ignore[assignment]
IMAGES: Table = models.Image.__table__  # type: ignore[assignment]
LABELS: Table = models.Label.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Contribution:
    """What one image adds to each channel it is in."""

    status: str
    has_text: bool
    moderation_floor: int
    labels: tuple[tuple[str, int], ...]  # (name, confidence floor)


def lock_image(session: Session, image_id: int) -> None:
    """Serialise changes to one image's channel counts (PostgreSQL; SQLite writes one at a time)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(IMAGES.c.id).where(IMAGES.c.id == image_id).with_for_update())


def contribution(session: Session, image_id: int) -> Contribution | None:
    row = session.execute(
        select(IMAGES.c.status, IMAGES.c.text_line_count, IMAGES.c.max_moderation_confidence)
        .where(IMAGES.c.id == image_id)
    ).first()
    if row is None:
        return None
    labels = tuple(
        (str(name), int(confidence))
        for name, confidence in session.execute(
            select(LABELS.c.name, LABELS.c.confidence).where(LABELS.c.image_id == image_id)
        )
    )
    return Contribution(status=str(row.status), has_text=bool(row.text_line_count),
                        moderation_floor=int(row.max_moderation_confidence or 0), labels=labels)


def member_channels(session: Session, image_id: int) -> list[str]:
    """The channels where ``image_id`` has a live post."""
    return [str(c) for c in session.execute(
        select(SIGHTINGS.c.channel_id).distinct()
        .where(SIGHTINGS.c.image_id == image_id, SIGHTINGS.c.channel_id.is_not(None),
               SIGHTINGS.c.deleted_at.is_(None))
    ).scalars()]


def is_member(session: Session, image_id: int, channel_id: str) -> bool:
    return session.execute(
        select(SIGHTINGS.c.id).where(SIGHTINGS.c.image_id == image_id, SIGHTINGS.c.channel_id == channel_id,
                                     SIGHTINGS.c.deleted_at.is_(None)).limit(1)
    ).first() is not None


def apply(session: Session, channels: Collection[str], change: Contribution | None, sign: int) -> None:
    """Add (``sign`` 1) or take off (-1) one image's ``change`` in each of ``channels``."""
    if not channels or change is None:
        return
    upsert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stats = upsert(STATS).values([
        {"channel_id": c, "status": change.status, "has_text": change.has_text,
         "moderation_floor": change.moderation_floor, "images": sign} for c in channels
    ])
    session.execute(stats.on_conflict_do_update(
        index_elements=["channel_id", "status", "has_text", "moderation_floor"],
        set_={"images": STATS.c.images + stats.excluded.images},
    ))
    if change.labels:
        labels = upsert(LABEL_STATS).values([
            {"channel_id": c, "name": name, "confidence_floor": floor, "images": sign}
            for c in channels for name, floor in change.labels
        ])
        session.execute(labels.on_conflict_do_update(
            index_elements=["channel_id", "name", "confidence_floor"],
            set_={"images": LABEL_STATS.c.images + labels.excluded.images},
        ))


def joined(session: Session, image_id: int, channel_id: str) -> None:
    """``image_id`` has just got its first live post in ``channel_id``."""
    apply(session, [channel_id], contribution(session, image_id), +1)


def left(session: Session, image_id: int, channel_id: str) -> None:
    """``image_id`` has just lost its last live post in ``channel_id``."""
    apply(session, [channel_id], contribution(session, image_id), -1)


@contextmanager
def restate(session: Session, image_id: int) -> Iterator[list[str]]:
    """Around a change to an image's status or results: its old counts out, its new counts in.

    Yields the channels the image is in: with none, nothing is read back after the change."""
    lock_image(session, image_id)
    channels = member_channels(session, image_id)
    before = contribution(session, image_id) if channels else None
    yield channels
    if channels:
        apply(session, channels, before, -1)
        apply(session, channels, contribution(session, image_id), +1)


# -- reading ------------------------------------------------------------------------------------


def floor_of(column: ColumnElement[float], dialect: str) -> ColumnElement[int]:
    """The whole number below a confidence, as ``int()`` gives it (PostgreSQL's CAST would round)."""
    if dialect == "postgresql":
        return cast(func.floor(column), Integer)
    return cast(column, Integer)  # SQLite's CAST truncates: the floor, for confidences (never negative)


@dataclass(frozen=True)
class ChannelTotals:
    images: int
    analysed: int
    failed: int
    with_text: int
    flagged: int
    labels: dict[str, int]


def totals(session: Session, channels: Sequence[str], *, label_floor: int, moderation_floor: int,
           statuses: Sequence[str] = ("done", "failed")) -> ChannelTotals:
    """Images with a live post in any of ``channels``, each counted once, and their labels at or above
    ``label_floor`` (whole numbers: the counts keep floors)."""
    stats = STATS.c
    done = stats.status == "done"
    row = session.execute(select(
        func.coalesce(func.sum(stats.images), 0),
        func.coalesce(func.sum(case((done, stats.images), else_=0)), 0),
        func.coalesce(func.sum(case((stats.status == "failed", stats.images), else_=0)), 0),
        func.coalesce(func.sum(case((and_(done, stats.has_text), stats.images), else_=0)), 0),
        func.coalesce(func.sum(case((and_(done, stats.moderation_floor >= moderation_floor), stats.images),
                                    else_=0)), 0),
    ).where(stats.channel_id.in_(list(channels)), stats.status.in_(list(statuses)))).one()
    images, analysed, failed, with_text, flagged = (int(v) for v in row)
    dialect = session.get_bind().dialect.name
    label_stats = LABEL_STATS.c
    labels: dict[str, int] = {
        str(name): int(count) for name, count in session.execute(
            select(label_stats.name, func.sum(label_stats.images))
            .where(label_stats.channel_id.in_(list(channels)), label_stats.confidence_floor >= label_floor)
            .group_by(label_stats.name)
        )
    }
    # Images posted in k > 1 of these channels were counted k times: take off k - 1. The live-post
    # index gives each channel's images in order, so the distinct pairs cost no sort; few images remain.
    sightings = SIGHTINGS.c
    pairs = (select(sightings.channel_id, sightings.image_id).distinct()
             .where(sightings.channel_id.in_(list(channels)), sightings.deleted_at.is_(None)).subquery())
    shared: dict[int, int] = dict(session.execute(
        select(pairs.c.image_id, func.count() - 1).group_by(pairs.c.image_id).having(func.count() > 1)
    ).all())
    if shared:
        extra = _extra_counts(session, shared, label_floor=label_floor, moderation_floor=moderation_floor,
                              statuses=statuses, dialect=dialect)
        images, analysed, failed, with_text, flagged = (a - b for a, b in zip(
            (images, analysed, failed, with_text, flagged), extra[:5], strict=True))
        for name, count in extra[5].items():
            labels[name] = labels.get(name, 0) - count
    return ChannelTotals(images=images, analysed=analysed, failed=failed, with_text=with_text, flagged=flagged,
                         labels={name: count for name, count in labels.items() if count > 0})


def _extra_counts(session: Session, shared: dict[int, int], *, label_floor: int, moderation_floor: int,
                  statuses: Sequence[str], dialect: str) -> tuple[int, int, int, int, int, dict[str, int]]:
    """What the images counted ``shared[id]`` times too often add to the totals and the labels,
    counted in the database (one pass per distinct number of extra times, nearly always 1 or 2)."""
    by_times: dict[int, list[int]] = {}
    for image_id, times in shared.items():
        by_times.setdefault(times, []).append(image_id)
    images_c = IMAGES.c
    is_done = images_c.status == "done"
    totals = [0, 0, 0, 0, 0]
    labels: dict[str, int] = {}
    for times, ids in by_times.items():
        row = session.execute(select(
            func.count(),
            func.coalesce(func.sum(case((is_done, 1), else_=0)), 0),
            func.coalesce(func.sum(case((images_c.status == "failed", 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(is_done, images_c.text_line_count > 0), 1), else_=0)), 0),
            func.coalesce(func.sum(case(
                (and_(is_done, floor_of(images_c.max_moderation_confidence, dialect) >= moderation_floor), 1),
                else_=0)), 0),
        ).where(one_of(images_c.id, ids, dialect), images_c.status.in_(list(statuses)))).one()
        totals = [total + times * int(value) for total, value in zip(totals, row, strict=True)]
        for name, count in session.execute(
            select(LABELS.c.name, func.count())
            .where(one_of(LABELS.c.image_id, ids, dialect), floor_of(LABELS.c.confidence, dialect) >= label_floor)
            .group_by(LABELS.c.name)
        ):
            labels[str(name)] = labels.get(str(name), 0) + times * int(count)
    return totals[0], totals[1], totals[2], totals[3], totals[4], labels


# -- rebuilding -----------------------------------------------------------------------------------

def rebuild_statements(dialect: str) -> list[Executable]:
    """The statements that count every channel again from the posts, images and labels."""
    sightings = SIGHTINGS.c
    members = (select(sightings.channel_id, sightings.image_id).distinct()
               .where(sightings.deleted_at.is_(None), sightings.channel_id.is_not(None)).subquery())
    images = IMAGES.c
    has_text = images.text_line_count > 0
    moderation = floor_of(images.max_moderation_confidence, dialect)
    confidence = floor_of(LABELS.c.confidence, dialect)
    return [
        delete(STATS),
        delete(LABEL_STATS),
        insert(STATS).from_select(
            ["channel_id", "status", "has_text", "moderation_floor", "images"],
            select(members.c.channel_id, images.status, has_text, moderation, func.count())
            .select_from(members.join(IMAGES, images.id == members.c.image_id))
            .group_by(members.c.channel_id, images.status, has_text, moderation),
        ),
        insert(LABEL_STATS).from_select(
            ["channel_id", "name", "confidence_floor", "images"],
            select(members.c.channel_id, LABELS.c.name, confidence, func.count())
            .select_from(members.join(LABELS, LABELS.c.image_id == members.c.image_id))
            .group_by(members.c.channel_id, LABELS.c.name, confidence),
        ),
    ]


def rebuild(session: Session) -> None:
    """Count every channel again (after a bulk load, or to check the kept counts)."""
    for statement in rebuild_statements(session.get_bind().dialect.name):
        session.execute(statement)


__all__ = ["ChannelTotals", "Contribution", "joined", "left", "rebuild", "restate", "totals"]
