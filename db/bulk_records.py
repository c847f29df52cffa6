"""``ImageRecord`` values for many images at once, read as plain rows (no ORM objects).

A report lists up to 10,000 images; building them through the ORM's
``selectinload`` costs seconds. Here each table is read once per batch of ids
with only the columns a record needs, and the records come out equal to
``db.queries.load_image_records`` (``tests/test_search_plans.py`` checks that).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, Text, any_, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from bot.core.records import ImageRecord, ModerationDecisionRecord, SightingRecord
from bot.core.report_looks import COLOUR_SHARE
from bot.core.types import (
    BoundingBox,
    DominantColor,
    Face,
    FaceLandmark,
    Finding,
    ImageProperties,
    Label,
    LabelInstance,
    ModerationLabel,
    TextDetection,
)
from db import findings, models

__all__ = ["load_records"]

BATCH = 5000  # ids per statement (SQLite allows 32,766 parameters)


def load_records(session: Session, image_ids: Sequence[int], *, narrow: bool = False,
                 label_min: float = 0.0, channels: Collection[str] | None = None) -> list[ImageRecord]:
    """Full records for ``image_ids``, in the same order (missing ids are skipped).

    ``narrow``: only what a Markdown or CSV report shows — label names and confidences, the
    lines of text, moderation, posts and decisions; no boxes, polygons, parents, faces or
    model versions (half the reading and building for a 10,000-image report), and only the labels
    at or above ``label_min``.

    ``channels``: a caller restricted to these channels gets only the posts it may see (live
    Slack posts in them), and the others are never read."""
    records: dict[int, ImageRecord] = {}
    ids = list(dict.fromkeys(int(i) for i in image_ids))
    posts: tuple[ColumnElement[bool], ...] = ()
    if channels is not None:
        sighting = models.Sighting
        posts = (sighting.deleted_at.is_(None), sighting.source_kind == "slack",
                 sighting.channel_id.in_(sorted(set(channels))))
    with _collector_paused():
        for start in range(0, len(ids), BATCH):
            records.update(_load_batch(session, ids[start:start + BATCH], narrow, label_min, posts))
    return [records[i] for i in ids if i in records]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while records are built: they make no cycles, and with hundreds
    of thousands of small objects the collector's full passes cost as much as building them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _raw(column: Any) -> Any:
    """A JSON column as its text, decoded by ``_json`` (most values are ``[]``: no parser needed)."""
    return cast(column, Text).label(column.key)


_EMPTY: dict[str, Any] = {"[]": (), "{}": {}, "null": None}


@functools.lru_cache(maxsize=4096)
def _json(text: str | None) -> Any:
    """Decoded once per distinct text (label parents repeat endlessly); callers only read the result."""
    if text is None:
        return None
    found = _EMPTY.get(text, _EMPTY)
    return json.loads(text) if found is _EMPTY else found


def one_of(column: Any, ids: list[int], dialect: str) -> ColumnElement[bool]:
    """``column IN (…)`` with the ids as one parameter, not thousands (SQLAlchemy spends longer
    expanding 5,000 parameters than the database spends on the query): ``= ANY(array)`` on
    PostgreSQL, ``IN (SELECT value FROM json_each(…))`` on SQLite.

    The array goes as its text (``{1,2,3}``), which PostgreSQL parses in C: psycopg's dumper
    takes 5 ms in Python for 5,000 ints, a tenth of a 10,000-image report's reading."""
    if dialect == "postgresql":
        listed_text = bindparam(None, "{" + ",".join(str(int(i)) for i in ids) + "}", type_=Text)
        return column == any_(cast(listed_text, postgresql.ARRAY(Integer)))  # type: ignore[no-any-return]
    listed: Select[Any] = select(literal_column("value")).select_from(func.json_each(bindparam(None, json.dumps(ids))))
    return column.in_(listed)  # type: ignore[no-any-return]


def _grouped(session: Session, columns: Sequence[Any], image_id: Any, ids: list[int], order: Sequence[Any],
             build: Callable[[Any], Any], *where: ColumnElement[bool]) -> dict[int, list[Any]]:
    """``build(row)`` per row of ``columns``, grouped by image id, in ``order``."""
    grouped: dict[int, list[Any]] = {}
    connection = session.connection()  # plain rows: no ORM bookkeeping per row
    wanted = one_of(image_id, ids, connection.dialect.name)
    rows = connection.execute(select(image_id, *columns).where(wanted, *where).order_by(image_id, *order)).all()
    for row in rows:  # fetched at once: a driver fetching row by row costs more than the query
        grouped.setdefault(row[0], []).append(build(row))
    return grouped


