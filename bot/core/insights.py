"""Text insights: a PII service's entities (names, addresses…) added to the detectors' findings.

The service reads the image's lines joined by newlines, after the detectors have masked
what they found, so no secret is ever sent on. The adapter names each entity in imgbot's
kinds and categories; secrets and card data are masked like the detectors' own, the rest is
kept and tagged. Kinds imgbot's detectors already found are not repeated.
"""

from __future__ import annotations

import re

from bot.core.ports import PiiDetector
from bot.core.redaction import mask_findings
from bot.core.sensitive import mask
from bot.core.types import Analysis, Finding, Span

#: Entities below this score (0-1) are left out: Comprehend's own console default is 0.5; names need more.
MIN_SCORE = 0.8


def add_text_insights(analysis: Analysis, detector: PiiDetector) -> Analysis:
    """``analysis`` with ``detector``'s entities as findings (masked where they are secrets)."""
    lines = analysis.lines
    if not lines:
        return analysis
    text = "\n".join(line.text for line in lines)
    starts = []
    offset = 0
    for line in lines:
        starts.append((line.id, offset, len(line.text)))
        offset += len(line.text) + 1
    # Where imgbot's own detectors already found something; a second secret of the same kind elsewhere
    # is still new (a password found by its label does not cover a wifi key further down).
    covered = [span for f in analysis.sensitive for span in f.spans]
    found: dict[tuple[str, str], Finding] = {}
    values: set[str] = set()
    for entity in detector.detect(text):
        if entity.score < MIN_SCORE or not entity.kind:
            continue
        kind, category = entity.kind, entity.category
        value = text[entity.begin:entity.end]
        compact = re.sub(r"\s", "", value)
        if not compact or "•" in value or "…" in value:
            continue
        spans: tuple[Span, ...] = tuple(
            (line_id, max(entity.begin - start, 0) , min(entity.end - start, length))
            for line_id, start, length in starts
            if entity.begin < start + length and entity.end > start
        )
        if any(_overlap(span, seen) for span in spans for seen in covered):
            continue
        finding = Finding(category, kind, mask(kind, value), spans, detector=detector.name,
                          score=round(entity.score * 100, 2))
        if finding.hides_text:
            values.add(compact)
        previous = found.get((kind, compact))
        found[(kind, compact)] = finding if previous is None else Finding(
            category, kind, previous.masked, (*previous.spans, *spans), detector=detector.name,
            score=max(previous.score or 0.0, finding.score or 0.0))
    if not found:
        return analysis
    return mask_findings(analysis, list(found.values()), values)


def _overlap(a: Span, b: Span) -> bool:
    """Whether two (line id, start, end) spans share a character."""
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]
