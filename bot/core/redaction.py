"""Mask what the detectors found, everywhere an analysis keeps text, before anything is stored.

An analyser's answer holds the text twice: as lines and words, and inside the raw provider
responses kept for audit. A secret or a card number must leave neither: its characters
are replaced by the finding's mask (``AKIA…MPLE``) where it starts and by ``•••`` where
it goes on (the rest of a key read as several words, or its second line). Words are found
inside their line, so each masked word is exactly the part of the secret it held; a word
that cannot be placed is masked when it is a piece of a secret. Raw responses are walked
and every string that was a masked line or word, or that holds a secret, is replaced.

Each finding also gets the boxes of the words that show it (or a slice of its line when
the words are unknown), so the annotated copy can blur them, and its spans are moved to
where it sits in the masked text that is stored: what Slack is shown can mask it there.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from bot.core.records import ImageRecord, ReportData
from bot.core.sensitive import scan
from bot.core.types import Analysis, BoundingBox, Finding, Span, TextDetection

HiddenRanges = dict[int, list[tuple[int, int, str]]]

CONTINUED = "•••"
#: A word shorter than this is not masked for being a piece of a secret (``a``, ``id``, ``=``).
_MIN_PIECE = 4


def protect(analysis: Analysis, extra: Sequence[Finding] = ()) -> Analysis:
    """``analysis`` with the detectors' findings (and ``extra``) attached and every hidden value masked."""
    if not analysis.text and not extra:
        return analysis  # nothing was read: nothing to find (most photos)
    found = scan(analysis.text)
    if not found.findings and not extra:
        return analysis
    return mask_findings(analysis, (*found.findings, *extra), found.values)


# -- what Slack is shown ------------------------------------------------------------------------------


def shown_detections(text: Sequence[TextDetection], findings: Sequence[Finding] = ()) -> tuple[TextDetection, ...]:
    """Lines and words as imgbot shows them in Slack: personal data masked too, whoever found it.

    The stored text keeps an email or a name; Slack is shown its mask. imgbot's detectors run
    again over the lines; the stored ``findings`` add what only another detector (Comprehend)
    knew, at the place they record, or over their whole line when an older version did not
    record where on the line it was."""
    lines = [d for d in text if d.kind == "LINE"]
    found = scan(lines)
    hidden = _hidden_ranges(lines, (*found.findings, *_kept_findings(lines, findings)), hide_all=True)
    placed = _place_words(text)
    shown = _masked(text, placed, hidden, found.values)[0]
    # A word not found in its line's text gets nothing from the line's ranges: it is scanned on its own.
    return tuple(d if d.kind != "WORD" or d.id in placed else replace(d, text=shown_text(d.text)) for d in shown)


def shown_lines(lines: Sequence[TextDetection], findings: Sequence[Finding] = ()) -> list[str]:
    """The lines as a Slack reply shows them (see ``shown_detections``)."""
    return [line.text for line in shown_detections(lines, findings) if line.kind == "LINE"]


def shown_text(text: str) -> str:
    """One piece of stored text, with no findings of its own, as a reply shows it."""
    lines = [TextDetection(index, "LINE", part, 0.0, BoundingBox(0, 0, 0, 0))
             for index, part in enumerate(text.split("\n"))]
    return "\n".join(shown_lines(lines))


def shown_record(record: ImageRecord) -> ImageRecord:
    """``record`` with its text as Slack is shown it."""
    if not record.text:
        return record
    return replace(record, text=shown_detections(record.text, record.sensitive))


def shown_report(data: ReportData) -> ReportData:
    """A report to be posted in Slack: every image's text as a reply shows it."""
    return replace(data, images=tuple(shown_record(image) for image in data.images))