def _load_batch(session: Session, ids: list[int], narrow: bool, label_min: float,
                posts: tuple[ColumnElement[bool], ...]) -> dict[int, ImageRecord]:
    image = models.Image
    images = session.connection().execute(
        select(image.id, image.sha256, image.status, image.byte_size, image.format, image.width, image.height,
               image.storage_key, image.storage_uri, image.created_at, image.analyzed_at, image.failure_reason,
               image.provider, image.person_count)
        .where(one_of(image.id, ids, session.get_bind().dialect.name))
    ).all()
    if not images:
        return {}
    label, text, moderation, face, sighting = (models.Label, models.TextDetection, models.ModerationLabel,
                                               models.Face, models.Sighting)
    # Each list in the order a record keeps it (as db.queries sorts them), ties by id.
    if narrow:
        labels = _grouped(session, (label.name, label.confidence), label.image_id, ids,
                          (label.confidence.desc(), label.id), _plain_label, label.confidence >= label_min)
        texts = _grouped(session, (text.detection_id, text.text, text.confidence, text.parent_id), text.image_id,
                         ids, (text.detection_id, text.id), _plain_line, text.kind == "LINE")
    else:
        labels = _grouped(session, (label.name, label.confidence, _raw(label.parents), _raw(label.aliases),
                                    _raw(label.categories), _raw(label.instances)), label.image_id, ids,
                          (label.confidence.desc(), label.id), _label)
        texts = _grouped(session, (text.detection_id, text.kind, text.text, text.confidence, _raw(text.box),
                                   text.parent_id, _raw(text.polygon)), text.image_id, ids,
                         (text.detection_id, text.id), _text)
    flags = _grouped(session, (moderation.name, moderation.confidence, moderation.parent_name,
                               moderation.taxonomy_level), moderation.image_id, ids,
                     (moderation.confidence.desc(), moderation.id), _flag)
    faces = {} if narrow else _grouped(
        session, (_raw(face.box), face.confidence, _raw(face.landmarks), _raw(face.attributes), _raw(face.embedding)),
        face.image_id, ids, (face.id,), _face)
    sightings = _grouped(session, (sighting.id, sighting.source_kind, sighting.name, sighting.seen_at,
                                   sighting.team_id, sighting.channel_id, sighting.channel_name, sighting.user_id,
                                   sighting.user_name, sighting.file_id, sighting.message_ts, sighting.thread_ts,
                                   sighting.permalink, sighting.deleted_at),
                         sighting.image_id, ids, (sighting.seen_at, sighting.id), _sighting, *posts)
    finding = models.SensitiveFinding
    found = _grouped(session, (finding.category, finding.kind, finding.masked, finding.detector, finding.score,
                               _raw(finding.line_ids), _raw(finding.boxes), _raw(finding.spans)),
                     finding.image_id, ids, (finding.id,), _finding)
    visual, color = models.ImageVisual, models.ImageColor
    looks = _grouped(session, (visual.brightness, visual.sharpness, visual.contrast, visual.source, visual.phash),
                     visual.image_id, ids, (), lambda row: row)
    # A Markdown or CSV report shows and counts the colours covering at least COLOUR_SHARE of an image.
    colour_floor = (color.percent >= COLOUR_SHARE,) if narrow else ()
    colours = _grouped(session, (color.red, color.green, color.blue, color.hex, color.css, color.simplified,
                                 color.percent), color.image_id, ids, (color.rank,),
                       lambda row: DominantColor(*row[1:]), *colour_floor)
    versions = {} if narrow else _latest_model_versions(session, ids)
    decisions = _latest_decisions(session, ids)
    none: tuple[Any, ...] = ()
    records = {}
    for (image_id, sha256, status, byte_size, format_, width, height, storage_key, storage_uri, created_at,
         analyzed_at, failure_reason, provider, person_count) in images:  # unpacked: a Row's attributes cost 0.3 µs
        look = looks[image_id][0] if image_id in looks else None
        records[image_id] = ImageRecord(
            id=image_id, sha256=sha256, status=status, byte_size=byte_size, format=format_,
            width=width, height=height, storage_key=storage_key, storage_uri=storage_uri,
            created_at=created_at, analyzed_at=analyzed_at, failure_reason=failure_reason,
            provider=provider, model_versions=versions.get(image_id, {}),
            labels=tuple(labels.get(image_id, none)), text=tuple(texts.get(image_id, none)),
            moderation=tuple(flags.get(image_id, none)), faces=tuple(faces.get(image_id, none)),
            sightings=tuple(sightings.get(image_id, none)), moderation_decision=decisions.get(image_id),
            sensitive=tuple(found.get(image_id, none)),
            properties=_properties(look, colours.get(image_id, none)) if look is not None else None,
            phash=look[5] if look is not None else None,
            person_count=person_count,
        )
    return records


