"""What the detectors find is masked in lines, words and raw responses before anything is stored."""

from __future__ import annotations

import json
import re

from bot.core.redaction import protect
from bot.core.types import Analysis, BoundingBox, TextDetection

AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CARD = "4111111111111111"


def detections(*lines: str) -> tuple[TextDetection, ...]:
    """Lines with their words, as Rekognition gives them (words after lines, pointing at them)."""
    out: list[TextDetection] = []
    words: list[TextDetection] = []
    next_id = len(lines)
    for line_id, text in enumerate(lines):
        top = 0.1 * line_id
        out.append(TextDetection(line_id, "LINE", text, 99.0, BoundingBox(0.1, top, 0.8, 0.05)))
        cursor = 0
        for word in text.split():
            start = text.index(word, cursor)
            cursor = start + len(word)
            box = BoundingBox(0.1 + 0.8 * start / len(text), top, 0.8 * len(word) / len(text), 0.05)
            words.append(TextDetection(next_id, "WORD", word, 98.0, box, parent_id=line_id))
            next_id += 1
    return (*out, *words)


def analysis(*lines: str) -> Analysis:
    text = detections(*lines)
    raw = {"DetectText": {"TextDetections": [
        {"DetectedText": d.text, "Type": d.kind, "Id": d.id, "Confidence": d.confidence} for d in text]}}
    return Analysis(provider="fake", text=text, raw=raw)


def everything(result: Analysis) -> str:
    return json.dumps([[d.text for d in result.text], result.raw, [f.masked for f in result.sensitive]],
                      ensure_ascii=False)


def compact(text: str) -> str:
    return "".join(text.split()).replace('","', "")


def test_a_key_pair_is_masked_in_lines_words_and_the_raw_response() -> None:
    result = protect(analysis(f"aws_access_key_id = {AWS_KEY_ID}", f"aws_secret_access_key = {AWS_SECRET}"))
    stored = everything(result)

    assert AWS_KEY_ID not in stored and AWS_SECRET not in stored
    assert result.lines[0].text == "aws_access_key_id = AKIA…MPLE"
    assert {f.kind for f in result.sensitive} == {"aws-access-key", "aws-secret-key"}
    assert "aws_secret_access_key" in result.lines[1].text  # the name is not the secret


def test_a_key_read_with_spaces_leaves_no_piece_of_it_in_any_word() -> None:
    result = protect(analysis("key: AKIA IOSF ODNN 7EXA MPLE thanks"))
    words = [d.text for d in result.words]

    assert result.lines[0].text == "key: AKIA…MPLE thanks"
    assert words == ["key:", "AKIA…MPLE", "•••", "•••", "•••", "•••", "thanks"]
    assert "IOSF" not in everything(result)


def test_a_key_split_over_two_lines_is_masked_on_both() -> None:
    result = protect(analysis("AWS key: AKIAIOSFOD", "NN7EXAMPLE and more"))

    assert [line.text for line in result.lines] == ["AWS key: AKIA…MPLE", "••• and more"]
    assert "NN7EXAMPLE" not in everything(result) and "AKIAIOSFOD" not in everything(result)


def test_a_card_number_is_masked_while_an_email_is_kept_and_tagged() -> None:
    result = protect(analysis("Visa 4111 1111 1111 1111", "write to sales@acme.com"))
    stored = everything(result)

    assert CARD not in compact(stored) and "4111 1111 1111 1111" not in stored
    assert result.lines[0].text == "Visa •••• 1111"
    assert result.lines[1].text == "write to sales@acme.com"
    assert {(f.category, f.kind) for f in result.sensitive} == {("pii", "card"), ("pii", "email")}


def test_every_occurrence_is_masked_though_the_finding_is_listed_once() -> None:
    result = protect(analysis(f"id {AWS_KEY_ID}", f"again {AWS_KEY_ID}"))

    assert [f.kind for f in result.sensitive] == ["aws-access-key"]
    assert AWS_KEY_ID not in everything(result)
    assert len(result.sensitive[0].spans) == 2


def test_a_private_key_block_is_masked_to_its_end() -> None:
    body = "MIIEowIBAAKCAQEAx4UbaDzY5xjW9qEXAMPLEbodyLINE"
    result = protect(analysis("-----BEGIN RSA PRIVATE KEY-----", body, body[::-1], "-----END RSA PRIVATE KEY-----",
                              "next slide"))

    assert body not in everything(result) and body[::-1] not in everything(result)
    assert result.lines[-1].text == "next slide"


def test_findings_get_the_boxes_of_the_words_that_show_them() -> None:
    result = protect(analysis(f"key {AWS_KEY_ID}"))
    word = next(d for d in detections(f"key {AWS_KEY_ID}") if d.text == AWS_KEY_ID)

    assert result.sensitive[0].boxes == (word.box,)


