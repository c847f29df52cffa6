"""Block Kit rendering: every message imgbot posts is built here, within Slack's limits.

Everything read from an image or typed by a person (labels, text lines, file names,
queries) goes through ``escape`` so that a photo saying ``<!channel>`` pings nobody.
Slack's limits that matter here: 50 blocks per message, 3,000 characters per section
text, 150 per header, 75 per button label, 2,000 per button value, 2,000 per image
``alt_text``. Long content is cut with a visible note rather than rejected by Slack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core.records import ImageRecord, ReportData, SearchHit, SearchPage, SightingRecord
from bot.core.redaction import shown_lines, shown_text
from bot.core.types import IngestResult
from bot.slack import messages

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BUTTON_VALUE = 2000
MAX_ALT_TEXT = 2000
MAX_FALLBACK_TEXT = 3000
LABELS_SHOWN = 5
TEXT_LINES_SHOWN = 20

ACTION_MORE = "imgsearch_more"
ACTION_CONFIRM = "moderation_confirm"
ACTION_DISMISS = "moderation_dismiss"

#: Formats Slack can show in an image block through ``slack_file``.
SLACK_FILE_FORMATS = frozenset({"JPEG", "PNG", "GIF"})

_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """A mrkdwn link whose label is escaped and whose URL cannot break out of ``<…|…>``."""
    safe_url = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{safe_url}|{escape(label)}>"


def truncate(text: str, limit: int, note: str = "… (truncated)") -> str:
    """Cut ``text`` to ``limit`` characters with ``note`` at the end, never inside an escape entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(note))]
    cut = _PARTIAL_ENTITY.sub("", cut)
    if cut.count("```") % 2 == 1:  # do not leave a code block open
        cut = cut[: max(0, limit - len(note) - 4)]
        cut = _PARTIAL_ENTITY.sub("", cut) + "\n```"
    return cut + note


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_TEXT, "…"),
                                       "emoji": True}}


def divider() -> Block:
    return {"type": "divider"}


def slack_date(when: datetime) -> str:
    """Slack renders ``<!date^…>`` in each reader's own time zone; the fallback is UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def fit_blocks(blocks: list[Block], more_note: str | None = None) -> list[Block]:
    """Keep at most ``MAX_BLOCKS``; when cut, the last block says so."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = blocks[: MAX_BLOCKS - 1]
    kept.append(context(more_note or f"… {len(blocks) - len(kept)} more blocks not shown."))
    return kept


def _percent(confidence: float) -> str:
    return f"{confidence:.0f}%"


def _labels_line(record: ImageRecord, min_confidence: float, limit: int = LABELS_SHOWN) -> str:
    labels = record.top_labels(min_confidence, limit)
    if not labels:
        return "no labels above the confidence threshold"
    return " · ".join(f"{escape(label.name)} {_percent(label.confidence)}" for label in labels)


def _flags_line(record: ImageRecord, min_confidence: float) -> str:
    flags = record.flags(min_confidence)
    return ", ".join(f"{escape(flag.name)} {_percent(flag.confidence)}" for flag in flags[:5])


def _text_block(lines: Sequence[str], limit: int = TEXT_LINES_SHOWN) -> str:
    shown = [escape(line.replace("```", "'''")) for line in lines[:limit]]
    more = len(lines) - len(shown)
    body = "```\n" + "\n".join(shown) + "\n```"
    if more > 0:
        body += f"\n_… and {more} more line{'s' if more != 1 else ''} of text_"
    return body


# -- the threaded reply to a message with images ---------------------------------------------


@dataclass(frozen=True)
class ImageOutcome:
    """What the reply says about one image of a message."""

    name: str
    file_id: str
    result: IngestResult | None = None
    record: ImageRecord | None = None
    error: str | None = None  # words a person understands; set when the image failed
    duplicate_of: SightingRecord | None = None  # an earlier post of a near-duplicate the channel may see

    def flagged(self, min_confidence: float) -> bool:
        return self.record is not None and self.record.is_flagged(min_confidence)

    @property
    def failed(self) -> bool:
        return self.record is None or self.record.status == "failed"