def _latest_model_versions(session: Session, ids: list[int]) -> dict[int, dict[str, str]]:
    """As ``db.queries``: the model versions of each image's latest successful analysis."""
    run = models.AnalysisRun
    latest = (select(func.max(run.id)).where(one_of(run.image_id, ids, session.get_bind().dialect.name),
                                             run.outcome == "done").group_by(run.image_id))
    rows = session.connection().execute(select(run.image_id, _raw(run.model_versions)).where(run.id.in_(latest)))
    return {row.image_id: dict(_json(row.model_versions) or {}) for row in rows}


def _latest_decisions(session: Session, ids: list[int]) -> dict[int, ModerationDecisionRecord]:
    """As ``db.queries``: each image's latest moderation decision."""
    decision = models.ModerationDecision
    latest = (select(func.max(decision.id)).where(one_of(decision.image_id, ids, session.get_bind().dialect.name))
              .group_by(decision.image_id))
    rows = session.connection().execute(
        select(decision.image_id, decision.decision, decision.user_id, decision.decided_at)
        .where(decision.id.in_(latest))
    )
    return {row.image_id: ModerationDecisionRecord(row.decision, row.user_id, row.decided_at) for row in rows}


# The builders below take ``_grouped``'s rows (the image id, then the columns asked for) unpacked
# by position: reading a Row's columns by name costs ten times as much, at 100,000 rows a report.


def _label(row: Any) -> Label:
    _, name, confidence, parents, aliases, categories, instances_text = row
    instances = _json(instances_text)
    return Label(
        name=name, confidence=confidence, parents=tuple(_json(parents) or ()),
        aliases=tuple(_json(aliases) or ()), categories=tuple(_json(categories) or ()),
        instances=tuple(LabelInstance(BoundingBox.from_dict(inst["box"]), float(inst["confidence"]))
                        for inst in instances) if instances else (),
    )


_NO_BOX = BoundingBox(0.0, 0.0, 0.0, 0.0)


def _plain_label(row: Any) -> Label:
    return Label(name=row[1], confidence=row[2])


def _plain_line(row: Any) -> TextDetection:
    _, detection_id, text, confidence, parent_id = row
    return TextDetection(id=detection_id, kind="LINE", text=text, confidence=confidence, box=_NO_BOX,
                         parent_id=parent_id)


def _text(row: Any) -> TextDetection:
    _, detection_id, kind, text, confidence, box, parent_id, polygon = row
    return TextDetection(
        id=detection_id, kind=kind, text=text, confidence=confidence,
        box=BoundingBox.from_dict(_json(box)), parent_id=parent_id,
        polygon=tuple((float(p[0]), float(p[1])) for p in (_json(polygon) or ())),
    )


def _properties(look: Any, colours: Sequence[DominantColor]) -> ImageProperties:
    _, brightness, sharpness, contrast, source, _phash = look
    return ImageProperties(brightness, sharpness, contrast, tuple(colours), source)


def _finding(row: Any) -> Finding:
    _, category, kind, masked, detector, score, line_ids, boxes, spans = row
    return findings.to_finding(SimpleNamespace(
        category=category, kind=kind, masked=masked, detector=detector, score=score,
        line_ids=_json(line_ids), boxes=_json(boxes), spans=_json(spans)))


def _flag(row: Any) -> ModerationLabel:
    _, name, confidence, parent_name, taxonomy_level = row
    return ModerationLabel(name=name, confidence=confidence, parent_name=parent_name, taxonomy_level=taxonomy_level)


def _face(row: Any) -> Face:
    _, box, confidence, landmarks, attributes, embedding_text = row
    embedding = _json(embedding_text)
    return Face(
        box=BoundingBox.from_dict(_json(box)), confidence=confidence,
        landmarks=tuple(FaceLandmark(lm["type"], lm["x"], lm["y"]) for lm in (_json(landmarks) or ())),
        attributes=dict(_json(attributes) or {}),
        embedding=tuple(embedding) if embedding is not None else None,
    )


def _sighting(row: Any) -> SightingRecord:
    (_, sighting_id, source_kind, name, seen_at, team_id, channel_id, channel_name, user_id, user_name, file_id,
     message_ts, thread_ts, permalink, deleted_at) = row
    return SightingRecord(
        id=sighting_id, source_kind=source_kind, name=name, seen_at=seen_at, team_id=team_id,
        channel_id=channel_id, channel_name=channel_name, user_id=user_id, user_name=user_name,
        file_id=file_id, message_ts=message_ts, thread_ts=thread_ts, permalink=permalink,
        deleted=deleted_at is not None,
    )
