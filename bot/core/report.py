"""Reports as Markdown, CSV or JSON, from ``ReportData`` (built by ``db.search.report_data``).

Everything that came from users or analysers (titles, label names, detected text,
channel and user names) is treated as untrusted: Markdown special characters and
newlines are escaped, links are only made from http(s) permalinks, and CSV cells
that a spreadsheet would run as a formula are prefixed with a quote.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.core.records import ImageRecord, ReportData, SightingRecord
from bot.core.report_looks import COLOUR_SHARE, Looks

__all__ = ["CSV_COLUMNS", "FORMATS", "render_report"]

CSV_COLUMNS = (
    "id", "sha256", "status", "source", "channel", "user", "seen_at", "format", "width", "height",
    "labels", "people", "text", "flagged", "moderation", "decision", "sensitive_data", "colors", "quality",
    "duplicate_group", "failure_reason",
)
TOP_LABELS_PER_IMAGE = 5


def render_report(data: ReportData, fmt: str = "md") -> str:
    """Render ``data`` as ``md`` (Markdown, the default), ``csv`` or ``json``."""
    renderer = _RENDERERS.get(fmt.strip().lower())
    if renderer is None:
        raise ValueError(f"Unknown report format {fmt!r}: use one of {', '.join(FORMATS)}.")
    return renderer(data)


# -- shared helpers --------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _newest_sighting(image: ImageRecord) -> SightingRecord | None:
    return max(image.live_sightings or image.sightings, key=lambda s: s.seen_at, default=None)


def _label_summary(image: ImageRecord, min_confidence: float) -> list[str]:
    return [f"{label.name} ({label.confidence:.1f})"
            for label in image.top_labels(min_confidence, TOP_LABELS_PER_IMAGE)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- Markdown --------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def _md(text: object) -> str:
    """Untrusted text made safe for one line of Markdown (or one table cell)."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(str(text)))


def _md_link(label: str, url: str | None) -> str:
    if url and re.match(r"https?://", url, re.IGNORECASE):
        safe_url = re.sub(r"[\s()<>]", lambda m: f"%{ord(m.group(0)):02X}", url)
        return f"[{_md(label)}]({safe_url})"
    return _md(label)


def _md_source(sighting: SightingRecord | None) -> str:
    if sighting is None:
        return "unknown"
    label = sighting.source
    if sighting.source_kind == "slack":
        if sighting.channel_name:
            label += f" (#{sighting.channel_name})"
        who = sighting.user_name or sighting.user_id
        text = _md_link(label, sighting.permalink)
        if who:
            text += f" by {_md(who)}"
    else:
        text = _md(label)
    return f"{text}, seen {_iso(sighting.seen_at)}"


def _render_md(data: ReportData) -> str:
    out: list[str] = [f"# {_md(data.title)}", ""]
    out.append(f"- Generated: {_iso(data.generated_at)}")
    if data.query.strip():
        out.append(f"- Query: {_md(data.query)}")
    counts = data.counts
    out.append(f"- Images: {counts.images} ({counts.analysed} analysed, {counts.failed} failed)")
    out.append(f"- With text: {counts.with_text}")
    if counts.people is not None:
        out.append(f"- With people: {counts.with_people} ({counts.people} people in all)")
    else:
        listed_people = sum(image.people for image in data.with_people)
        out.append(f"- With people: {len(data.with_people)} of the {len(data.analysed)} listed analysed images "
                   f"({listed_people} people)")
    out.append(f"- Flagged: {counts.flagged} (moderation confidence at least {data.moderation_min_confidence:g})")
    if data.note:
        out.append(f"- Note: {_md(data.note)}")

    out += ["", "## Top labels", ""]
    if data.top_labels:
        out += ["| Label | Images |", "| --- | ---: |"]
        out += [f"| {_md(row.name)} | {row.images} |" for row in data.top_labels]
    else:
        out.append(f"No labels at or above {data.label_min_confidence:g}% confidence.")

    out += ["", "## Images with text", "", f"{len(data.with_text)} image(s) contain text."]
    if data.with_text:
        out.append("")
    for image in data.with_text:
        lines = " / ".join(f"“{_md(line.text)}”" for line in image.lines)
        out.append(f"- Image {image.id}: {lines}")

    out += ["", "## Flagged images", ""]
    if not data.flagged:
        out.append("None.")
    for image in data.flagged:
        categories = ", ".join(
            f"{_md(flag.name)}" + (f" (under {_md(flag.parent_name)})" if flag.parent_name else "")
            + f" {flag.confidence:.1f}"
            for flag in image.flags(data.moderation_min_confidence)
        )
        line = f"- Image {image.id}: {categories}"
        decision = image.moderation_decision
        if decision is not None:
            line += f"; moderator: {_md(decision.decision)} by {_md(decision.user_id)} at {_iso(decision.decided_at)}"
        else:
            line += "; moderator: no decision yet"
        out.append(line)

    out += ["", "## Sensitive data", ""]
    sensitive = [image for image in data.analysed if image.sensitive]
    if not sensitive:
        out.append("None found.")
    else:
        out += ["Values are masked; secrets and card numbers are not kept anywhere.", "",
                "| Image | Type | Masked value | Posted |", "| ---: | --- | --- | --- |"]
        for image in sensitive:
            where = _md_source(_newest_sighting(image))
            out += [f"| {image.id} | {_md(f.category)}: {_md(f.kind)} | {_md(f.masked)} | {where} |"
                    for f in image.sensitive]

    looks = Looks.of(data)
    out += ["", "## Colours", ""]
    if looks.colours:
        out += [f"Images where a colour covers at least {COLOUR_SHARE:g} %.", "", "| Colour | Images |",
                "| --- | ---: |"]
        out += [f"| {_md(name)} | {count} |" for name, count in looks.colours]
    else:
        out.append("No colours measured.")
    out += ["", "## Low quality", ""]
    if not looks.low_quality:
        out.append("None.")
    for image in looks.low_quality:
        out.append(f"- Image {image.id}: {', '.join(image.quality_flags)} ({image.width}×{image.height})")
    out += ["", "## Near-duplicates", ""]
    if not looks.groups:
        out.append("None.")
    for group in looks.groups:
        out.append("- Images " + ", ".join(str(image_id) for image_id in group))

    out += ["", "## Failures", ""]
    if not data.failed:
        out.append("None.")
    for image in data.failed:
        out.append(f"- Image {image.id} ({_md_source(_newest_sighting(image))}): "
                   f"{_md(image.failure_reason or 'unknown reason')}")

    out += ["", "## Images"]
    if not data.analysed:
        out += ["", "No analysed images."]
    for image in data.analysed:
        out += ["", f"### Image {image.id}", ""]
        out.append(f"- Source: {_md_source(_newest_sighting(image))}")
        if image.format:
            size = f", {image.width}×{image.height}" if image.width and image.height else ""
            out.append(f"- Format: {_md(image.format)}{size}")
        labels = _label_summary(image, data.label_min_confidence)
        out.append(f"- Labels: {', '.join(_md(label) for label in labels) if labels else 'none'}")
        if image.lines:
            out.append("- Text:")
            out += [f"  - {_md(line.text)}" for line in image.lines]
        else:
            out.append("- Text: none")
    return "\n".join(out) + "\n"