def _kept_findings(lines: Sequence[TextDetection], findings: Sequence[Finding]) -> list[Finding]:
    """The stored findings of personal data kept in the text, with spans that fit their lines."""
    lengths = {line.id: len(line.text) for line in lines}
    kept = []
    for finding in findings:
        if finding.hides_text:
            continue  # already masked in the stored text
        spans: list[Span] = []
        for line_id, start, end in finding.spans:
            if line_id not in lengths:
                continue
            if end > start:
                spans.append((line_id, min(start, lengths[line_id]), min(end, lengths[line_id])))
            elif finding.detector != "imgbot":  # where on the line was not recorded: all of it
                spans.append((line_id, 0, lengths[line_id]))
            # (imgbot's own findings are found again by the scan)
        if spans:
            kept.append(replace(finding, spans=tuple(spans)))
    return kept


# -- what is stored -----------------------------------------------------------------------------------


def mask_findings(analysis: Analysis, findings: Sequence[Finding], values: Iterable[str] = ()) -> Analysis:
    """Mask ``findings`` (spans in ``analysis``'s current text) and add them to ``analysis.sensitive``."""
    values = frozenset(values)
    lines = [d for d in analysis.text if d.kind == "LINE"]
    hidden = _hidden_ranges(lines, findings)
    placed = _place_words(analysis.text)
    new_text, replacements = _masked(analysis.text, placed, hidden, values)
    boxed = tuple(replace(_moved(f, hidden), boxes=_boxes(f, analysis.text, placed)) for f in findings)
    return replace(
        analysis, text=new_text, sensitive=(*(_moved(f, hidden) for f in analysis.sensitive), *boxed),
        raw=scrub_raw(analysis.raw, replacements, values),
    )


def _masked(text: Sequence[TextDetection], placed: dict[int, tuple[int, int]], hidden: HiddenRanges,
            values: frozenset[str]) -> tuple[tuple[TextDetection, ...], dict[str, str]]:
    """Lines and words (``placed`` in their lines) with ``hidden`` ranges and ``values`` masked, and each
    changed text's new form."""
    new_text: list[TextDetection] = []
    replacements: dict[str, str] = {}
    for detection in text:
        if detection.kind == "LINE":
            masked = _mask_ranges(detection.text, hidden.get(detection.id, []), 0)
        elif detection.id in placed:
            line_id, start = placed[detection.id]
            masked = _mask_ranges(detection.text, hidden.get(line_id, []), start)
        else:
            masked = detection.text
        masked = scrub_string(masked, values)
        if masked != detection.text:
            replacements[detection.text] = masked
            detection = replace(detection, text=masked)
        new_text.append(detection)
    return tuple(new_text), replacements


def _moved(finding: Finding, hidden: HiddenRanges) -> Finding:
    """``finding`` with its spans where they are once ``hidden`` is masked (a mask is shorter than a key)."""
    spans = tuple((line_id, _shifted(start, hidden.get(line_id, []), end=False),
                   _shifted(end, hidden.get(line_id, []), end=True)) for line_id, start, end in finding.spans)
    return finding if spans == finding.spans else replace(finding, spans=spans)


def _shifted(offset: int, ranges: Sequence[tuple[int, int, str]], *, end: bool) -> int:
    """Where ``offset`` lands once ``ranges`` (sorted, apart) are replaced; inside one, at its edge."""
    delta = 0
    for start, stop, replacement in ranges:
        if stop <= offset:
            delta += len(replacement) - (stop - start)
        elif start < offset:
            return start + delta + (len(replacement) if end else 0)
        else:
            break
    return offset + delta


def scrub_string(text: str, values: frozenset[str]) -> str:
    """``text`` with every hidden value in it masked; a piece of one (a word of a split key) becomes ``•••``."""
    if not values:
        return text
    compact = re.sub(r"\s", "", text)
    for value in values:
        if value in text:
            text = text.replace(value, CONTINUED)
        elif value in compact:
            return CONTINUED
        elif len(compact) >= _MIN_PIECE and compact in value:
            return CONTINUED
    return text


