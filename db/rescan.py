"""Apply the sensitive-data detectors to images already stored, and mask what they find.

Run by migration 0007 (images analysed before findings existed) and by ``imgbot rescan-text``
(after the detectors improve, or to add a PII service's findings). For each analysed image
with text it masks the stored lines and words, the search document and every stored raw
response, and adds the findings it did not have. Findings are never removed: text masked
by an earlier pass no longer shows what it hid, so its finding is the only record left.

On SQLite the pass turns ``secure_delete`` on, so the pages that held a value are zeroed
rather than left in the file, and rebuilds the full-text index from the masked documents
(its old segments would still hold the words).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, inspect, select, update

from bot.core.insights import add_text_insights
from bot.core.ports import PiiDetector
from bot.core.redaction import protect
from bot.core.types import Analysis, BoundingBox, TextDetection
from bot.errors import ImgbotError
from db import findings, models

log = logging.getLogger("imgbot.rescan")

TEXTS: Table = models.TextDetection.__table__  # type: ignore[assignment]
DOCUMENTS: Table = models.SearchDocument.__table__  # type: ignore[assignment]
RUNS: Table = models.AnalysisRun.__table__  # type: ignore[assignment]
IMAGES: Table = models.Image.__table__  # type: ignore[assignment]
BATCH = 500


@dataclass
class RescanSummary:
    images: int = 0  # images with text that were scanned
    changed: int = 0  # images whose stored text was masked
    findings: int = 0  # findings added
    insight_failures: int = 0  # images the PII service could not read (run again to finish them)


def rescan_text(
    connection: Connection, *, pii: PiiDetector | None = None,
    on_image: Callable[[int, int], None] | None = None,
) -> RescanSummary:
    """Scan every analysed image's text; ``on_image(image_id, findings added)`` after each one."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA secure_delete = ON")
    summary = RescanSummary()
    # Migration 0007 runs this pass before later revisions add their columns: write only those there.
    columns = frozenset(column["name"] for column in inspect(connection).get_columns(findings.TABLE.name))
    last_id = 0
    while True:
        image_ids = list(connection.execute(
            select(IMAGES.c.id).where(IMAGES.c.id > last_id, IMAGES.c.status == "done",
                                      IMAGES.c.text_line_count > 0).order_by(IMAGES.c.id).limit(BATCH)
        ).scalars())
        if not image_ids:
            break
        for image_id in image_ids:
            added = _rescan_image(connection, image_id, pii, summary, columns)
            if on_image is not None:
                on_image(image_id, added)
        last_id = image_ids[-1]
    if sqlite and summary.changed:
        connection.exec_driver_sql("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")
    return summary


def count_with_text(connection: Connection) -> int:
    """How many images a rescan reads (for a progress bar)."""
    return int(connection.execute(
        select(func.count()).select_from(IMAGES).where(IMAGES.c.status == "done", IMAGES.c.text_line_count > 0)
    ).scalar_one())


def _rescan_image(connection: Connection, image_id: int, pii: PiiDetector | None, summary: RescanSummary,
                  columns: frozenset[str]) -> int:
    rows = connection.execute(
        select(TEXTS.c.id, TEXTS.c.detection_id, TEXTS.c.kind, TEXTS.c.text, TEXTS.c.confidence,
               TEXTS.c.parent_id, TEXTS.c.box)
        .where(TEXTS.c.image_id == image_id).order_by(TEXTS.c.detection_id)
    ).all()
    if not rows:
        return 0
    summary.images += 1
    runs = {str(run.id): run.raw for run in connection.execute(
        select(RUNS.c.id, RUNS.c.raw).where(RUNS.c.image_id == image_id))}
    table = findings.TABLE
    stored = connection.execute(select(*(column for column in table.c if column.name in columns))
                                .where(table.c.image_id == image_id).order_by(table.c.id)).all()
    kept = tuple(findings.to_finding(row) for row in stored)
    before = Analysis(
        provider="stored",
        text=tuple(TextDetection(id=row.detection_id, kind=row.kind, text=row.text, confidence=row.confidence,
                                 box=BoundingBox.from_dict(row.box or {}), parent_id=row.parent_id) for row in rows),
        raw=runs, sensitive=kept,  # so that masking more of a line moves the places of what it holds
    )
    after = protect(before)
    if pii is not None:
        try:
            after = add_text_insights(after, pii)
        except ImgbotError as err:
            summary.insight_failures += 1
            log.warning("image=%s text insights failed: %s", image_id, err.detail or err.user_message)
    if _save_text(connection, image_id, rows, before, after):
        summary.changed += 1
    moved, found = after.sensitive[:len(kept)], after.sensitive[len(kept):]  # masking keeps their order
    existing = {(row.kind, row.masked) for row in stored}
    new = [f for f in found if (f.kind, f.masked) not in existing]
    if new:
        connection.execute(insert(table), [{key: value for key, value in row.items() if key in columns}
                                           for row in findings.rows(image_id, new)])
        summary.findings += len(new)
    if "spans" in columns:
        for row, before_finding, finding in zip(stored, kept, moved, strict=True):
            if row.spans is None:  # written before places were kept: learnt when it is found again
                place = next((f.spans for f in found if (f.kind, f.masked) == (row.kind, row.masked)), ())
            else:
                place = finding.spans if finding.spans != before_finding.spans else ()
            if place:
                connection.execute(update(table).where(table.c.id == row.id)
                                   .values(spans=[list(span) for span in place]))
    return len(new)


def _save_text(connection: Connection, image_id: int, rows: Any, before: Analysis, after: Analysis) -> bool:
    """Write the masked text back (PostgreSQL's tsvector indexes follow the column by themselves)."""
    changed = [(row.id, new.text) for row, old, new in zip(rows, before.text, after.text, strict=True)
               if new.text != old.text]
    if not changed:
        return False
    connection.execute(
        update(TEXTS).where(TEXTS.c.id == bindparam("row_id")).values(text=bindparam("new_text")),
        [{"row_id": row_id, "new_text": new_text} for row_id, new_text in changed],
    )
    connection.execute(
        update(DOCUMENTS).where(DOCUMENTS.c.image_id == image_id)
        .values(text="\n".join(line.text for line in after.lines))
    )
    for run_id, raw in after.raw.items():
        if raw != before.raw.get(run_id):
            connection.execute(update(RUNS).where(RUNS.c.id == int(run_id)).values(raw=raw))
    return True
