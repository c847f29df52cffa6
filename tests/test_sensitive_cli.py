"""Sensitive data through the CLI, with Rekognition's text from the fake over real boto3: findings printed
masked, found by has:secret and pii:card, listed in reports, and no secret in any output, log line, stored
object or byte of the database file; ``imgbot rescan-text`` and migration 0007 mask what older versions kept."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db.migrate import upgrade
from tests.images import make_image
from tests.old_rows import insert_analysed_image
from tests.test_cli import env, rekognition, run  # noqa: F401  (fixtures)

AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SLACK_TOKEN = "xoxb-123456789012-1234567890123-abcdefghijABCDEFGHIJklmn"
CARD = "4111111111111111"
SECRETS = (AWS_KEY_ID, AWS_SECRET, SLACK_TOKEN, CARD)


def leaked(data: bytes | str) -> list[str]:
    """The secrets in ``data``, however they were cut (spaces, line breaks and JSON escapes removed)."""
    text_ = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    compact = re.sub(r"[\s\"',\\]|\\n", "", text_.replace("\\/", "/"))
    return [secret for secret in SECRETS if secret in text_ or secret in compact]


@pytest.fixture
def screenshots(tmp_path: Path, rekognition) -> Path:
    folder = tmp_path / "shots"
    folder.mkdir()
    scripted = {
        "keys.png": ["aws_access_key_id = AKIA IOSF ODNN 7EXA MPLE", f"aws_secret_access_key = {AWS_SECRET[:20]}",
                     AWS_SECRET[20:], f"token: {SLACK_TOKEN}"],
        "card.png": ["Visa 4111 1111 1111 1111", "write to sales@acme.com"],
        "order.png": ["order 4111 1111 1111 1112", "SKU xAKIAQWERTYUIOPASDFGH"],
    }
    for index, (name, lines) in enumerate(scripted.items()):
        data = make_image("PNG", colour=(30 + 60 * index, 90, 200), size=(240, 160))
        rekognition.script(data, text=lines)
        (folder / name).write_bytes(data)
    return folder


def ids_for(query: str) -> dict[str, int]:
    code, out, _ = run("search", query, "--json")
    assert code == 0
    return {Path(hit["source"]).name: hit["id"] for hit in json.loads(out)}


def test_analyze_prints_masked_findings_and_nothing_anywhere_holds_a_secret(env, screenshots, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "bot.cli", "analyze", str(screenshots)], capture_output=True, text=True,
        env={**os.environ, **env, "IMGBOT_LOG_LEVEL": "DEBUG"}, timeout=120, check=False)

    assert completed.returncode == 0, completed.stderr
    assert "⚠ secret aws-access-key AKIA…MPLE" in completed.stdout
    assert "⚠ pii card •••• 1111" in completed.stdout and "⚠ pii email s•••@acme.com" in completed.stdout
    assert "sensitive data in 2 images" in completed.stdout
    assert leaked(completed.stdout + completed.stderr) == []
    assert set(ids_for("has:secret")) == {"keys.png"}
    assert set(ids_for("secret:aws")) == {"keys.png"} and set(ids_for("secret:slack")) == {"keys.png"}
    assert set(ids_for("pii:card")) == {"card.png"} and set(ids_for("has:pii")) == {"card.png"}
    assert ids_for("secret:github") == {}
    code, shown, _ = run("show", str(ids_for("has:secret")["keys.png"]), "--json")
    kinds = {(f["kind"], f["masked"]) for f in json.loads(shown)["sensitive"]}
    assert {("aws-access-key", "AKIA…MPLE"), ("aws-secret-key", "wJal…EKEY"), ("slack-token", "xoxb…klmn")} <= kinds
    for fmt in ("md", "csv", "json"):
        code, report, _ = run("report", "--format", fmt)
        assert code == 0 and "AKIA…MPLE" in report and leaked(report) == [], fmt
    assert "## Sensitive data" in run("report")[1]

    stored = [path for path in tmp_path.rglob("*") if path.is_file() and path.parent != screenshots]
    assert any(path.name.startswith("imgbot.db") for path in stored)
    for path in stored:
        assert leaked(path.read_bytes()) == [], path


def test_rescan_text_masks_what_an_older_version_stored_and_adds_its_findings(env, screenshots, tmp_path):
    (screenshots / "keys.png").unlink()
    (screenshots / "card.png").unlink()
    assert run("analyze", str(screenshots))[0] == 0
    engine = create_engine(env["DATABASE_URL"])
    with engine.begin() as connection:  # as a version without detectors kept it
        connection.execute(text("UPDATE text_detections SET text = :t WHERE kind = 'LINE' AND detection_id = 0"),
                           {"t": f"key {AWS_KEY_ID}"})
        connection.execute(text("UPDATE search_documents SET text = :t"), {"t": f"key {AWS_KEY_ID}"})
        raw = {"DetectText": {"TextDetections": [{"DetectedText": f"key {AWS_KEY_ID}"}]}}
        connection.execute(text("UPDATE analysis_runs SET raw = :r"), {"r": json.dumps(raw)})
    engine.dispose()
    assert ids_for(AWS_KEY_ID) != {}

    code, out, _ = run("rescan-text", "--no-progress")

    assert code == 0 and "1 masked, 1 findings added" in out
    assert set(ids_for("secret:aws")) == {"order.png"} and ids_for(AWS_KEY_ID) == {}
    for path in tmp_path.glob("imgbot.db*"):
        assert leaked(path.read_bytes()) == [], path
    assert "0 masked, 0 findings added" in run("rescan-text", "--no-progress")[1]


def test_migration_0007_masks_text_stored_before_it(empty_database):
    upgrade(empty_database.engine, "0006")
    with empty_database.engine.begin() as connection:
        insert_analysed_image(connection, 1, text_line_count=1)
        connection.execute(text(
            "INSERT INTO text_detections (image_id, detection_id, kind, text, confidence, box, polygon) "
            "VALUES (1, 0, 'LINE', :t, 99, :box, '[]')"),
            {"t": f"card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}",
             "box": json.dumps({"Left": 0.1, "Top": 0.1, "Width": 0.5, "Height": 0.1})})
        connection.execute(text("INSERT INTO search_documents (image_id, labels, text) VALUES (1, '', :t)"),
                           {"t": f"card {CARD}"})

    upgrade(empty_database.engine)

    with empty_database.engine.connect() as connection:
        line = connection.execute(text("SELECT text FROM text_detections")).scalar_one()
        finding = connection.execute(text("SELECT category, kind, masked FROM sensitive_findings")).one()
    assert line == "card •••• 1111"
    assert tuple(finding) == ("pii", "card", "•••• 1111")


def render_screenshot(lines: list[str]) -> bytes:
    """A light terminal-like screenshot in Pillow's own font (no system font needed)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=26)
    image = Image.new("RGB", (1500, 60 + 55 * len(lines)), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((30, 30 + 55 * index), line, fill=(20, 20, 20), font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_the_offline_engine_reads_a_key_pair_and_a_card_and_keeps_neither(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in {"DATABASE_URL": f"sqlite:///{tmp_path}/imgbot.db", "IMGBOT_ANALYZER": "local",
                        "IMGBOT_STORAGE": f"file://{tmp_path}/originals", "IMGBOT_LOG_LEVEL": "DEBUG"}.items():
        monkeypatch.setenv(name, value)
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "terminal.png").write_bytes(render_screenshot([
        "$ cat ~/.aws/credentials", f"aws_access_key_id = {AWS_KEY_ID}", f"aws_secret_access_key = {AWS_SECRET}",
        f"SLACK_BOT_TOKEN={SLACK_TOKEN}", "card 4111 1111 1111 1111 exp 12/29", "order 4111 1111 1111 1112"]))
    (shots / "order.png").write_bytes(render_screenshot(["order 4111 1111 1111 1112", "thank you"]))

    code, out, err = run("analyze", str(shots), "--no-progress")

    assert code == 0, err
    assert "⚠ secret aws-access-key AKIA…MPLE" in out and "⚠ secret aws-secret-key wJal…EKEY" in out
    assert "⚠ secret slack-token xoxb…klmn" in out and "⚠ pii card •••• 1111" in out
    assert set(ids_for("has:secret")) == {"terminal.png"} and set(ids_for("pii:card")) == {"terminal.png"}
    assert leaked(out + err) == []
    for path in tmp_path.glob("imgbot.db*"):
        assert leaked(path.read_bytes()) == [], path


def test_with_comprehend_names_and_addresses_are_found_and_it_never_sees_a_secret(
        env, rekognition, tmp_path, monkeypatch):
    from tests.fakes.comprehend import FakeComprehend

    with FakeComprehend(names=["Jane Doe"]) as comprehend:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", comprehend.endpoint_url)
        monkeypatch.setenv("IMGBOT_TEXT_INSIGHTS", "comprehend")
        shots = tmp_path / "letters"
        shots.mkdir()
        letter, plain = make_image("PNG", colour=(200, 40, 40)), make_image("PNG", colour=(40, 200, 40))
        rekognition.script(letter, text=["Dear Jane Doe,", "12 Main Street", f"your key {AWS_KEY_ID}"])
        rekognition.script(plain, text=["SUMMER SALE"])
        (shots / "letter.png").write_bytes(letter)
        (shots / "plain.png").write_bytes(plain)

        code, out, err = run("analyze", str(shots))
        sent = [call.params["Text"] for call in comprehend.requests]

    assert code == 0, err
    assert "⚠ pii name" in out and "⚠ pii address" in out
    assert set(ids_for("pii:name")) == {"letter.png"} and set(ids_for("pii:address")) == {"letter.png"}
    assert len(sent) == 2 and leaked("".join(sent)) == [] and "AKIA…MPLE" in "".join(sent)
    code, shown, _ = run("show", str(ids_for("pii:name")["letter.png"]), "--json")
    detectors = {f["kind"]: f["detector"] for f in json.loads(shown)["sensitive"]}
    assert detectors == {"aws-access-key": "imgbot", "name": "comprehend", "address": "comprehend"}


def test_rescan_text_records_where_on_its_line_an_older_comprehend_finding_was(env, rekognition, tmp_path, monkeypatch):
    from tests.fakes.comprehend import FakeComprehend

    with FakeComprehend(names=["Jane Doe"]) as comprehend:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", comprehend.endpoint_url)
        monkeypatch.setenv("IMGBOT_TEXT_INSIGHTS", "comprehend")
        letter = make_image("PNG", colour=(200, 40, 40))
        rekognition.script(letter, text=[f"key {AWS_KEY_ID} for Jane Doe"])
        (tmp_path / "letter.png").write_bytes(letter)
        assert run("analyze", str(tmp_path / "letter.png"))[0] == 0
        engine = create_engine(env["DATABASE_URL"])

        def places() -> dict[str, object]:
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT kind, spans FROM sensitive_findings")).all()
            return {kind: json.loads(spans) if spans is not None else None for kind, spans in rows}

        assert places() == {"aws-access-key": [[0, 4, 13]], "name": [[0, 18, 26]]}  # "key AKIA…MPLE for Jane Doe"
        with engine.begin() as connection:  # as a version before 0013 kept them
            connection.execute(text("UPDATE sensitive_findings SET spans = NULL"))
        code, out, _ = run("rescan-text", "--no-progress")
        engine.dispose()

    assert code == 0 and "0 masked, 0 findings added" in out
    # The key's place is lost with its text, which shows only its mask; it is never shown unmasked anyway.
    assert places() == {"aws-access-key": None, "name": [[0, 18, 26]]}


def test_rescan_text_moves_a_names_place_when_it_masks_a_secret_before_it_on_the_line(
        env, rekognition, tmp_path, monkeypatch):
    from tests.fakes.comprehend import FakeComprehend

    with FakeComprehend(names=["Jane Doe"]) as comprehend:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", comprehend.endpoint_url)
        monkeypatch.setenv("IMGBOT_TEXT_INSIGHTS", "comprehend")
        letter = make_image("PNG", colour=(40, 40, 200))
        rekognition.script(letter, text=["Dear Jane Doe"])
        (tmp_path / "letter.png").write_bytes(letter)
        assert run("analyze", str(tmp_path / "letter.png"))[0] == 0
        engine = create_engine(env["DATABASE_URL"])
        with engine.begin() as connection:  # as a version whose detectors missed the key kept it
            connection.execute(text("UPDATE text_detections SET text = :t WHERE kind = 'LINE'"),
                               {"t": f"key {AWS_KEY_ID} Jane Doe"})
            connection.execute(text("UPDATE sensitive_findings SET spans = '[[0, 25, 33]]' WHERE kind = 'name'"))
        code, out, _ = run("rescan-text", "--no-progress")
        with engine.connect() as connection:
            line = connection.execute(text("SELECT text FROM text_detections WHERE kind = 'LINE'")).scalar_one()
            spans = dict(connection.execute(text("SELECT kind, spans FROM sensitive_findings")).all())
        engine.dispose()

    assert code == 0 and "1 masked, 1 findings added" in out
    assert line == "key AKIA…MPLE Jane Doe"
    ((_, start, end),) = json.loads(spans["name"])
    assert line[start:end] == "Jane Doe"
