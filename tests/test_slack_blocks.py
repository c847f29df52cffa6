"""Block Kit: everything read from an image is escaped, and every message stays within Slack's limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.core.records import (
    ImageRecord,
    LabelCount,
    ModerationDecisionRecord,
    ReportData,
    SearchHit,
    SearchPage,
    SightingRecord,
)
from bot.core.types import BoundingBox, Label, LabelInstance, ModerationLabel, TextDetection
from bot.slack import blocks
from bot.slack.blocks import ImageOutcome

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def record(id: int = 1, *, labels: tuple[Label, ...] = (), lines: tuple[str, ...] = (),
           moderation: tuple[ModerationLabel, ...] = (), status: str = "done", failure: str | None = None,
           decision: ModerationDecisionRecord | None = None, fmt: str = "PNG") -> ImageRecord:
    text = tuple(TextDetection(n, "LINE", line, 99.0, BoundingBox(0, 0.1 * n, 1, 0.1)) for n, line in enumerate(lines))
    sighting = SightingRecord(id=id, source_kind="slack", name=f"img{id}.png", seen_at=NOW, channel_id="C1",
                              file_id=f"F{id}", message_ts="1.1", permalink=f"https://x.slack.com/archives/C1/p{id}")
    return ImageRecord(id=id, sha256="a" * 64, status=status, byte_size=10, format=fmt, width=10, height=10,
                       storage_key=None, storage_uri=None, created_at=NOW, labels=labels, text=text,
                       moderation=moderation, failure_reason=failure, sightings=(sighting,),
                       moderation_decision=decision)


def all_text(message_blocks: list[dict]) -> str:
    return json.dumps(message_blocks)


def sections(message_blocks: list[dict]) -> list[str]:
    return [b["text"]["text"] for b in message_blocks if b["type"] == "section"]


def reply(*outcomes: ImageOutcome, moderation_channel: bool = False) -> tuple[str, list[dict]]:
    return blocks.image_reply(outcomes, label_min_confidence=75, moderation_min_confidence=60,
                              moderation_channel=moderation_channel)


def test_the_reply_counts_the_people_it_shows_and_says_nothing_of_people_when_there_are_none() -> None:
    boxes = tuple(LabelInstance(BoundingBox(0.2 * n, 0.1, 0.15, 0.8), 90.0) for n in range(3))
    crowd = record(8, labels=(Label("Person", 97.0, instances=boxes),))
    _, crowd_blocks = reply(ImageOutcome("team.jpg", "F1", record=crowd))
    _, cat_blocks = reply(ImageOutcome("cat.jpg", "F2", record=record(9, labels=(Label("Cat", 95.0),))))
    assert "*People:* 3" in sections(crowd_blocks)[0]
    assert "People" not in sections(cat_blocks)[0]


def test_escape_turns_the_three_control_characters_into_entities() -> None:
    assert blocks.escape("<!channel> & <@U1> <#C1> >") == "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;#C1&gt; &gt;"


def test_nothing_read_from_an_image_can_ping_or_link() -> None:
    evil = ("<!channel>", "<!here|here>", "<@U0BOB>", "<https://evil.example|click>", "<!subteam^S1>")
    image = record(labels=(Label("<!everyone>", 99.0),), lines=evil,
                   moderation=(ModerationLabel("<!here>", 90.0),))
    text, message_blocks = reply(ImageOutcome("<@U1>.png", "F1", record=image), moderation_channel=True)
    for produced in (text, all_text(message_blocks)):
        assert "<!" not in produced and "<@" not in produced and "<https" not in produced
    assert "&lt;!channel&gt;" in sections(message_blocks)[0]


def test_the_reply_shows_labels_text_verdict_and_result_id() -> None:
    image = record(7, labels=(Label("Cat", 98.4), Label("Pet", 90.2), Label("Blurry", 40.0)), lines=("HELLO",))
    text, message_blocks = reply(ImageOutcome("cat.png", "F1", record=image))
    body = sections(message_blocks)[0]
    assert "Cat 98%" in body and "Pet 90%" in body and "Blurry" not in body
    assert "HELLO" in body and "nothing flagged" in body and "#7" in body
    assert "Cat 98%" in text and "result #7" in text


def test_a_flagged_image_says_so() -> None:
    image = record(labels=(Label("Person", 99.0),), moderation=(ModerationLabel("Violence", 88.0),))
    text, message_blocks = reply(ImageOutcome("x.png", "F1", record=image), moderation_channel=True)
    assert "Flagged" in sections(message_blocks)[0] and "Violence 88%" in text
    assert "moderator" in sections(message_blocks)[0]


def test_a_failed_image_says_why_in_plain_words() -> None:
    failed = record(status="failed", failure="The file is not a picture imgbot can read.")
    _, message_blocks = reply(ImageOutcome("doc.png", "F1", record=failed),
                              ImageOutcome("gone.png", "F2", error="The file is no longer available in Slack."))
    body = "\n".join(sections(message_blocks))
    assert "not a picture" in body and "no longer available" in body


def test_long_text_is_cut_with_a_note_and_sections_stay_under_3000_characters() -> None:
    image = record(lines=tuple("x" * 400 + f" line {n} & <b>" for n in range(200)))
    text, message_blocks = reply(ImageOutcome("wall.png", "F1", record=image))
    for body in sections(message_blocks):
        assert len(body) <= blocks.MAX_SECTION_TEXT
        assert body.count("```") % 2 == 0  # no code block left open
    assert "truncated" in sections(message_blocks)[0] or "more lines" in sections(message_blocks)[0]
    assert len(text) <= blocks.MAX_FALLBACK_TEXT


def test_truncation_never_cuts_an_escape_entity_in_half() -> None:
    text = "a" * 2990 + "&amp;&lt;&gt;" * 10
    cut = blocks.truncate(text, 3000)
    assert len(cut) <= 3000 and not cut.replace("… (truncated)", "").endswith(("&", "&a", "&am", "&l", "&lt"))


def test_a_message_with_many_images_stays_under_50_blocks_and_mentions_the_rest() -> None:
    outcomes = [ImageOutcome(f"img{n}.png", f"F{n}", record=record(n, labels=(Label("Tree", 90.0),)))
                for n in range(1, 41)]
    _, message_blocks = reply(*outcomes)
    assert len(message_blocks) <= blocks.MAX_BLOCKS
    assert "more image" in all_text(message_blocks)


def search_page(hits: list[SearchHit], total: int | None = None, page: int = 1) -> SearchPage:
    return SearchPage(query="cat <!channel>", hits=tuple(hits), page=page, per_page=10, total=total or len(hits))


def test_search_results_have_permalink_thumbnail_date_channel_and_snippet() -> None:
    image = record(3, labels=(Label("Cat", 97.0),), lines=("ADOPT",), fmt="JPEG")
    hit = SearchHit(image=image, score=1.0, sighting=image.sightings[0], snippet="ADOPT <!here>")
    _, message_blocks = blocks.search_page(search_page([hit]), label_min_confidence=75, moderation_min_confidence=60)
    shown = all_text(message_blocks)
    assert "<https://x.slack.com/archives/C1/p3|img3.png>" in shown
    assert "<#C1>" in shown and "<!date^" in shown and "ADOPT &lt;!here&gt;" in shown
    assert "cat &lt;!channel&gt;" in shown
    assert {"type": "image", "slack_file": {"id": "F3"}, "alt_text": "Cat"} in message_blocks


def test_no_thumbnail_for_formats_slack_cannot_show() -> None:
    image = record(3, labels=(Label("Cat", 97.0),), fmt="WEBP")
    hit = SearchHit(image=image, score=1.0, sighting=image.sightings[0])
    _, message_blocks = blocks.search_page(search_page([hit]), label_min_confidence=75, moderation_min_confidence=60)
    assert not [b for b in message_blocks if b["type"] == "image"]


def test_a_full_page_with_more_stays_within_limits_and_offers_more() -> None:
    hits = [SearchHit(image=r, score=1.0, sighting=r.sightings[0], snippet="s" * 1000)
            for r in (record(n, labels=(Label("Cat", 90.0),), fmt="PNG") for n in range(1, 11))]
    _, message_blocks = blocks.search_page(search_page(hits, total=35), label_min_confidence=75,
                                           moderation_min_confidence=60)
    assert len(message_blocks) <= blocks.MAX_BLOCKS
    actions = [b for b in message_blocks if b["type"] == "actions"]
    assert blocks.parse_more_button_value(actions[0]["elements"][0]["value"]) == ("cat <!channel>", 2)


def test_the_moderators_decision_shows_in_search_results() -> None:
    decision = ModerationDecisionRecord("dismissed", "U0MOD", NOW)
    image = record(labels=(Label("Beach", 90.0),), moderation=(ModerationLabel("Suggestive", 70.0),),
                   decision=decision)
    hit = SearchHit(image=image, score=1.0, sighting=image.sightings[0])
    _, message_blocks = blocks.search_page(search_page([hit]), label_min_confidence=75, moderation_min_confidence=60)
    assert "dismissed by <@U0MOD>" in all_text(message_blocks)


def test_no_results_say_so() -> None:
    text, message_blocks = blocks.search_page(search_page([]), label_min_confidence=75, moderation_min_confidence=60)
    assert "No pictures match" in text and "&lt;!channel&gt;" in all_text(message_blocks)


def test_the_report_summary_counts_what_was_asked() -> None:
    images = (record(1, labels=(Label("Cat", 90.0),), lines=("hi",)),
              record(2, moderation=(ModerationLabel("Violence", 80.0),)),
              record(3, status="failed", failure="x"))
    data = ReportData(title="imgbot report", query="last 7d", generated_at=NOW, label_min_confidence=75,
                      moderation_min_confidence=60, images=images, top_labels=(LabelCount("Cat <b>", 1),))
    text, message_blocks = blocks.report_summary(data, requested_by="U1")
    shown = all_text(message_blocks)
    assert "*Images analysed:* 2" in shown and "*Images with text:* 1" in shown
    assert "*Flagged images:* 1" in shown and "*Failures:* 1" in shown and "Cat &lt;b&gt;: 1" in shown
    assert "*Showing secrets or card numbers:* 0 (personal data: 0)" in shown
    assert message_blocks[0]["type"] == "header" and len(message_blocks[0]["text"]["text"]) <= 150
    assert "2 images analysed" in text


def test_the_moderation_notice_has_confirm_and_dismiss_and_after_a_click_says_who() -> None:
    image = record(9, moderation=(ModerationLabel("Explicit Nudity", 95.0),))
    text, notice = blocks.moderation_notice(image, channel_id="C1", permalink="https://x/p1?thread_ts=1&cid=C1",
                                            file_name="<!channel>.png", moderation_min_confidence=60)
    buttons = [b for b in notice if b["type"] == "actions"][0]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [(blocks.ACTION_CONFIRM, "9"),
                                                               (blocks.ACTION_DISMISS, "9")]
    assert "<https://x/p1?thread_ts=1&amp;cid=C1|the message>" in all_text(notice)
    assert "<!channel>" not in text + all_text(notice)
    decided = blocks.moderation_decided(notice, decision="confirmed", user_id="U0MOD", decided_at=NOW)
    assert not [b for b in decided if b["type"] == "actions"] and "confirmed by <@U0MOD>" in all_text(decided)


def test_the_report_summary_counts_moderators_decisions() -> None:
    flagged = (ModerationLabel("Violence", 80.0),)
    images = (record(1, moderation=flagged, decision=ModerationDecisionRecord("confirmed", "U1", NOW)),
              record(2, moderation=flagged, decision=ModerationDecisionRecord("dismissed", "U1", NOW)),
              record(3, moderation=flagged))
    data = ReportData(title="imgbot report", query="", generated_at=NOW, label_min_confidence=75,
                      moderation_min_confidence=60, images=images, top_labels=())
    _, message_blocks = blocks.report_summary(data)
    assert "*Flagged images:* 3 (1 confirmed, 1 dismissed by moderators, 1 awaiting review)" in all_text(message_blocks)
