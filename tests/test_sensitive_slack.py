"""Sensitive data through Slack end to end: the thread is warned, the security channel told, and no secret
leaves imgbot: not in a Slack call, the database file, a stored object or a log line."""

from __future__ import annotations

import json
import logging
import re

import pytest

from tests import test_slack_e2e as e2e
from tests.images import make_image
from tests.test_slack_e2e import ALICE, BOB, PRIVATE, PUBLIC, Harness

slack, harness = e2e.slack, e2e.harness

SECURITY = "C0SECURITY1"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SLACK_TOKEN = "xoxb-123456789012-1234567890123-abcdefghijABCDEFGHIJklmn"
CARD = "4111111111111111"
SECRETS = (AWS_KEY_ID, AWS_SECRET, SLACK_TOKEN, CARD)
SCREENSHOT = [  # a terminal, with the key id read in pieces and the secret split over two lines
    "$ cat ~/.aws/credentials",
    "aws_access_key_id = AKIA IOSF ODNN 7EXA MPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/",
    "bPxRfiCYEXAMPLEKEY",
    f"SLACK_BOT_TOKEN={SLACK_TOKEN}",
    "card 4111 1111 1111 1111",
    "support: sales@acme.com",
]
LOOK_ALIKES = ["order 4111 1111 1111 1112", "SKU xAKIAQWERTYUIOPASDFGH", "hello world"]


@pytest.fixture
def app(harness: Harness) -> Harness:
    harness.slack.add_channel(SECURITY, "security", members=[ALICE])
    return harness.start(security_channel=SECURITY)


def leaked(data: bytes | str) -> list[str]:
    """The secrets in ``data``, however they were cut (spaces, line breaks and JSON escapes removed)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    compact = re.sub(r"[\s\"',\\]|\\n", "", text.replace("\\/", "/"))
    return [secret for secret in SECRETS if secret in text or secret in compact]


def test_a_screenshot_with_a_key_pair_warns_its_thread_and_the_security_channel_and_leaks_nothing(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    shot, plain = make_image("PNG"), make_image("PNG")
    app.analyzer.script(shot, text=SCREENSHOT)
    app.analyzer.script(plain, text=LOOK_ALIKES)

    ts, _, _ = app.post_images(shot, names=["terminal.png"])
    reply = app.replies(ts)[0].params
    plain_ts, _, _ = app.post_images(plain, names=["order.png"])
    plain_reply = app.replies(plain_ts)[0].params
    notice = app.slack.wait_for("chat.postMessage", where=lambda c: c.params.get("channel") == SECURITY)[0].params

    shown = json.dumps(reply, ensure_ascii=False)
    assert "an AWS access key ID" in shown and "a Slack token" in shown and "a payment card number" in shown
    assert "Everyone in this channel can read it" in shown and "rotate the key" in shown
    assert "s•••@acme.com" in shown and "sales@acme.com" not in shown  # personal data shown masked
    assert app.final_reaction(ts) == "warning"
    assert "Sensitive data" not in json.dumps(plain_reply) and app.final_reaction(plain_ts) == "white_check_mark"
    assert f"<#{PUBLIC}>" in notice["text"] and "an AWS access key ID" in notice["text"]
    assert "/archives/" in json.dumps(notice["blocks"]) and "AKIA" not in json.dumps(notice)

    assert leaked(json.dumps([c.params for c in app.slack.calls], ensure_ascii=False)) == []
    assert leaked(b"".join((upload["data"] or b"") for upload in app.slack.uploads.values())) == []
    for path in app.tmp_path.glob("imgbot.db*"):
        assert leaked(path.read_bytes()) == [], path.name
    assert leaked("\n".join(record.getMessage() for record in caplog.records)) == []


def test_has_secret_and_pii_card_find_the_right_images_and_only_where_the_asker_can_see(app: Harness) -> None:
    shot, private_shot, plain = make_image(), make_image(), make_image()
    app.analyzer.script(shot, text=SCREENSHOT)
    app.analyzer.script(private_shot, text=[f"key {AWS_KEY_ID}"])
    app.analyzer.script(plain, text=LOOK_ALIKES)
    for image, channel, name in ((shot, PUBLIC, "terminal.png"), (private_shot, PRIVATE, "private.png"),
                                 (plain, PUBLIC, "order.png")):
        ts, _, _ = app.post_images(image, channel=channel, names=[name])
        app.replies(ts)

    def found(query: str, user: str) -> str:
        return json.dumps(app.responses(app.command("/imgsearch", query, user=user))[0].params)

    bob_secrets, alice_secrets = found("has:secret", BOB), found("has:secret", ALICE)
    cards = found("pii:card", ALICE)
    assert "terminal.png" in bob_secrets and "private.png" not in bob_secrets and "order.png" not in bob_secrets
    assert "terminal.png" in alice_secrets and "private.png" in alice_secrets
    assert "terminal.png" in cards and "private.png" not in cards and "order.png" not in cards
    assert "private.png" not in found("secret:aws -in:#general", BOB)
    assert leaked(bob_secrets + alice_secrets + cards) == []


def test_a_quiet_channel_still_gets_the_warning(app: Harness) -> None:
    app.command("/imgbot", "mode quiet")
    app.slack.wait_for("chat.postMessage", where=lambda c: "set imgbot to quiet" in c.params.get("text", ""))
    shot = make_image()
    app.analyzer.script(shot, text=[f"token {SLACK_TOKEN}"])

    ts, _, _ = app.post_images(shot, names=["token.png"])

    assert "a Slack token" in json.dumps(app.replies(ts)[0].params)
    assert app.final_reaction(ts) == "warning"


def test_a_name_only_comprehend_found_is_masked_in_the_reply_the_search_snippet_and_a_json_report(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.aws import use_fake_aws
    from tests.fakes.comprehend import FakeComprehend

    with FakeComprehend(names=["Jane Doe"]) as comprehend:
        use_fake_aws(monkeypatch, harness.tmp_path, comprehend=comprehend.endpoint_url)
        app = harness.start(text_insights="comprehend")
        letter = make_image("PNG")
        # The key is masked first and is shorter then: the name's place must follow it.
        app.analyzer.script(letter, text=[f"key {AWS_KEY_ID} for Jane Doe", "invoice to Jane Doe, paid"])
        ts, _, _ = app.post_images(letter, names=["letter.png"])
        reply = json.dumps(app.replies(ts)[0].params, ensure_ascii=False)
        found = json.dumps(app.responses(app.command("/imgsearch", "invoice", user=ALICE))[0].params,
                           ensure_ascii=False)
        app.command("/imgreport", "json", user=ALICE)
        upload = app.slack.wait_for("files.completeUploadExternal", where=lambda c: str(
            app.slack.uploads[c.params["files"][0]["id"]]["filename"]).endswith(".json"))[0]
    report = app.slack.uploads[upload.params["files"][0]["id"]]["data"].decode("utf-8")

    assert "key AKIA…MPLE for ••••" in reply and "invoice to •••, paid" in reply
    assert "invoice to •••, paid" in found and "letter.png" in found
    assert "invoice to •••, paid" in report and '"kind": "name"' in report
    assert "Jane" not in reply + found + report and leaked(reply + found + report) == []
    assert app.core is not None
    stored = app.core.search("invoice").hits[0].image  # the operator's own copy keeps it, tagged
    assert [line.text for line in stored.lines][1] == "invoice to Jane Doe, paid"
