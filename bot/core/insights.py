"""Text insights: a PII service's entities (names, addresses…) added to the detectors' findings.

The service reads the image's lines joined by newlines, after the detectors have masked
what they found, so no secret is ever sent on. Entity types that are secrets or card data
(a password, a PIN, an AWS key, a card's number or code) are masked like the detectors'
own; the rest is kept and tagged. Types imgbot's detectors already cover are not repeated,
and dates and URLs are not personal data on their own.
"""

from __future__ import annotations

import re

from bot.core.ports import PiiDetector
from bot.core.redaction import mask_findings
from bot.core.sensitive import mask
from bot.core.types import Analysis, Category, Finding, Span

#: Comprehend's entity types with imgbot's kind and category; others become ``pii`` of the type's own name.
_KINDS: dict[str, tuple[str, Category]] = {
    "EMAIL": ("email", "pii"),
    "PHONE": ("phone", "pii"),
    "CREDIT_DEBIT_NUMBER": ("card", "pii"),
    "CREDIT_DEBIT_CVV": ("card-cvv", "pii"),
    "CREDIT_DEBIT_EXPIRY": ("card-expiry", "pii"),
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": ("iban", "pii"),
    "BANK_ACCOUNT_NUMBER": ("bank-account", "pii"),
    "AWS_ACCESS_KEY": ("aws-access-key", "secret"),
    "AWS_SECRET_KEY": ("aws-secret-key", "secret"),
    "PASSWORD": ("password", "secret"),
    "PIN": ("pin", "secret"),
}
_IGNORED = frozenset({"DATE_TIME", "URL", "AGE"})
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
    known = {f.kind for f in analysis.sensitive}
    found: dict[tuple[str, str], Finding] = {}
    values: set[str] = set()
    for entity in detector.detect(text):
        if entity.score < MIN_SCORE or entity.type in _IGNORED:
            continue
        kind, category = _KINDS.get(entity.type, (entity.type.lower().replace("_", "-"), "pii"))
        value = text[entity.begin:entity.end]
        compact = re.sub(r"\s", "", value)
        if kind in known or not compact or "•" in value or "…" in value:
            continue
        spans: tuple[Span, ...] = tuple(
            (line_id, max(entity.begin - start, 0) , min(entity.end - start, length))
            for line_id, start, length in starts
            if entity.begin < start + length and entity.end > start
        )
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
