"""Rows of ``sensitive_findings``: written with an analysis or a rescan, read back as ``Finding``.

Only the mask, the kind and where it was are ever written: the value never reaches this module.
Where it was is the line and the characters it covers in the *stored* line, so that what Slack is
shown can mask personal data only another detector found (a name, with Comprehend).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table

from bot.core.types import BoundingBox, Category, Finding, Span
from db import models

TABLE: Table = models.SensitiveFinding.__table__  # type: ignore[assignment]


def rows(image_id: int, found: Iterable[Finding]) -> list[dict[str, Any]]:
    return [
        {"image_id": image_id, "category": f.category, "kind": f.kind[:64], "masked": f.masked[:255],
         "detector": f.detector, "score": f.score, "line_ids": list(f.line_ids),
         "boxes": [box.to_dict() for box in f.boxes], "spans": [list(span) for span in f.spans]}
        for f in found
    ]


def to_finding(row: Any) -> Finding:
    """From an ORM row or a plain row with the same columns (``line_ids``, ``boxes`` and ``spans`` decoded)."""
    category: Category = "secret" if row.category == "secret" else "pii"
    if getattr(row, "spans", None) is not None:  # (rows read before migration 0013 have no such column)
        spans: tuple[Span, ...] = tuple((int(line_id), int(start), int(end)) for line_id, start, end in row.spans)
    else:  # written before 0013: the lines are known, not where on them
        spans = tuple((int(line_id), 0, 0) for line_id in row.line_ids or ())
    return Finding(
        category=category, kind=row.kind, masked=row.masked, spans=spans,
        boxes=tuple(BoundingBox.from_dict(box) for box in row.boxes or ()),
        detector=row.detector, score=row.score,
    )
