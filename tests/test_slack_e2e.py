"""End to end over loopback: the real Bolt app on a real port, signed requests, a fake Slack Web API.

The app is built exactly as ``imgbot serve`` builds it (``build_core`` + ``build_bot``) on a
temporary SQLite database, in-memory storage and the scripted fake analyser; the bot
reaches the fake Slack through ``SLACK_API_URL``. Every assertion is on the Web API calls
the bot made, as recorded by the fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.slack.app import SlackBot, SlackHTTPServer, build_bot
from bot.slack.jobs import JobOptions
from bot.storage.memory import MemoryStorage
from bot.wiring import Core, build_core
from db import slack_queries
from tests import slack_helpers as sh
from tests.fakes.analyzer import FakeAnalyzer
from tests.fakes.slack_api import FakeSlack
from tests.images import make_image

PUBLIC, PRIVATE, MODERATION = "C0PUBLIC01", "G0PRIVATE1", "C0MODS0001"
ALICE, BOB = "U0ALICE001", "U0BOB00001"

FAST = JobOptions(retry_delays=(0.3, 0.6), sweep_interval=0.5, stale_after=60.0, file_shared_delay=0.4,
                  pending_wait=10.0)


@dataclass
class Harness:
    slack: FakeSlack
    analyzer: FakeAnalyzer
    tmp_path: Path
    settings: Settings
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    core: Core | None = None
    bot: SlackBot | None = None
    server: SlackHTTPServer | None = None

    def start(self, **changes: Any) -> Harness:
        if changes:
            self.settings = self.settings.replace(**changes)
        self.core = build_core(self.settings, storage=self.storage, analyzer_factory=lambda: self.analyzer)
        self.bot = build_bot(self.settings, self.core, job_options=FAST)
        self.bot.start()
        self.server = self.bot.http_server("127.0.0.1", 0).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.bot is not None:
            self.bot.stop()
            self.bot = None
        if self.core is not None:
            self.core.database.dispose()
            self.core = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    # -- sending --------------------------------------------------------------------------

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None,
              **kwargs: Any) -> tuple[int, str]:
        envelope = sh.envelope(event, team_id=self.slack.team_id, bot_user_id=self.slack.bot_user_id,
                               event_id=event_id)
        return sh.send_event(self.port, envelope, retry_num=retry_num, **kwargs)

    def post_images(self, *images: bytes, channel: str = PUBLIC, user: str = ALICE, names: list[str] | None = None,
                    thread_ts: str | None = None, stub: bool = False, **file_kwargs: Any
                    ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        """Upload files to the fake and send the ``file_share`` message; returns (ts, files, event)."""
        ts = self.slack.new_ts()
        files = [
            self.slack.add_file(data, name=(names[i] if names else f"photo{i}.png"), channel=channel, ts=ts,
                                thread_ts=thread_ts, user=user, **file_kwargs)
            for i, data in enumerate(images)
        ]
        event = sh.file_share_message(files, channel=channel, ts=ts, user=user, thread_ts=thread_ts, stub=stub)
        self.slack.add_message(channel, {k: v for k, v in event.items() if k not in {"channel", "channel_type"}})
        status, _ = self.event(event)
        assert status == 200
        return ts, files, event

    def command(self, command: str, text: str, *, user: str = ALICE, channel: str = PUBLIC) -> str:
        response_url = f"{self.slack.url}response/{command.strip('/')}-{time.monotonic_ns()}"
        status, body = sh.send_form(self.port, sh.slash_command(
            command, text, user_id=user, channel_id=channel, team_id=self.slack.team_id, response_url=response_url))
        assert status == 200, body
        return response_url

    def click(self, action: dict[str, Any], *, user: str = ALICE, channel: str = PUBLIC,
              message: dict[str, Any] | None = None, ephemeral: bool = False) -> str:
        response_url = f"{self.slack.url}response/action-{time.monotonic_ns()}"
        status, body = sh.send_form(self.port, sh.block_actions(
            action, user_id=user, team_id=self.slack.team_id, channel_id=channel, response_url=response_url,
            message=message, ephemeral=ephemeral))
        assert status == 200, body
        return response_url

    # -- looking --------------------------------------------------------------------------

    def replies(self, ts: str, count: int = 1, timeout: float = 15.0) -> list[Any]:
        return self.slack.wait_for("chat.postMessage", count, timeout=timeout,
                                   where=lambda c: c.params.get("thread_ts") == ts and c.answer.get("ok"))

    def responses(self, url: str, count: int = 1) -> list[Any]:
        path = url[len(self.slack.url) - 1:]
        return self.slack.wait_for("response_url", count, where=lambda c: c.params["_path"] == path)

    def final_reaction(self, ts: str) -> str:
        calls = self.slack.wait_for("reactions.add", where=lambda c: c.params.get("timestamp") == ts
                                    and c.params.get("name") in {"white_check_mark", "warning", "x"})
        return str(calls[-1].params["name"])


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    fake.add_channel(PUBLIC, "general", members=[ALICE, BOB])
    fake.add_channel(PRIVATE, "secret-project", private=True, members=[ALICE])
    fake.add_channel(MODERATION, "moderation", members=[ALICE])
    yield fake
    fake.stop()


@pytest.fixture
def harness(slack: FakeSlack, tmp_path: Path) -> Iterator[Harness]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/imgbot.db", storage_url=f"file://{tmp_path}/images", concurrency=4,
        slack_bot_token=slack.bot_token, slack_signing_secret=sh.SIGNING_SECRET, slack_api_url=slack.api_url,
        moderation_channel=MODERATION,
    )
    running = Harness(slack=slack, analyzer=FakeAnalyzer(), tmp_path=tmp_path, settings=settings)
    yield running
    running.stop()


@pytest.fixture
def app(harness: Harness) -> Harness:
    return harness.start()


def section_texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(b["text"]["text"] for b in blocks if b.get("type") == "section")


# -- images shared in a channel ------------------------------------------------------------------


def test_a_shared_photo_gets_one_threaded_reply_with_labels_text_verdict_and_result_id(app: Harness) -> None:
    photo = make_image("PNG")
    app.analyzer.script(photo, labels=[("Cat", 98.4, ("Animal",)), ("Pet", 91.0)], text=["SUMMER SALE", "50% off"])

    ts, files, _ = app.post_images(photo, names=["cat.png"])

    reply = app.replies(ts)[0]
    assert reply.params["channel"] == PUBLIC
    assert reply.params["thread_ts"] == ts
    text = section_texts(reply.params["blocks"])
    assert "Cat 98%" in text and "Pet 91%" in text
    assert "SUMMER SALE" in text and "50% off" in text
    assert "nothing flagged" in text
    image_id = app.core.search("cat").hits[0].image.id  # type: ignore[union-attr]
    assert f"#{image_id}" in text
    assert "Cat 98%" in reply.params["text"]  # the plain-text fallback says the same
    assert app.final_reaction(ts) == "white_check_mark"
    reactions = [(c.method, c.params["name"]) for c in app.slack.calls
                 if c.method.startswith("reactions.") and c.params.get("timestamp") == ts]
    assert reactions[0] == ("reactions.add", "eyes")
    assert ("reactions.remove", "eyes") in reactions


def test_the_annotated_copy_is_uploaded_into_the_same_thread(app: Harness) -> None:
    photo = make_image("JPEG", size=(320, 240))
    app.analyzer.script(photo, labels=[("Dog", 97.0)], text=["WOOF"])

    ts, _, _ = app.post_images(photo, names=["dog.jpg"])

    complete = app.slack.wait_for("files.completeUploadExternal")[0]
    assert complete.params["channel_id"] == PUBLIC
    assert complete.params["thread_ts"] == ts
    upload_id = complete.params["files"][0]["id"]
    uploaded = app.slack.uploads[upload_id]
    assert uploaded["filename"] == "dog-annotated.jpg"
    assert uploaded["data"][:3] == b"\xff\xd8\xff" and uploaded["data"] != photo


def test_several_images_in_one_message_get_one_reply(app: Harness) -> None:
    red, blue = make_image(colour=(220, 20, 20)), make_image(colour=(20, 20, 220))
    app.analyzer.script(red, labels=[("Tomato", 95.0)])
    app.analyzer.script(blue, labels=[("Sky", 93.0)])

    ts, _, _ = app.post_images(red, blue, names=["red.png", "blue.png"])

    reply = app.replies(ts)[0]
    text = section_texts(reply.params["blocks"])
    assert "Tomato 95%" in text and "Sky 93%" in text
    time.sleep(0.5)
    assert len(app.slack.calls_to("chat.postMessage")) == 1


def test_an_image_posted_in_a_thread_is_answered_in_that_thread(app: Harness) -> None:
    parent = app.slack.new_ts()
    ts, _, _ = app.post_images(make_image(), thread_ts=parent)

    reply = app.replies(parent)[0]
    assert reply.params["thread_ts"] == parent != ts


def test_images_in_private_channels_are_handled_too(app: Harness) -> None:
    ts, _, _ = app.post_images(make_image(), channel=PRIVATE)
    assert app.replies(ts)[0].params["channel"] == PRIVATE


def test_file_stubs_are_completed_with_files_info(app: Harness) -> None:
    photo = make_image()
    app.analyzer.script(photo, labels=[("Bicycle", 96.0)])

    ts, files, _ = app.post_images(photo, stub=True)

    assert "Bicycle 96%" in section_texts(app.replies(ts)[0].params["blocks"])
    assert [c.params["file"] for c in app.slack.calls_to("files.info")] == [files[0]["id"]]


def test_an_image_from_another_organisation_gets_a_reply_saying_it_cannot_be_read(app: Harness) -> None:
    ts = app.slack.new_ts()
    stubs = [{"id": "F0CONNECT1", "mode": "hosted", "file_access": "access_denied", "mimetype": "image/jpeg",
              "name": "partner.jpg"},
             {"id": "F0CONNECT2", "mode": "hosted", "file_access": "access_denied", "mimetype": "application/pdf"},
             {"id": "F0OLDFILE1", "mode": "hidden_by_limit"}]
    app.slack.fail_next("files.info", "access_denied")  # Slack Connect: the bot may not read it

    app.event(sh.file_share_message(stubs, channel=PUBLIC, ts=ts))

    reply = app.replies(ts)[0]
    text = section_texts(reply.params["blocks"])
    assert "partner.jpg" in text and "another organisation" in text and "F0CONNECT2" not in json.dumps(reply.params)
    assert [c.params["file"] for c in app.slack.calls_to("files.info")] == ["F0CONNECT1"]
    assert app.final_reaction(ts) == "x"


def test_text_read_from_an_image_pings_nobody(app: Harness) -> None:
    photo = make_image()
    app.analyzer.script(photo, labels=[("Poster", 90.0)], text=["<!channel> & <@U0BOB00001> <https://x.y|click>"])

    ts, _, _ = app.post_images(photo, names=["<!here>.png"])

    reply = app.replies(ts)[0]
    payload = json.dumps(reply.params)
    assert "<!channel>" not in payload and "<@U0BOB00001>" not in payload and "<!here>" not in payload
    assert "&lt;!channel&gt; &amp; &lt;@U0BOB00001&gt;" in section_texts(reply.params["blocks"])
    assert "&lt;!channel&gt;" in reply.params["text"]


def test_a_failed_image_gets_a_reply_that_says_why(app: Harness) -> None:
    ts, _, _ = app.post_images(b"GIF89a" + b"\x00" * 20, names=["broken.gif"], mimetype="image/gif")

    reply = app.replies(ts)[0]
    text = section_texts(reply.params["blocks"])
    assert ":x:" in text and "broken.gif" in text
    assert app.final_reaction(ts) == "x"


def test_non_image_files_and_bot_messages_are_ignored(app: Harness) -> None:
    ts = app.slack.new_ts()
    pdf = app.slack.add_file(b"%PDF-1.4", name="notes.pdf", mimetype="application/pdf", channel=PUBLIC, ts=ts)
    app.event(sh.file_share_message([pdf], channel=PUBLIC, ts=ts))
    own_ts = app.slack.new_ts()
    own = app.slack.add_file(make_image(), channel=PUBLIC, ts=own_ts, user=app.slack.bot_user_id)
    app.event(sh.file_share_message([own], channel=PUBLIC, ts=own_ts, user=app.slack.bot_user_id))
    other_bot = sh.file_share_message([app.slack.add_file(make_image(), channel=PUBLIC, ts=own_ts)],
                                      channel=PUBLIC, ts=app.slack.new_ts())
    other_bot["bot_id"] = "B0OTHER001"
    app.event(other_bot)
    app.event(sh.file_shared(own["id"], channel=PUBLIC, user=app.slack.bot_user_id))

    time.sleep(1.0)
    assert app.slack.calls_to("chat.postMessage") == []
    assert app.slack.calls_to("reactions.add") == []


def test_other_messages_and_url_verification_are_answered(app: Harness) -> None:
    status, _ = app.event({"type": "message", "text": "hello", "user": ALICE, "ts": app.slack.new_ts(),
                           "channel": PUBLIC, "channel_type": "channel", "event_ts": "1.2"})
    assert status == 200
    status, _ = app.event({"type": "reaction_added", "user": ALICE, "reaction": "thumbsup", "event_ts": "1.3",
                           "item": {"type": "message", "channel": PUBLIC, "ts": "1.1"}})
    assert status == 200
    body = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"})
    status, answer = sh.post(app.port, body, sh.signed_headers(body, "application/json"))
    assert status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in answer
    assert sh.get(app.port, "/healthz") == (200, '{"ok":true}')


# -- requests that are not from Slack -------------------------------------------------------------


def test_a_bad_or_stale_signature_is_rejected_with_401(app: Harness) -> None:
    ts = app.slack.new_ts()
    files = [app.slack.add_file(make_image(), channel=PUBLIC, ts=ts)]
    envelope = sh.envelope(sh.file_share_message(files, channel=PUBLIC, ts=ts), team_id=app.slack.team_id,
                           bot_user_id=app.slack.bot_user_id)

    assert sh.send_event(app.port, envelope, secret="not-the-secret")[0] == 401
    assert sh.send_event(app.port, envelope, timestamp=int(time.time()) - 6 * 60)[0] == 401
    fields = sh.slash_command("/imgsearch", "cat", user_id=ALICE, channel_id=PUBLIC, team_id=app.slack.team_id,
                              response_url=f"{app.slack.url}response/x")
    assert sh.send_form(app.port, fields, secret="wrong")[0] == 401

    time.sleep(0.5)
    assert app.slack.calls_to("chat.postMessage") == [] and app.slack.calls_to("files.info") == []


# -- downloading safely ---------------------------------------------------------------------------


def test_a_file_on_another_host_is_refused_without_sending_the_token(app: Harness) -> None:
    with FakeSlack() as elsewhere:
        ts, _, _ = app.post_images(make_image(), host_url=elsewhere.url, names=["elsewhere.png"])

        reply = app.replies(ts)[0]
        assert "not stored on Slack" in section_texts(reply.params["blocks"])
        assert all(call.token is None for call in elsewhere.calls)
        assert elsewhere.calls_to("file_download") == []


def test_a_redirect_to_another_host_does_not_carry_the_token(app: Harness) -> None:
    with FakeSlack() as elsewhere:
        target = elsewhere.add_file(make_image())["url_private_download"]
        ts, _, _ = app.post_images(make_image(), redirect_to=target)

        app.replies(ts)
        downloads = elsewhere.calls_to("file_download")
        assert downloads and all("authorization" not in call.headers for call in downloads)


def test_a_sign_in_page_instead_of_the_file_names_the_missing_scope(app: Harness) -> None:
    ts, _, _ = app.post_images(make_image(), html=True)

    text = section_texts(app.replies(ts)[0].params["blocks"])
    assert "files:read" in text
    assert app.final_reaction(ts) == "x"


def test_files_over_the_size_cap_are_refused(harness: Harness) -> None:
    harness.start(max_bytes=2000)
    ts, _, _ = harness.post_images(make_image(size=(400, 300), fmt="BMP"), names=["huge.bmp"],
                                   mimetype="image/bmp")
    assert "larger than" in section_texts(harness.replies(ts)[0].params["blocks"])


# -- moderation -----------------------------------------------------------------------------------


def test_a_flagged_image_is_said_in_the_thread_and_sent_to_moderators_who_decide(app: Harness) -> None:
    photo = make_image()
    app.analyzer.script(photo, labels=[("Person", 99.0)], moderation=[("Explicit Nudity", 93.0)])

    ts, _, _ = app.post_images(photo, names=["beach.png"])

    reply = app.replies(ts)[0]
    assert "Flagged" in section_texts(reply.params["blocks"]) and "Explicit Nudity 93%" in reply.params["text"]
    assert app.final_reaction(ts) == "warning"
    notice = app.slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == MODERATION)[0]
    assert "/archives/" + PUBLIC in json.dumps(notice.params["blocks"])  # the permalink to the message
    buttons = next(b for b in notice.params["blocks"] if b["type"] == "actions")["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Confirm", "Dismiss"]

    confirm = buttons[0]
    app.click({"action_id": confirm["action_id"], "value": confirm["value"], "block_id": "m"}, user=ALICE,
              channel=MODERATION, message={"type": "message", "ts": "1700000000.000200", "text": notice.params["text"],
                                           "blocks": notice.params["blocks"]})

    update = app.slack.wait_for("chat.update")[0]
    assert update.params["channel"] == MODERATION and update.params["ts"] == "1700000000.000200"
    assert f"<@{ALICE}>" in json.dumps(update.params["blocks"])
    record = app.core.show(int(confirm["value"]))  # type: ignore[union-attr]
    assert record.moderation_decision is not None
    assert (record.moderation_decision.decision, record.moderation_decision.user_id) == ("confirmed", ALICE)

    url = app.command("/imgsearch", "unsafe")
    shown = json.dumps(app.responses(url)[0].params["blocks"])
    assert f"confirmed by <@{ALICE}>" in shown


# -- /imgsearch -----------------------------------------------------------------------------------


def _post_and_wait(app: Harness, data: bytes, **kwargs: Any) -> str:
    ts, _, _ = app.post_images(data, **kwargs)
    app.replies(ts)
    return ts


def test_search_answers_ephemerally_with_permalink_thumbnail_labels_and_snippet(app: Harness) -> None:
    photo = make_image("JPEG")
    app.analyzer.script(photo, labels=[("Cat", 97.0)], text=["ADOPT A CAT TODAY"])
    ts = _post_and_wait(app, photo, names=["kitty.jpg"])

    url = app.command("/imgsearch", "cat")

    answer = app.responses(url)[0].params
    assert answer["response_type"] == "ephemeral"
    shown = json.dumps(answer["blocks"])
    assert f"/archives/{PUBLIC}/p{ts.replace('.', '')}" in shown
    assert "kitty.jpg" in shown and "Cat 97%" in shown and f"<#{PUBLIC}>" in shown and "<!date^" in shown
    image = next(b for b in answer["blocks"] if b["type"] == "image")
    assert set(image["slack_file"]) == {"id"} and image["slack_file"]["id"].startswith("F")


def test_search_only_shows_channels_the_requester_is_in(app: Harness) -> None:
    public, private = make_image(), make_image()
    app.analyzer.script(public, labels=[("Dog", 95.0)])
    app.analyzer.script(private, labels=[("Dog", 96.0)], text=["roadmap"])
    _post_and_wait(app, public, channel=PUBLIC, names=["public-dog.png"])
    _post_and_wait(app, private, channel=PRIVATE, names=["secret-dog.png"])

    bob = json.dumps(app.responses(app.command("/imgsearch", "dog", user=BOB))[0].params)
    alice = json.dumps(app.responses(app.command("/imgsearch", "dog", user=ALICE))[0].params)
    sneaky = json.dumps(app.responses(app.command("/imgsearch", f"roadmap in:<#{PRIVATE}>", user=BOB))[0].params)

    assert "public-dog.png" in bob and "secret-dog.png" not in bob
    assert "public-dog.png" in alice and "secret-dog.png" in alice
    assert "secret-dog.png" not in sneaky
    conversations = app.slack.calls_to("users.conversations")
    assert {c.params["user"] for c in conversations} == {ALICE, BOB}
    assert all(c.params["types"] == "public_channel,private_channel" for c in conversations)


def test_more_pages_on_by_replacing_the_ephemeral_message(app: Harness) -> None:
    for n in range(12):
        photo = make_image()
        app.analyzer.script(photo, labels=[("Tree", 90.0 + n / 10)])
        app.post_images(photo, names=[f"tree{n}.png"])
    app.slack.wait_for("chat.postMessage", 12)

    first = app.responses(app.command("/imgsearch", "label:tree"))[0].params
    more = next(b for b in first["blocks"] if b["type"] == "actions")["elements"][0]
    assert more["text"]["text"] == "More"
    url = app.click({"action_id": more["action_id"], "value": more["value"]}, ephemeral=True)

    second = app.responses(url)[0].params
    assert second["replace_original"] is True and second["response_type"] == "ephemeral"
    assert "showing 11–12" in json.dumps(second["blocks"], ensure_ascii=False)


def test_search_help_and_syntax_errors_are_explained(app: Harness) -> None:
    help_body = sh.send_form(app.port, sh.slash_command(
        "/imgsearch", "help", user_id=ALICE, channel_id=PUBLIC, team_id=app.slack.team_id,
        response_url=f"{app.slack.url}response/help"))[1]
    assert "label:" in help_body and "after:" in help_body and '"response_type": "ephemeral"' in help_body

    answer = app.responses(app.command("/imgsearch", 'label:"unclosed'))[0].params
    assert answer["response_type"] == "ephemeral" and answer["text"]


# -- /imgreport -----------------------------------------------------------------------------------


def test_report_posts_a_summary_and_uploads_the_full_report_in_the_channel(app: Harness) -> None:
    flagged, ok = make_image(), make_image()
    app.analyzer.script(flagged, labels=[("Person", 95.0)], moderation=[("Violence", 88.0)])
    app.analyzer.script(ok, labels=[("Person", 92.0), ("Beach", 91.0)], text=["hello"])
    _post_and_wait(app, flagged)
    _post_and_wait(app, ok)
    _post_and_wait(app, make_image(), channel=PRIVATE)

    app.command("/imgreport", "last 7d", user=BOB)

    summary = app.slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == PUBLIC
                                 and "thread_ts" not in c.params)[0]
    text = section_texts(summary.params["blocks"])
    assert "*Images analysed:* 2" in text and "*Images with text:* 1" in text
    assert "*Flagged images:* 1" in text and "Person: 2" in text
    complete = app.slack.wait_for("files.completeUploadExternal", where=lambda c: _uploaded(app, c).endswith(".md"))[0]
    upload = app.slack.uploads[complete.params["files"][0]["id"]]
    assert complete.params["channel_id"] == PUBLIC
    assert b"Person" in upload["data"]


def test_a_report_posted_in_a_public_channel_leaves_out_the_requesters_private_channels(app: Harness) -> None:
    public, private = make_image(), make_image()
    app.analyzer.script(public, labels=[("Beach", 91.0)])
    app.analyzer.script(private, labels=[("Roadmap", 97.0)], text=["confidential launch plan"])
    _post_and_wait(app, public)
    _post_and_wait(app, private, channel=PRIVATE)

    app.command("/imgreport", "", user=ALICE, channel=PUBLIC)  # Alice is in both; Bob reads #general too
    in_public = app.slack.wait_for("files.completeUploadExternal", where=lambda c: c.params["channel_id"] == PUBLIC
                                   and _uploaded(app, c).endswith(".md"))[0]
    app.command("/imgreport", "", user=ALICE, channel=PRIVATE)
    in_private = app.slack.wait_for("files.completeUploadExternal", where=lambda c: c.params["channel_id"] == PRIVATE
                                    and _uploaded(app, c).endswith(".md"))[0]

    public_report = app.slack.uploads[in_public.params["files"][0]["id"]]["data"]
    private_report = app.slack.uploads[in_private.params["files"][0]["id"]]["data"]
    assert b"Beach" in public_report and b"Roadmap" not in public_report and b"confidential" not in public_report
    assert b"Roadmap" in private_report and b"Beach" in private_report


def _uploaded(app: Harness, call: Any) -> str:
    return str(app.slack.uploads[call.params["files"][0]["id"]]["filename"])


def test_report_in_csv_on_request(app: Harness) -> None:
    _post_and_wait(app, make_image())
    app.command("/imgreport", "csv this month")
    complete = app.slack.wait_for("files.completeUploadExternal", where=lambda c: _uploaded(app, c).endswith(".csv"))[0]
    upload = app.slack.uploads[complete.params["files"][0]["id"]]
    assert complete.params["channel_id"] == PUBLIC and b"," in upload["data"]


# -- deletion -------------------------------------------------------------------------------------


def test_deleted_files_and_messages_disappear_from_search(app: Harness) -> None:
    one, two = make_image(), make_image()
    app.analyzer.script(one, labels=[("Giraffe", 95.0)])
    app.analyzer.script(two, labels=[("Giraffe", 94.0)])
    ts1, files1, _ = app.post_images(one)
    ts2, _, _ = app.post_images(two)
    app.replies(ts1), app.replies(ts2)
    assert app.core.search("giraffe").total == 2  # type: ignore[union-attr]

    app.event(sh.file_deleted(files1[0]["id"]))
    sh.wait_until(lambda: app.core.search("giraffe").total == 1)  # type: ignore[union-attr]
    app.event(sh.message_deleted(channel=PUBLIC, deleted_ts=ts2))
    sh.wait_until(lambda: app.core.search("giraffe").total == 0)  # type: ignore[union-attr]
    assert app.storage.keys() == [] if hasattr(app.storage, "keys") else True


def test_a_deleted_message_with_replies_disappears_from_search(app: Harness) -> None:
    photo = make_image()
    app.analyzer.script(photo, labels=[("Okapi", 95.0)])
    ts, _, _ = app.post_images(photo)
    app.replies(ts)  # imgbot's reply makes the message a thread parent
    assert app.core.search("okapi").total == 1  # type: ignore[union-attr]

    app.event(sh.message_tombstoned(channel=PUBLIC, ts=ts))

    sh.wait_until(lambda: app.core.search("okapi").total == 0)  # type: ignore[union-attr]


def test_a_file_shared_in_a_direct_message_is_left_alone(app: Harness) -> None:
    photo = make_image()
    file = app.slack.add_file(photo, name="dm.png")

    app.slack.share(file, "D0DIRECT01", app.slack.new_ts())

    app.event(sh.file_shared(file["id"], channel="D0DIRECT01"))

    time.sleep(4 * FAST.file_shared_delay)  # the look-up waits this long before it runs
    assert app.slack.calls_to("files.info") == [] and app.slack.calls_to("chat.postMessage") == []
    assert app.analyzer.calls == 0


def test_a_search_whose_thumbnail_slack_refuses_still_answers(app: Harness) -> None:
    photo = make_image("JPEG")
    app.analyzer.script(photo, labels=[("Lynx", 97.0)])
    _post_and_wait(app, photo, names=["lynx.jpg"])
    shown = app.core.search("lynx").hits[0].sighting  # type: ignore[union-attr]
    app.slack.unviewable_files.add(shown.file_id)

    answers = app.responses(app.command("/imgsearch", "lynx"), count=2)

    assert [a.status for a in answers] == [400, 200]
    assert all(b["type"] != "image" for b in answers[1].params["blocks"])
    assert "lynx.jpg" in json.dumps(answers[1].params["blocks"])


# -- retries, duplicates, restarts ----------------------------------------------------------------


def test_a_retried_delivery_gives_exactly_one_reply(app: Harness) -> None:
    ts = app.slack.new_ts()
    files = [app.slack.add_file(make_image(), channel=PUBLIC, ts=ts)]
    event = sh.file_share_message(files, channel=PUBLIC, ts=ts)

    assert app.event(event, event_id="Ev0RETRY0001")[0] == 200
    assert app.event(event, event_id="Ev0RETRY0001", retry_num=1)[0] == 200
    assert app.event(event, event_id="Ev0RETRY0001", retry_num=2)[0] == 200

    app.replies(ts)
    time.sleep(0.8)
    assert len(app.slack.calls_to("chat.postMessage")) == 1


def test_the_message_and_its_file_shared_twin_give_one_reply(app: Harness) -> None:
    ts, files, event = app.post_images(make_image())
    app.event(sh.file_shared(files[0]["id"], channel=PUBLIC))
    app.replies(ts)
    time.sleep(1.0)  # longer than the file_shared look-up delay
    assert len(app.slack.calls_to("chat.postMessage")) == 1


def test_a_file_shared_event_alone_is_answered_in_its_message_thread(app: Harness) -> None:
    ts = app.slack.new_ts()
    red, blue = make_image(colour=(200, 0, 0)), make_image(colour=(0, 0, 200))
    files = [app.slack.add_file(d, name=f"photo{i}.png", channel=PUBLIC, ts=ts) for i, d in enumerate((red, blue))]
    app.slack.add_message(PUBLIC, {k: v for k, v in sh.file_share_message(files, channel=PUBLIC, ts=ts).items()
                                   if k != "channel"})

    app.event(sh.file_shared(files[0]["id"], channel=PUBLIC))
    app.event(sh.file_shared(files[1]["id"], channel=PUBLIC))

    reply = app.replies(ts)[0]
    assert "photo0.png" in reply.params["text"] and "photo1.png" in reply.params["text"]
    time.sleep(0.8)
    assert len(app.slack.calls_to("chat.postMessage")) == 1


def test_a_retry_whose_first_delivery_never_arrived_is_processed(app: Harness) -> None:
    ts = app.slack.new_ts()
    files = [app.slack.add_file(make_image(), channel=PUBLIC, ts=ts)]
    app.event(sh.file_share_message(files, channel=PUBLIC, ts=ts), retry_num=2)
    app.replies(ts)


def test_a_restart_in_between_does_not_reply_twice(harness: Harness) -> None:
    harness.start()
    ts, files, event = harness.post_images(make_image())
    harness.replies(ts)
    harness.restart()

    harness.event(event, retry_num=1)
    harness.event(sh.file_shared(files[0]["id"], channel=PUBLIC))
    time.sleep(1.0)
    assert len(harness.slack.calls_to("chat.postMessage")) == 1


def test_work_a_crash_left_unfinished_is_finished_on_start_up(harness: Harness) -> None:
    from datetime import datetime

    ts = harness.slack.new_ts()
    files = [harness.slack.add_file(make_image(), channel=PUBLIC, ts=ts)]
    core = build_core(harness.settings, storage=harness.storage, analyzer_factory=lambda: harness.analyzer)
    with core.database.transaction() as session:  # what a crash right after the claim leaves behind
        assert slack_queries.claim_message(session, team_id=harness.slack.team_id, channel_id=PUBLIC, message_ts=ts,
                                           thread_ts=None, user_id=ALICE, file_ids=[files[0]["id"]],
                                           now=datetime.now(UTC))
    core.database.dispose()

    harness.start()

    reply = harness.replies(ts)[0]
    assert reply.params["thread_ts"] == ts

    def claim() -> Any:
        with harness.core.database.transaction() as session:  # type: ignore[union-attr]
            return slack_queries.get_message(session, PUBLIC, ts)

    replied = sh.wait_until(lambda: claim().status == "replied" and claim())
    assert replied.reply_ts == reply.answer["ts"]


# -- rate limits and outages ----------------------------------------------------------------------


def test_a_rate_limited_reply_waits_for_retry_after_and_is_posted_once(app: Harness) -> None:
    app.slack.fail_next("chat.postMessage", "ratelimited", times=1, retry_after=1)
    ts, _, _ = app.post_images(make_image())

    app.replies(ts, timeout=10)
    posts = app.slack.calls_to("chat.postMessage")
    assert len(posts) == 2  # the 429, then the reply
    assert posts[1].at - posts[0].at >= 0.9


def test_when_slack_is_down_for_a_while_the_reply_is_posted_later(app: Harness) -> None:
    app.slack.fail_next("chat.postMessage", "service_unavailable", times=4, status=503, retry_after=None)
    ts, _, _ = app.post_images(make_image())

    app.replies(ts, timeout=20)
    posts = app.slack.calls_to("chat.postMessage")
    assert [c.status for c in posts] == [503, 503, 503, 503, 200]
    assert app.final_reaction(ts) == "white_check_mark"


def test_when_the_analyser_is_down_the_image_is_finished_later(app: Harness) -> None:
    from bot.errors import AnalyzerError

    photo = make_image()
    app.analyzer.script(photo, labels=[("Lighthouse", 94.0)])
    app.analyzer.fail(photo, AnalyzerError("The analysis service is busy.", retryable=True), times=2)

    ts, _, _ = app.post_images(photo)

    reply = app.replies(ts, timeout=20)[0]
    assert "Lighthouse 94%" in section_texts(reply.params["blocks"])
    assert app.final_reaction(ts) == "white_check_mark"


def test_a_burst_of_fifty_images_all_get_their_replies(app: Harness) -> None:
    stamps = [app.post_images(make_image(size=(96, 96)))[0] for _ in range(50)]
    app.slack.wait_for("chat.postMessage", 50, timeout=40)
    replied = {c.params["thread_ts"] for c in app.slack.calls_to("chat.postMessage")}
    assert replied == set(stamps)


# -- Socket Mode ----------------------------------------------------------------------------------


def test_socket_mode_serves_the_same_app(harness: Harness) -> None:
    import threading

    from bot.slack.app import serve

    settings = harness.settings.replace(slack_app_token=harness.slack.app_token, slack_signing_secret=None)
    core = build_core(settings, storage=harness.storage, analyzer_factory=lambda: harness.analyzer)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(settings, core),
                              kwargs={"stop": stop, "ready": lambda _: ready.set()}, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        photo = make_image()
        harness.analyzer.script(photo, labels=[("Owl", 96.0)])
        ts = harness.slack.new_ts()
        files = [harness.slack.add_file(photo, channel=PUBLIC, ts=ts)]
        envelope = sh.envelope(sh.file_share_message(files, channel=PUBLIC, ts=ts), team_id=harness.slack.team_id,
                               bot_user_id=harness.slack.bot_user_id)

        first = harness.slack.send_socket_envelope("events_api", envelope)
        again = harness.slack.send_socket_envelope("events_api", envelope, retry_attempt=1, retry_reason="timeout")
        harness.slack.wait_for_socket_ack(first), harness.slack.wait_for_socket_ack(again)
        assert "Owl 96%" in section_texts(harness.replies(ts)[0].params["blocks"])

        command = sh.slash_command("/imgsearch", "owl", user_id=ALICE, channel_id=PUBLIC,
                                   team_id=harness.slack.team_id, response_url=f"{harness.slack.url}response/sock")
        harness.slack.wait_for_socket_ack(harness.slack.send_socket_envelope("slash_commands", command,
                                                                             accepts_response_payload=True))
        answer = harness.slack.wait_for("response_url")[0].params
        assert answer["response_type"] == "ephemeral" and "Owl 96%" in json.dumps(answer["blocks"])
        assert len(harness.slack.calls_to("chat.postMessage")) == 1
        assert harness.slack.calls_to("apps.connections.open")[0].token == harness.slack.app_token
    finally:
        stop.set()
        thread.join(10)
        core.database.dispose()


# -- `imgbot serve` as its own process, with S3 (moto) and Rekognition (fake) -------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:  # the OS picks; the port is handed to the child process straight away
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_imgbot_serve_as_a_process_replies_from_s3_and_rekognition(slack: FakeSlack, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import os
    import signal
    import subprocess
    import sys

    import boto3
    from PIL import Image, PngImagePlugin

    from tests.fakes.aws import moto_server, use_fake_aws
    from tests.fakes.rekognition import FakeRekognition

    info = PngImagePlugin.PngInfo()
    info.add_text("imgbot:labels", "Cat,Pet")
    info.add_text("imgbot:text", "<!channel> adopt me")
    buffer = io.BytesIO()
    Image.open(io.BytesIO(make_image(size=(200, 150)))).save(buffer, "PNG", pnginfo=info)
    photo = buffer.getvalue()

    with moto_server() as s3_url:
        use_fake_aws(monkeypatch, tmp_path, s3=s3_url)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="team-images")
        rekognition = FakeRekognition(s3_client=s3).start()  # reads originals from S3, as Rekognition does
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", rekognition.endpoint_url)
        port = _free_port()
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/imgbot.db",
               "IMGBOT_STORAGE": "s3://team-images/originals", "IMGBOT_ANALYZER": "rekognition",
               "IMGBOT_AWS_MAX_ATTEMPTS": "2", "SLACK_BOT_TOKEN": slack.bot_token,
               "SLACK_SIGNING_SECRET": sh.SIGNING_SECRET, "SLACK_API_URL": slack.api_url, "PORT": str(port)}
        process = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            sh.wait_until(lambda: _healthy(port) or process.poll() is not None, timeout=30, interval=0.1)
            assert process.poll() is None, process.communicate()[1]

            ts = slack.new_ts()
            files = [slack.add_file(photo, name="cat.png", channel=PUBLIC, ts=ts)]
            envelope = sh.envelope(sh.file_share_message(files, channel=PUBLIC, ts=ts), team_id=slack.team_id,
                                   bot_user_id=slack.bot_user_id)
            assert sh.send_event(port, envelope)[0] == 200

            reply = slack.wait_for("chat.postMessage", where=lambda c: c.params.get("thread_ts") == ts, timeout=30)[0]
            text = section_texts(reply.params["blocks"])
            assert "Cat" in text and "&lt;!channel&gt; adopt me" in text
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket="team-images").get("Contents", [])]
            assert len(keys) == 1 and keys[0].startswith("originals/")
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=20)
            rekognition.stop()
        assert process.returncode == 0, err
        assert "imgbot listening on http://" in err and "outcome=done" in err
        assert slack.bot_token not in err
        first = next(line for line in err.splitlines() if "imgbot.slack" in line)
        assert "serving Slack over HTTP on port" in first and "analyser rekognition" in first  # what runs, how
        assert "WARNING" not in err.split("imgbot listening")[0]  # a clean start: no warning before it listens


def _healthy(port: int) -> bool:
    try:
        return sh.get(port, "/healthz")[0] == 200
    except OSError:
        return False


# -- serve(): the edge process in front of the app ----------------------------------------------------


def test_serve_over_http_acks_through_the_edge_and_relays_everything_else(harness: Harness) -> None:
    import threading

    from bot.slack.app import serve

    core = build_core(harness.settings, storage=harness.storage, analyzer_factory=lambda: harness.analyzer)
    stop, ready = threading.Event(), []
    thread = threading.Thread(target=serve, args=(harness.settings.replace(port=0), core),
                              kwargs={"host": "127.0.0.1", "stop": stop, "ready": ready.append}, daemon=True)
    thread.start()
    try:
        sh.wait_until(lambda: ready, timeout=30)
        port = json.loads(ready[0])["port"]
        assert sh.get(port, "/healthz") == (200, '{"ok":true}')

        ts = harness.slack.new_ts()
        files = [harness.slack.add_file(make_image(), channel=PUBLIC, ts=ts)]
        envelope = sh.envelope(sh.file_share_message(files, channel=PUBLIC, ts=ts), team_id=harness.slack.team_id,
                               bot_user_id=harness.slack.bot_user_id)
        assert sh.send_event(port, envelope, secret="wrong")[0] == 401
        assert sh.send_event(port, envelope, timestamp=int(time.time()) - 400)[0] == 401
        assert sh.send_event(port, envelope) == (200, "")
        assert sh.send_event(port, envelope, retry_num=1)[0] == 200
        harness.replies(ts)

        challenge = json.dumps({"token": "x", "challenge": "abc123", "type": "url_verification"})
        assert "abc123" in sh.post(port, challenge, sh.signed_headers(challenge, "application/json"))[1]
        url = f"{harness.slack.url}response/edge"
        status, body = sh.send_form(port, sh.slash_command("/imgsearch", "help", user_id=ALICE, channel_id=PUBLIC,
                                                           team_id=harness.slack.team_id, response_url=url))
        assert status == 200 and "ephemeral" in body
        time.sleep(0.5)
        assert len(harness.slack.calls_to("chat.postMessage")) == 1
    finally:
        stop.set()
        thread.join(20)
        core.database.dispose()
    assert not thread.is_alive()