# -- CSV -------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """Plain values as they are; text that a spreadsheet would evaluate gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str):
        if value.startswith(_FORMULA_START):
            value = "'" + value
        return value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return value


def _render_csv(data: ReportData) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    group_of = {image_id: group[0] for group in Looks.of(data).groups for image_id in group}
    for image in data.images:
        sighting = _newest_sighting(image)
        flags = image.flags(data.moderation_min_confidence)
        row: list[Any] = [
            image.id,
            image.sha256,
            image.status,
            sighting.source if sighting else "",
            (sighting.channel_name or sighting.channel_id) if sighting else "",
            (sighting.user_name or sighting.user_id) if sighting else "",
            _iso(sighting.seen_at) if sighting else "",
            image.format,
            image.width,
            image.height,
            "; ".join(_label_summary(image, data.label_min_confidence)),
            image.people if image.status == "done" else "",
            " | ".join(_one_line(line.text) for line in image.lines),
            "yes" if flags else "no",
            "; ".join(flag.name for flag in flags),
            image.moderation_decision.decision if image.moderation_decision else "",
            "; ".join(f"{f.category}:{f.kind} {f.masked}" for f in image.sensitive),
            "; ".join(f"{c.css_color} {c.pixel_percent:.0f}%" for c in image.properties.dominant_colors
                      if c.pixel_percent >= COLOUR_SHARE) if image.properties else "",
            "; ".join(image.quality_flags),
            group_of.get(image.id, ""),
            image.failure_reason,
        ]
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


# -- JSON ------------------------------------------------------------------------------------


def _render_json(data: ReportData) -> str:
    document: dict[str, Any] = {
        "title": data.title,
        "query": data.query,
        "generated_at": _iso(data.generated_at),
        "label_min_confidence": data.label_min_confidence,
        "moderation_min_confidence": data.moderation_min_confidence,
        "totals": dataclasses.asdict(data.counts),
        "top_labels": [{"name": row.name, "images": row.images} for row in data.top_labels],
        **Looks.of(data).to_json(),
        "sensitive_data": [
            {"image_id": image.id, "category": f.category, "kind": f.kind, "masked": f.masked,
             "source": sighting.source if sighting else None,
             "channel": (sighting.channel_name or sighting.channel_id) if sighting else None,
             "permalink": sighting.permalink if sighting else None}
            for image in data.analysed for sighting in (_newest_sighting(image),) for f in image.sensitive
        ],
        "images": [
            image.to_json(label_min_confidence=data.label_min_confidence,
                          moderation_min_confidence=data.moderation_min_confidence)
            for image in data.images
        ],
    }
    if data.note:
        document["note"] = data.note
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


_RENDERERS: dict[str, Callable[[ReportData], str]] = {"md": _render_md, "csv": _render_csv, "json": _render_json}
FORMATS = tuple(_RENDERERS)