def _outcome_text(outcome: ImageOutcome, *, label_min: float, moderation_min: float,
                  moderation_channel: bool) -> str:
    name = f"*{escape(outcome.name)}*"
    record = outcome.record
    if outcome.failed:
        reason = outcome.error or (record.failure_reason if record else None) or messages.analysis_failed_generic()
        return f":x: {name}\n{escape(reason)}"
    assert record is not None
    parts = [f"{name}  ·  result `#{record.id}`", f"*Labels:* {_labels_line(record, label_min)}"]
    if record.people:
        parts.append(f"*People:* {record.people}")
    lines = shown_lines(record.lines, record.sensitive)
    if lines:
        parts.append(f"*Text found ({len(lines)} line{'s' if len(lines) != 1 else ''}):*\n{_text_block(lines)}")
    else:
        parts.append("*Text found:* none")
    looks = _looks_line(record)
    if looks:
        parts.append(looks)
    if outcome.duplicate_of is not None:
        parts.append(_duplicate_line(outcome.duplicate_of))
    hidden = hidden_kinds(record)
    if hidden:
        parts.append(f":rotating_light: *Sensitive data:* {escape(messages.sensitive_warning(hidden))}")
    personal = [f for f in record.sensitive if not f.hides_text]
    if personal:
        parts.append("*Personal data:* " + ", ".join(
            f"{escape(messages.kind_name(f.kind))} ({escape(f.masked)})" for f in personal[:5]))
    if record.is_flagged(moderation_min):
        note = messages.moderation_flagged() if moderation_channel else messages.moderation_flagged_no_channel()
        parts.append(f":warning: *Flagged:* {_flags_line(record, moderation_min)}. {note}")
    else:
        parts.append("*Moderation:* nothing flagged")
    return "\n".join(parts)


def _outcome_fallback(outcome: ImageOutcome, *, label_min: float, moderation_min: float) -> str:
    record = outcome.record
    if outcome.failed:
        reason = outcome.error or (record.failure_reason if record else None) or messages.analysis_failed_generic()
        return f"{escape(outcome.name)}: failed: {escape(reason)}"
    assert record is not None
    labels = ", ".join(f"{escape(label.name)} {_percent(label.confidence)}"
                       for label in record.top_labels(label_min, LABELS_SHOWN)) or "no labels"
    text = " / ".join(escape(line) for line in shown_lines(record.lines, record.sensitive)[:5])
    verdict = f"flagged ({_flags_line(record, moderation_min)})" if record.is_flagged(moderation_min) else "not flagged"
    hidden = hidden_kinds(record)
    warning = f"; sensitive data: {escape(messages.sensitive_warning(hidden))}" if hidden else ""
    return (f"{escape(outcome.name)}: {labels}" + (f"; text: {text}" if text else "")
            + f"; {verdict}{warning}; result #{record.id}")


_SWATCHES = {
    "red": ":large_red_square:", "pink": ":large_purple_square:", "purple": ":large_purple_square:",
    "blue": ":large_blue_square:", "light blue": ":large_blue_square:", "teal": ":large_green_square:",
    "green": ":large_green_square:", "yellow": ":large_yellow_square:", "orange": ":large_orange_square:",
    "brown": ":large_brown_square:", "black": ":black_large_square:", "white": ":white_large_square:",
    "grey": ":white_square:",
}
COLORS_SHOWN = 5


def _looks_line(record: ImageRecord) -> str:
    """``*Colours:* 🟩 teal 62% · ⬜ white 20%`` and, when it is poor, the quality."""
    properties = record.properties
    if properties is None:
        return ""
    colours = " · ".join(
        f"{_SWATCHES.get(c.simplified_color, ':white_square:')} {escape(c.css_color)} {c.pixel_percent:.0f}%"
        for c in properties.dominant_colors[:COLORS_SHOWN])
    line = f"*Colours:* {colours}" if colours else ""
    flags = record.quality_flags
    if flags:
        words = [messages.quality_flag(flag, width=record.width or 0, height=record.height or 0) for flag in flags]
        line += ("\n" if line else "") + f":warning: *Quality:* {escape('; '.join(words))}"
    return line


