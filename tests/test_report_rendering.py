"""Reports rendered from hand-built ``ReportData``: Markdown, CSV and JSON, and what they escape."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from bot.core.records import (
    ImageRecord,
    LabelCount,
    ModerationDecisionRecord,
    ReportData,
    SightingRecord,
)
from bot.core.report import CSV_COLUMNS, FORMATS, render_report
from bot.core.types import BoundingBox, Finding, Label, ModerationLabel, TextDetection

BOX = BoundingBox(0.1, 0.1, 0.5, 0.5)


def line(i: int, text: str) -> TextDetection:
    return TextDetection(i, "LINE", text, 99.0, BOX)


def sighting(i: int, *, day: int, channel: str = "C0123", name: str = "general", permalink: str | None = None,
             user: str | None = "alice", deleted: bool = False) -> SightingRecord:
    return SightingRecord(
        id=i, source_kind="slack", name=f"F{i}", seen_at=datetime(2026, 1, day, 12, tzinfo=UTC), team_id="T1",
        channel_id=channel, channel_name=name, user_id="U1", user_name=user, file_id=f"F{i}",
        message_ts="1.0", permalink=permalink, deleted=deleted,
    )


def image(i: int, **fields) -> ImageRecord:  # type: ignore[no-untyped-def]
    base = dict(
        id=i, sha256=f"{i:064x}", status="done", byte_size=1000, format="PNG", width=160, height=120,
        storage_key=None, storage_uri=None, created_at=datetime(2026, 1, 1, tzinfo=UTC),
        analyzed_at=datetime(2026, 1, 1, tzinfo=UTC), provider="fake",
    )
    base.update(fields)
    return ImageRecord(**base)  # type: ignore[arg-type]


CAT = image(
    1,
    labels=(Label("Cat", 97.14, ("Animal",)), Label("Animal", 97.14), Label("Whisker", 60.0)),
    text=(line(0, "50% OFF"), TextDetection(1, "WORD", "50%", 99.0, BOX, parent_id=0), line(2, "today only")),
    sightings=(sighting(10, day=2, permalink="https://example.slack.com/archives/C0123/p1"),
               sighting(11, day=5, channel="C0999", name="random", deleted=True)),
)
FLAGGED = image(
    2,
    labels=(Label("Weapon", 88.0),),
    moderation=(ModerationLabel("Graphic Violence", 92.5, "Violence", 2), ModerationLabel("Rude Gestures", 40.0)),
    sightings=(sighting(20, day=3),),
    moderation_decision=ModerationDecisionRecord("confirmed", "U0MOD", datetime(2026, 1, 4, tzinfo=UTC)),
)
BROKEN = image(3, status="failed", format=None, width=None, height=None, analyzed_at=None,
               failure_reason="Not an image we can read.", sightings=(sighting(30, day=1),))


def report(*images: ImageRecord, query: str = "label:animal", title: str = "Weekly images",
           top: tuple[LabelCount, ...] = (LabelCount("Cat", 1), LabelCount("Animal", 1)),
           note: str | None = None, duplicate_groups: tuple[tuple[int, ...], ...] = ()) -> ReportData:
    return ReportData(
        title=title, query=query, generated_at=datetime(2026, 1, 7, 9, 30, tzinfo=UTC),
        label_min_confidence=75.0, moderation_min_confidence=60.0, images=images, top_labels=top, note=note,
        duplicate_groups=duplicate_groups,
    )


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- formats ---------------------------------------------------------------------------------


def test_markdown_is_the_default_format():
    data = report(CAT)
    assert render_report(data, "md") == render_report(data)
    assert FORMATS == ("md", "csv", "json")


def test_an_unknown_format_lists_the_known_ones():
    with pytest.raises(ValueError, match="md, csv, json"):
        render_report(report(CAT), "xlsx")


# -- Markdown --------------------------------------------------------------------------------


def test_markdown_has_title_time_query_and_totals():
    text = render_report(report(CAT, FLAGGED, BROKEN))
    assert text.startswith("# Weekly images\n")
    assert "Generated: 2026-01-07T09:30:00+00:00" in text
    assert "Query: label:animal" in text
    assert "Images: 3 (2 analysed, 1 failed)" in text


def test_markdown_leaves_out_the_query_line_when_there_is_none():
    assert "Query:" not in render_report(report(CAT, query=""))


def test_markdown_top_labels_is_a_table():
    text = render_report(report(CAT))
    assert "## Top labels\n\n| Label | Images |\n| --- | ---: |\n| Cat | 1 |\n| Animal | 1 |" in text


def test_markdown_sections_come_in_order():
    text = render_report(report(CAT, FLAGGED, BROKEN))
    headings = [h for h in text.splitlines() if h.startswith("## ")]
    assert headings == ["## Top labels", "## Images with text", "## Flagged images", "## Sensitive data",
                        "## Colours", "## Low quality", "## Near-duplicates", "## Failures", "## Images"]


def test_markdown_lists_images_with_text():
    text = render_report(report(CAT, FLAGGED))
    section = text.split("## Images with text", 1)[1].split("##", 1)[0]
    assert "1 image(s) contain text." in section
    assert "Image 1: “50% OFF” / “today only”" in section


def test_markdown_flagged_images_show_categories_and_the_moderators_decision():
    section = render_report(report(CAT, FLAGGED)).split("## Flagged images", 1)[1].split("##", 1)[0]
    assert "Image 2: Graphic Violence (under Violence) 92.5" in section
    assert "Rude Gestures" not in section  # below the moderation threshold
    assert "confirmed by U0MOD" in section
    assert "Image 1" not in section


def test_markdown_failures_give_the_reason():
    section = render_report(report(CAT, BROKEN)).split("## Failures", 1)[1].split("##", 1)[0]
    assert "Image 3" in section and "Not an image we can read." in section


def test_markdown_image_entry_has_source_link_top_labels_and_text_lines():
    entry = render_report(report(CAT)).split("### Image 1", 1)[1]
    assert "[slack:C0123 (#general)](https://example.slack.com/archives/C0123/p1) by alice" in entry
    assert "seen 2026-01-02T12:00:00+00:00" in entry  # the newest *live* sighting, not the deleted one
    assert "Labels: Cat (97.1), Animal (97.1)" in entry
    assert "Whisker" not in entry  # below the label threshold
    assert "  - 50% OFF\n  - today only" in entry
    assert "  - 50%\n" not in entry  # words are not lines


def test_markdown_lists_only_analysed_images_under_images():
    text = render_report(report(CAT, BROKEN))
    assert "### Image 1" in text and "### Image 3" not in text


def test_markdown_escapes_pipes_and_newlines_in_user_data():
    weird = image(4, labels=(Label("Pipe | Label\nwith newline", 99.0),), text=(line(0, "a | b\nc"),),
                  sightings=(sighting(40, day=2),))
    text = render_report(report(weird, top=(LabelCount("Pipe | Label\nwith newline", 1),)))
    assert "| Pipe \\| Label with newline | 1 |" in text
    assert "  - a \\| b c" in text


def test_markdown_neutralises_links_and_html_in_user_data():
    sneaky = image(5, text=(line(0, "[click](https://evil.example) <script>x</script> **bold**"),),
                   sightings=(sighting(50, day=2, name="x](https://evil.example)"),))
    text = render_report(report(sneaky, title="Report <b>now</b>"))
    assert "[click](https" not in text
    assert "\\[click\\](https://evil.example)" in text
    assert "<script>" not in text and "<b>" not in text
    assert "\\*\\*bold\\*\\*" in text


def test_markdown_only_links_http_permalinks():
    odd = image(6, sightings=(sighting(60, day=2, permalink="javascript:alert(1)"),))
    text = render_report(report(odd))
    assert "javascript" not in text
    assert "Source: slack:C0123 (#general) by alice" in text


def test_markdown_shows_the_note_when_images_were_capped():
    assert "Note: Showing the newest 1 of 2" in render_report(report(CAT, note="Showing the newest 1 of 2"))


def test_markdown_says_so_when_there_is_nothing():
    text = render_report(report(top=()))
    assert "Images: 0 (0 analysed, 0 failed)" in text
    assert "No labels at or above 75% confidence." in text
    assert "No analysed images." in text


# -- CSV -------------------------------------------------------------------------------------


def test_csv_has_the_documented_header_and_one_row_per_image():
    text = render_report(report(CAT, FLAGGED, BROKEN), "csv")
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert CSV_COLUMNS == ("id", "sha256", "status", "source", "channel", "user", "seen_at", "format", "width",
                           "height", "labels", "people", "text", "flagged", "moderation", "decision", "sensitive_data",
                           "colors", "quality", "duplicate_group", "failure_reason")
    assert [r["id"] for r in rows(text)] == ["1", "2", "3"]


def test_csv_row_contents():
    cat, flagged, broken = rows(render_report(report(CAT, FLAGGED, BROKEN), "csv"))
    assert cat["source"] == "slack:C0123"
    assert cat["channel"] == "general" and cat["user"] == "alice"
    assert cat["seen_at"] == "2026-01-02T12:00:00+00:00"
    assert cat["labels"] == "Cat (97.1); Animal (97.1)"
    assert cat["text"] == "50% OFF | today only"
    assert cat["flagged"] == "no" and cat["moderation"] == "" and cat["decision"] == ""
    assert flagged["flagged"] == "yes"
    assert flagged["moderation"] == "Graphic Violence"
    assert flagged["decision"] == "confirmed"
    assert broken["status"] == "failed" and broken["failure_reason"] == "Not an image we can read."
    assert broken["format"] == "" and broken["width"] == ""


def test_csv_guards_against_spreadsheet_formulas():
    evil = image(7, labels=(Label("=HYPERLINK(\"http://x\")", 99.0),),
                 text=(line(0, "+1 555"), line(1, "ok")),
                 sightings=(sighting(70, day=2, name="-cmd", user="@everyone"),),
                 failure_reason=None)
    (row,) = rows(render_report(report(evil), "csv"))
    assert row["labels"].startswith("'=HYPERLINK")
    assert row["text"] == "'+1 555 | ok"
    assert row["channel"] == "'-cmd"
    assert row["user"] == "'@everyone"


def test_csv_keeps_one_record_per_line_even_with_newlines_in_data():
    multi = image(8, status="failed", failure_reason="first line\nsecond line", sightings=(sighting(80, day=2),))
    text = render_report(report(multi), "csv")
    assert len(text.splitlines()) == 2
    assert rows(text)[0]["failure_reason"] == "first line second line"


def test_csv_quotes_commas_and_quotes():
    tricky = image(9, text=(line(0, 'say "hi", then go'),), sightings=(sighting(90, day=2),))
    assert rows(render_report(report(tricky), "csv"))[0]["text"] == 'say "hi", then go'


# -- JSON ------------------------------------------------------------------------------------


def test_json_has_totals_top_labels_and_full_images():
    document = json.loads(render_report(report(CAT, FLAGGED, BROKEN), "json"))
    assert document["title"] == "Weekly images"
    assert document["query"] == "label:animal"
    assert document["generated_at"] == "2026-01-07T09:30:00+00:00"
    assert document["totals"] == {"images": 3, "analysed": 2, "failed": 1, "with_text": 1, "flagged": 1,
                                  "with_people": 0, "people": 0}
    assert document["top_labels"] == [{"name": "Cat", "images": 1}, {"name": "Animal", "images": 1}]
    assert [i["id"] for i in document["images"]] == [1, 2, 3]
    assert document["images"][0] == CAT.to_json(label_min_confidence=75.0, moderation_min_confidence=60.0)
    assert "note" not in document


def test_json_includes_the_note_when_there_is_one():
    assert json.loads(render_report(report(CAT, note="capped"), "json"))["note"] == "capped"


def test_json_keeps_unicode_readable():
    text = render_report(report(image(11, text=(line(0, "Crème brûlée"),), sightings=(sighting(1, day=2),))),
                         "json")
    assert "Crème brûlée" in text


def test_a_capped_search_total_reads_as_at_least():
    from bot.core.records import SearchPage

    assert SearchPage("cat", (), 1, 10, 1000, total_is_estimate=True).total_text == "1,000+"
    assert SearchPage("cat", (), 1, 10, 12).total_text == "12"


# -- sensitive data ----------------------------------------------------------------------------

SCREENSHOT = image(
    4, text=(line(0, "key AKIA…MPLE"), line(1, "sales@acme.com")),
    sightings=(sighting(40, day=6, permalink="https://example.slack.com/archives/C0123/p4"),),
    sensitive=(Finding("secret", "aws-access-key", "AKIA…MPLE", ((0, 0, 0),), (BOX,)),
               Finding("pii", "email", "s•••@acme.com", ((1, 0, 0),))),
)


def test_every_format_has_the_sensitive_data_with_masks_and_where_it_was_posted():
    markdown = render_report(report(CAT, SCREENSHOT)).split("## Sensitive data", 1)[1].split("\n## ", 1)[0]
    csv_row = next(row for row in rows(render_report(report(CAT, SCREENSHOT), "csv")) if row["id"] == "4")
    document = json.loads(render_report(report(CAT, SCREENSHOT), "json"))

    assert "| 4 | secret: aws-access-key | AKIA…MPLE |" in markdown
    assert "example.slack.com/archives/C0123/p4" in markdown
    assert "s•••@acme.com" in markdown
    assert csv_row["sensitive_data"] == "secret:aws-access-key AKIA…MPLE; pii:email s•••@acme.com"
    assert [(f["image_id"], f["kind"], f["masked"]) for f in document["sensitive_data"]] == [
        (4, "aws-access-key", "AKIA…MPLE"), (4, "email", "s•••@acme.com")]
    assert document["sensitive_data"][0]["channel"] == "general"


def test_a_report_without_sensitive_data_says_so():
    section = render_report(report(CAT)).split("## Sensitive data", 1)[1].split("\n## ", 1)[0]

    assert "None found." in section



# -- how the images look -----------------------------------------------------------------------

def looking(i: int, colour: str, phash: int, size: tuple[int, int] = (2000, 1500), sharpness: float = 80.0
            ) -> ImageRecord:
    from bot.core.types import DominantColor, ImageProperties

    properties = ImageProperties(brightness=60.0, sharpness=sharpness, contrast=40.0, dominant_colors=(
        DominantColor(0, 128, 128, "#008080", "teal", colour, 70.0),
        DominantColor(250, 250, 250, "#fafafa", "snow", "white", 5.0)))
    return image(i, width=size[0], height=size[1], properties=properties, phash=phash,
                 sightings=(sighting(100 + i, day=2),))


def test_reports_count_colours_list_low_quality_images_and_group_near_duplicates():
    images = (looking(5, "teal", 0b1011), looking(6, "teal", 0b1010), looking(7, "red", -1, size=(640, 480)),
              looking(8, "teal", 0x0F0F0F0F0F0F0F0F, sharpness=5.0))
    data = report(*images, duplicate_groups=((5, 6),))  # found with the data (tests/test_embedding.py)
    markdown = render_report(data)
    csv_rows = {row["id"]: row for row in rows(render_report(data, "csv"))}
    document = json.loads(render_report(data, "json"))

    colours = markdown.split("## Colours", 1)[1].split("\n## ", 1)[0]
    assert "| teal | 3 |" in colours and "| red | 1 |" in colours and "white" not in colours
    low = markdown.split("## Low quality", 1)[1].split("\n## ", 1)[0]
    assert "Image 7: small (640×480)" in low and "Image 8: blurry" in low and "Image 5" not in low
    assert "- Images 5, 6" in markdown.split("## Near-duplicates", 1)[1]
    assert csv_rows["6"]["duplicate_group"] == "5" and csv_rows["7"]["duplicate_group"] == ""
    assert csv_rows["5"]["colors"] == "teal 70%" and csv_rows["7"]["quality"] == "small"
    assert document["duplicate_groups"] == [[5, 6]]
    assert {"name": "teal", "images": 3} in document["colors"]