def scrub_raw(raw: Any, replacements: dict[str, str], values: frozenset[str]) -> Any:
    """A copy of a raw provider response with every masked line or word, and every hidden value, replaced."""
    if isinstance(raw, dict):
        return {key: scrub_raw(value, replacements, values) for key, value in raw.items()}
    if isinstance(raw, list):
        return [scrub_raw(value, replacements, values) for value in raw]
    if isinstance(raw, str):
        return scrub_string(replacements.get(raw, raw), values)
    return raw


# -- lines and words ----------------------------------------------------------------------------------


def _hidden_ranges(lines: Sequence[TextDetection], findings: Sequence[Finding], *,
                   hide_all: bool = False) -> HiddenRanges:
    """Per line, the (start, end, replacement) ranges to mask, in reading order, without overlaps."""
    order = {line.id: index for index, line in enumerate(lines)}
    ranges: dict[int, list[tuple[int, int, Finding]]] = defaultdict(list)
    for finding in findings:
        if hide_all or finding.hides_text:
            for line_id, start, end in finding.spans:
                ranges[line_id].append((start, end, finding))
    shown: set[tuple[str, str]] = set()
    hidden: HiddenRanges = {}
    for line_id in sorted(ranges, key=lambda i: order.get(i, len(order))):
        merged: list[tuple[int, int, str]] = []
        for start, end, finding in sorted(ranges[line_id], key=lambda r: (r[0], -r[1])):
            if merged and start < merged[-1][1]:  # overlaps the previous range: one mask covers both
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
                continue
            first = (finding.kind, finding.masked) not in shown
            shown.add((finding.kind, finding.masked))
            merged.append((start, end, finding.masked if first else CONTINUED))
        hidden[line_id] = merged
    return hidden


def _mask_ranges(text: str, ranges: Sequence[tuple[int, int, str]], offset: int) -> str:
    """``text`` (found at ``offset`` in its line) with the parts inside ``ranges`` replaced."""
    out, cursor = [], 0
    for start, end, replacement in ranges:
        first, last = max(start - offset, 0), min(end - offset, len(text))
        if first >= last or first < cursor:
            continue
        out.append(text[cursor:first])
        out.append(replacement if start >= offset else CONTINUED)
        cursor = last
    out.append(text[cursor:])
    return "".join(out)


def _place_words(detections: Sequence[TextDetection]) -> dict[int, tuple[int, int]]:
    """word id → (line id, where the word starts in the line's text), for the words found in their line."""
    lines = {d.id: d for d in detections if d.kind == "LINE"}
    cursors: dict[int, int] = defaultdict(int)
    placed: dict[int, tuple[int, int]] = {}
    for word in detections:
        if word.kind != "WORD" or word.parent_id not in lines or not word.text:
            continue
        line_text = lines[word.parent_id].text
        start = line_text.find(word.text, cursors[word.parent_id])
        if start < 0:
            start = line_text.find(word.text)
        if start >= 0:
            placed[word.id] = (word.parent_id, start)
            cursors[word.parent_id] = start + len(word.text)
    return placed


def _boxes(finding: Finding, detections: Sequence[TextDetection], placed: dict[int, tuple[int, int]]) -> tuple[
        BoundingBox, ...]:
    """The boxes of the words that show ``finding``, or the slice of each line it covers."""
    by_id = {d.id: d for d in detections if d.kind == "LINE"}
    boxes: list[BoundingBox] = []
    for line_id, start, end in finding.spans:
        words = [d for d in detections if d.kind == "WORD" and d.id in placed and placed[d.id][0] == line_id
                 and placed[d.id][1] < end and placed[d.id][1] + len(d.text) > start]
        if words:
            boxes.extend(word.box for word in words)
        elif (line := by_id.get(line_id)) is not None and line.text:
            box, size = line.box, len(line.text)
            boxes.append(BoundingBox(box.left + box.width * start / size, box.top,
                                     box.width * (end - start) / size, box.height))
    return tuple(boxes)