def _duplicate_line(earlier: SightingRecord) -> str:
    where = link(earlier.permalink, "posted before") if earlier.permalink else "posted before"
    return (f":repeat: *Looks like a picture {where}* in <#{earlier.channel_id}> "
            f"on {slack_date(earlier.seen_at)}.")


def hidden_kinds(record: ImageRecord) -> list[str]:
    """The kinds of secret (and card data) an image shows: what the thread is warned about."""
    return list(dict.fromkeys(f.kind for f in record.sensitive if f.hides_text))


def security_notice(record: ImageRecord, *, channel_id: str, user_id: str | None,
                    permalink: str | None) -> tuple[str, list[Block]]:
    """The IMGBOT_SECURITY_CHANNEL notice: a link and the kinds, no image and no value."""
    text = messages.security_notice(hidden_kinds(record), channel_id, user_id)
    where = link(permalink, "Open the message") if permalink else "The message has no link."
    return truncate(text, MAX_FALLBACK_TEXT), [section(f":rotating_light: {text}\n{where}  ·  result `#{record.id}`")]


def image_reply(outcomes: Sequence[ImageOutcome], *, label_min_confidence: float,
                moderation_min_confidence: float, moderation_channel: bool = False) -> tuple[str, list[Block]]:
    """One reply for all the images of one message: (plain-text fallback, blocks)."""
    blocks: list[Block] = []
    room = MAX_BLOCKS - 1  # keep one for the "more images" note
    for index, outcome in enumerate(outcomes):
        if len(blocks) + 2 > room and index < len(outcomes):
            rest = outcomes[index:]
            ids = ", ".join(f"#{o.record.id}" for o in rest if o.record is not None and not o.failed)
            blocks.append(context(f"… and {len(rest)} more image{'s' if len(rest) != 1 else ''}"
                                  + (f" (results {ids})" if ids else "") + ". Use /imgsearch to see them."))
            break
        if index:
            blocks.append(divider())
        blocks.append(section(_outcome_text(
            outcome, label_min=label_min_confidence, moderation_min=moderation_min_confidence,
            moderation_channel=moderation_channel,
        )))
    fallback = "\n".join(
        _outcome_fallback(o, label_min=label_min_confidence, moderation_min=moderation_min_confidence)
        for o in outcomes
    )
    return truncate(fallback, MAX_FALLBACK_TEXT), fit_blocks(blocks)


# -- /imgsearch ------------------------------------------------------------------------------

def _shown_snippet(hit: SearchHit) -> str:
    """The matched line as a reply shows it, masked with the image's own findings where it is one of its lines."""
    assert hit.snippet is not None
    lines = hit.image.lines
    for line, shown in zip(lines, shown_lines(lines, hit.image.sensitive), strict=True):
        if line.text == hit.snippet:
            return shown
    return shown_text(hit.snippet)


def _hit_text(hit: SearchHit, label_min: float, moderation_min: float) -> str:
    record = hit.image
    sighting = hit.sighting
    name = sighting.name if sighting else f"image {record.id}"
    title = link(sighting.permalink, name) if sighting and sighting.permalink else escape(name)
    parts = [f"*{title}*  ·  result `#{record.id}`"]
    if record.status == "failed":
        parts.append(f":x: {escape(record.failure_reason or messages.analysis_failed_generic())}")
    else:
        parts.append(f"*Labels:* {_labels_line(record, label_min)}")
    if hit.snippet:
        parts.append("> " + escape(truncate(_shown_snippet(hit).replace("\n", " "), 300, "…")))
    where: list[str] = []
    if sighting is not None:
        where.append(slack_date(sighting.seen_at))
        if sighting.channel_id:
            where.append(f"in <#{sighting.channel_id}>")
    if record.is_flagged(moderation_min):
        flag = f":warning: flagged ({_flags_line(record, moderation_min)})"
        if record.moderation_decision is not None:
            decision = record.moderation_decision
            flag += f", {decision.decision} by <@{decision.user_id}>"
        where.append(flag)
    if where:
        parts.append(" ".join(where[:2]) + (("  ·  " + "  ·  ".join(where[2:])) if where[2:] else ""))
    return "\n".join(parts)