def test_text_without_findings_is_left_alone() -> None:
    original = analysis("SUMMER SALE", "50% OFF")

    assert protect(original) == original


def test_replies_show_personal_data_masked_though_it_is_stored() -> None:
    from bot.core.redaction import shown_lines, shown_text

    stored = protect(analysis("write to sales@acme.com", "Visa 4111 1111 1111 1111"))

    assert shown_lines(list(stored.lines)) == ["write to s•••@acme.com", "Visa •••• 1111"]
    assert shown_text("call +1 415 555 2671 now") == "call •••• 71 now"


def test_when_the_secret_check_fails_nothing_is_stored_and_a_retry_finishes_the_image(
        core, fake_analyzer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot.core import pipeline as pipeline_module
    from bot.core.types import Source
    from tests.images import make_image

    photo = make_image()
    fake_analyzer.script(photo, text=[f"key {AWS_KEY_ID}"])

    def broken(analysis: Analysis) -> Analysis:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(pipeline_module, "protect", broken)
    failed = core.ingest(photo, Source.file("shot.png"))
    monkeypatch.undo()
    record = core.show(failed.image_id)

    assert failed.outcome == "failed" and failed.retryable and "checked for secrets" in (failed.reason or "")
    assert record.text == () and record.sensitive == ()
    assert [r.outcome for r in core.finish_pending()] == ["done"]
    finished = core.show(failed.image_id)
    assert [f.kind for f in finished.sensitive] == ["aws-access-key"]
    assert AWS_KEY_ID not in json.dumps(finished.to_json())


def test_a_second_secret_of_a_kind_already_found_is_still_masked_when_the_detector_finds_it() -> None:
    from bot.core.insights import add_text_insights
    from bot.core.types import PiiEntity

    class Detector:
        name = "stand-in"

        def detect(self, text: str) -> list[PiiEntity]:
            start = text.index("S3cretW1fi!")
            return [PiiEntity("PASSWORD", 0.99, start, start + len("S3cretW1fi!"), kind="password",
                              category="secret")]

    analysis = protect(Analysis(provider="fake", text=detections("password: hunter22", "wifi key S3cretW1fi!")))
    assert [f.kind for f in analysis.sensitive] == ["password"]  # the label's own password, masked

    insights = add_text_insights(analysis, Detector())
    stored = json.dumps([t.text for t in insights.text])
    assert "hunter22" not in stored and "S3cretW1fi!" not in stored
    assert sorted(f.kind for f in insights.sensitive) == ["password", "password"]


class _Names:
    """A PII service that knows one name (as Comprehend would find it)."""

    name = "stand-in"

    def detect(self, text: str) -> list:  # type: ignore[type-arg]
        from bot.core.types import PiiEntity

        return [PiiEntity("NAME", 0.99, m.start(), m.end(), kind="name") for m in re.finditer("Jane Doe", text)]


def test_each_finding_keeps_where_it_is_in_the_masked_line_that_is_stored() -> None:
    from bot.core.insights import add_text_insights

    stored = add_text_insights(protect(analysis(f"key {AWS_KEY_ID} for Jane Doe at jane@acme.com")), _Names())
    line = stored.lines[0].text

    assert line == "key AKIA…MPLE for Jane Doe at jane@acme.com"
    assert {f.kind: line[f.spans[0][1]:f.spans[0][2]] for f in stored.sensitive} == {
        "aws-access-key": "AKIA…MPLE", "email": "jane@acme.com", "name": "Jane Doe"}


def test_slack_is_shown_a_name_masked_where_another_detector_found_it_or_its_whole_line_when_unplaced() -> None:
    from dataclasses import replace

    from bot.core.insights import add_text_insights
    from bot.core.redaction import shown_lines

    stored = add_text_insights(protect(analysis("Dear Jane Doe,", "mail jane@acme.com", "SALE")), _Names())
    lines = list(stored.lines)
    unplaced = [replace(f, spans=tuple((line, 0, 0) for line, _, _ in f.spans)) for f in stored.sensitive]

    assert shown_lines(lines, stored.sensitive) == ["Dear ••••,", "mail j•••@acme.com", "SALE"]
    assert shown_lines(lines, unplaced) == ["••••", "mail j•••@acme.com", "SALE"]  # the email is found again
    assert shown_lines(lines) == ["Dear Jane Doe,", "mail j•••@acme.com", "SALE"]


def test_a_word_that_is_not_in_its_lines_text_is_masked_on_its_own_when_shown() -> None:
    from bot.core.redaction import shown_detections

    line = TextDetection(0, "LINE", "write to us", 99.0, BoundingBox(0.1, 0.1, 0.8, 0.05))
    word = TextDetection(1, "WORD", "jane@acme.com", 98.0, BoundingBox(0.5, 0.1, 0.4, 0.05), parent_id=0)

    assert [d.text for d in shown_detections([line, word])] == ["write to us", "j•••@acme.com"]