def _thumbnail(hit: SearchHit) -> Block | None:
    sighting = hit.sighting
    if sighting is None or not sighting.file_id or (hit.image.format or "").upper() not in SLACK_FILE_FORMATS:
        return None
    labels = ", ".join(label.name for label in hit.image.top_labels(0.0, 3)) or "image"
    return {
        "type": "image",
        "slack_file": {"id": sighting.file_id},
        "alt_text": truncate(labels, MAX_ALT_TEXT, "…"),
    }


def more_button_value(query: str, page: int) -> str | None:
    value = json.dumps({"q": query, "p": page}, separators=(",", ":"))
    return value if len(value) <= MAX_BUTTON_VALUE else None


def parse_more_button_value(value: str) -> tuple[str, int]:
    data = json.loads(value)
    return str(data["q"]), max(1, int(data["p"]))


def search_page(page: SearchPage, *, label_min_confidence: float,
                moderation_min_confidence: float) -> tuple[str, list[Block]]:
    """The ephemeral answer to /imgsearch: one entry per hit, a thumbnail where Slack allows, a More button."""
    query = escape(page.query) if page.query.strip() else "everything"
    unseen = [context(f"No picture {image_id} in the channels you are in: `like:{image_id}` and "
                      f"`dupes:{image_id}` match nothing.") for image_id in page.unseen[:3]]
    if not page.hits:
        return messages.search_no_results(page.query or "everything"), [
            section(f"No pictures match `{query}` in the channels you are in."),
            *unseen,
            context("Try `/imgsearch help` for examples."),
        ]
    first = (page.page - 1) * page.per_page + 1
    last = first + len(page.hits) - 1
    summary = f"{page.total_text} picture{'s' if page.total != 1 else ''} match `{query}`, showing {first}–{last}."
    blocks: list[Block] = [section(summary), *unseen]
    for hit in page.hits:
        entry = [divider(), section(_hit_text(hit, label_min_confidence, moderation_min_confidence))]
        thumb = _thumbnail(hit)
        if thumb is not None:
            entry.append(thumb)
        if len(blocks) + len(entry) > MAX_BLOCKS - 2:
            break
        blocks.extend(entry)
    value = more_button_value(page.query, page.page + 1) if page.has_more else None
    if value is not None:
        blocks.append({
            "type": "actions",
            "elements": [{
                "type": "button", "action_id": ACTION_MORE, "value": value,
                "text": {"type": "plain_text", "text": "More", "emoji": True},
            }],
        })
    fallback = summary + " " + "; ".join(
        f"#{hit.image.id} {escape(hit.sighting.name if hit.sighting else '')}".strip() for hit in page.hits
    )
    return truncate(fallback, MAX_FALLBACK_TEXT), blocks


# -- /imgreport ------------------------------------------------------------------------------


def report_summary(data: ReportData, *, requested_by: str | None = None, label_limit: int = 10
                   ) -> tuple[str, list[Block]]:
    decided = [i.moderation_decision.decision for i in data.flagged if i.moderation_decision is not None]
    review = ""
    if decided:
        review = (f" ({decided.count('confirmed')} confirmed, {decided.count('dismissed')} dismissed by moderators"
                  f", {len(data.flagged) - len(decided)} awaiting review)")
    counts = (
        f"*Images analysed:* {len(data.analysed)}\n"
        f"*Images with text:* {len(data.with_text)}\n"
        f"*Images with people:* {len(data.with_people)} ({sum(i.people for i in data.with_people)} people)\n"
        f"*Flagged images:* {len(data.flagged)}{review}\n"
        f"*Showing secrets or card numbers:* {sum(1 for i in data.analysed if hidden_kinds(i))} "
        f"(personal data: {sum(1 for i in data.analysed if any(not f.hides_text for f in i.sensitive))})\n"
        f"*Failures:* {len(data.failed)}"
    )
    top = data.top_labels[:label_limit]
    labels = "\n".join(f"• {escape(item.name)}: {item.images}" for item in top) or "none yet"
    query = escape(data.query) if data.query.strip() else "everything"
    about = f"Query: `{query}`"
    if requested_by:
        about += f"  ·  requested by <@{requested_by}>"
    about += f"  ·  generated {slack_date(data.generated_at)}"
    blocks = [
        header(data.title),
        section(counts),
        section(f"*Top labels* (images)\n{labels}"),
        context(about + "  ·  only channels the requester is in"),
    ]
    fallback = (
        f"{data.title}: {len(data.analysed)} images analysed, {len(data.with_text)} with text, "
        f"{len(data.flagged)} flagged, {len(data.failed)} failed. Top labels: "
        + (", ".join(f"{escape(item.name)} ({item.images})" for item in top) or "none")
    )
    return truncate(fallback, MAX_FALLBACK_TEXT), blocks


# -- moderation ------------------------------------------------------------------------------


def moderation_notice(record: ImageRecord, *, channel_id: str, permalink: str | None, file_name: str,
                      moderation_min_confidence: float) -> tuple[str, list[Block]]:
    flags = _flags_line(record, moderation_min_confidence)
    where = link(permalink, "the message") if permalink else "a message"
    text = (f":warning: *{escape(file_name)}*, posted in <#{channel_id}>, was flagged: {flags}.\n"
            f"See {where}  ·  result `#{record.id}`")
    blocks: list[Block] = [
        section(text),
        {
            "type": "actions",
            "block_id": f"moderation_{record.id}",
            "elements": [
                {"type": "button", "action_id": ACTION_CONFIRM, "value": str(record.id), "style": "danger",
                 "text": {"type": "plain_text", "text": "Confirm", "emoji": True}},
                {"type": "button", "action_id": ACTION_DISMISS, "value": str(record.id),
                 "text": {"type": "plain_text", "text": "Dismiss", "emoji": True}},
            ],
        },
    ]
    fallback = f"{escape(file_name)} posted in <#{channel_id}> was flagged: {flags}. Result #{record.id}."
    return truncate(fallback, MAX_FALLBACK_TEXT), blocks


def home_view(*, summary: Any, channels: Sequence[tuple[str, str]], show_review: bool,
              moderation_channel: str | None) -> Block:
    """The App Home of one user: their channels' counts and modes, never another channel's."""
    week = f"{summary.analysed_this_week:,}" + ("+" if summary.week_is_estimate else "")
    rows: list[Block] = [
        header("imgbot"),
        section(f"*{summary.analysed:,}* images analysed in your channels, *{week}* in the last 7 days."),
    ]
    if summary.top_labels:
        labels = ", ".join(f"{escape(name)} ({count:,})" for name, count in summary.top_labels)
        rows.append(section(f"*Top labels:* {labels}"))
    if show_review:
        where = f" in <#{moderation_channel}>" if moderation_channel else ""
        rows.append(section(f"*{summary.awaiting_review:,}* flagged images await review{where}."))
    rows.append(divider())
    if channels:
        listed = "\n".join(f"• <#{channel_id}>: {mode}" for channel_id, mode in channels)
        rows.append(section(f"*Your channels with imgbot* (change with `/imgbot mode …` there):\n{listed}"))
    else:
        rows.append(section("imgbot is in none of your channels yet: `/invite @imgbot` in one."))
    rows.append(context("Try `/imgsearch label:dog last 7d`, `/imgsearch text:\"50% off\"`, "
                        "`/imgsearch unsafe in:#marketing` or `/imgreport this month`."))
    return {"type": "home", "blocks": rows}


def moderation_decided(previous_blocks: Sequence[Block], *, decision: str, user_id: str,
                       decided_at: datetime) -> list[Block]:
    """The notice after a moderator's click: the buttons give way to who decided and when."""
    kept = [dict(block) for block in previous_blocks if block.get("type") != "actions"]
    kept.append(context(f"{messages.moderation_decision(decision, user_id)} {slack_date(decided_at)}"))
    return kept


def plain(text: str) -> tuple[str, list[Block]]:
    """A short message: the same words as fallback and as one section."""
    return truncate(text, MAX_FALLBACK_TEXT), [section(text)]
