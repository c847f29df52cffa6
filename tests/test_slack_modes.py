"""Channel modes end to end: ``/imgbot mode …`` over signed requests, and what each mode does to a post."""

from __future__ import annotations

import json
import time

from tests import slack_helpers as sh
from tests import test_slack_e2e as e2e
from tests.images import make_image
from tests.test_slack_e2e import ALICE, BOB, PRIVATE, PUBLIC, Harness

# The end-to-end suite's fixtures: the fake Slack Web API, the app over HTTP on loopback.
slack, harness, app = e2e.slack, e2e.harness, e2e.app


def announcements(app: Harness, channel: str) -> list[str]:
    return [c.params["text"] for c in app.slack.calls_to("chat.postMessage")
            if c.params.get("channel") == channel and "thread_ts" not in c.params]


def set_mode(app: Harness, mode: str, *, channel: str = PUBLIC, user: str = ALICE) -> None:
    app.command("/imgbot", f"mode {mode}", user=user, channel=channel)
    app.slack.wait_for("chat.postMessage", where=lambda c: c.params.get("channel") == channel
                       and f"set imgbot to {mode} here" in c.params.get("text", ""))


def thread_posts(app: Harness, ts: str) -> list[object]:
    return [c for c in app.slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts]


def reactions_on(app: Harness, ts: str) -> list[tuple[str, str]]:
    return [(c.method, c.params["name"]) for c in app.slack.calls
            if c.method.startswith("reactions.") and c.params.get("timestamp") == ts]


def test_a_member_sets_quiet_and_it_is_announced_in_one_line(app: Harness) -> None:
    set_mode(app, "quiet")

    assert announcements(app, PUBLIC) == [f"<@{ALICE}> set imgbot to quiet here."]
    assert app.core.channel_mode(PUBLIC) == "quiet"  # type: ignore[union-attr]


def test_in_a_quiet_channel_a_normal_image_gets_a_reaction_and_no_reply_a_flagged_one_its_reply(
    app: Harness,
) -> None:
    set_mode(app, "quiet")
    plain, risky = make_image(), make_image()
    app.analyzer.script(plain, labels=[("Cat", 98.0)], text=["MEOW"])
    app.analyzer.script(risky, labels=[("Person", 99.0)], moderation=[("Explicit Nudity", 93.0)])

    quiet_ts, _, _ = app.post_images(plain, names=["cat.png"])
    assert app.final_reaction(quiet_ts) == "white_check_mark"
    flagged_ts, _, _ = app.post_images(risky, names=["beach.png"])
    reply = app.replies(flagged_ts)[0]

    assert "Explicit Nudity 93%" in reply.params["text"]
    assert app.final_reaction(flagged_ts) == "warning"
    assert thread_posts(app, quiet_ts) == []
    assert reactions_on(app, quiet_ts) == [("reactions.add", "white_check_mark")]  # no 👀 either
    assert app.slack.calls_to("files.completeUploadExternal") == []  # no annotated copy
    assert [hit.image.id for hit in app.core.search("cat").hits]  # type: ignore[union-attr]  # still searchable


def test_in_an_off_channel_nothing_is_downloaded_stored_or_said(app: Harness) -> None:
    set_mode(app, "off")
    photo = make_image()
    app.analyzer.script(photo, labels=[("Cat", 98.0)])

    off_ts, files, _ = app.post_images(photo, names=["cat.png"])
    elsewhere_ts, _, _ = app.post_images(make_image(), channel=PRIVATE)  # a channel in full mode
    app.replies(elsewhere_ts)  # by now the first post would have been handled

    assert thread_posts(app, off_ts) == [] and reactions_on(app, off_ts) == []
    assert app.core.search("cat").total == 0  # type: ignore[union-attr]
    assert not any(files[0]["id"] in json.dumps(c.params) for c in app.slack.calls_to("files.info"))
    assert app.analyzer.calls == 1


def test_a_non_member_cannot_change_a_channels_mode(app: Harness) -> None:
    url = app.command("/imgbot", "mode off", user=BOB, channel=PRIVATE)  # Bob is not in the private channel

    answer = app.responses(url)[0].params
    assert answer["response_type"] == "ephemeral" and "Only members" in answer["text"]
    assert app.core.channel_mode(PRIVATE) == "full"  # type: ignore[union-attr]
    assert announcements(app, PRIVATE) == []


def test_help_says_the_mode_and_unknown_commands_get_an_example(app: Harness) -> None:
    answer = app.responses(app.command("/imgbot", ""))[0].params
    assert answer["response_type"] == "ephemeral"
    assert "*full* mode" in answer["text"] and "`quiet`" in answer["text"] and "/imgsearch" in answer["text"]

    for text, expected in (("mode loud", "is not a mode"), ("dance", "I do not know")):
        status, body = sh.send_form(app.port, sh.slash_command(
            "/imgbot", text, user_id=ALICE, channel_id=PUBLIC, team_id=app.slack.team_id,
            response_url=f"{app.slack.url}response/imgbot-error"))
        assert status == 200 and expected in body and "/imgbot mode quiet" in body
        assert '"response_type": "ephemeral"' in body
    time.sleep(0.2)
    assert app.core.channel_mode(PUBLIC) == "full"  # type: ignore[union-attr]


def test_a_mode_survives_a_restart_and_applies_to_the_next_post(harness: Harness) -> None:
    harness.start(default_mode="full")
    set_mode(harness, "quiet")

    harness.restart()
    ts, _, _ = harness.post_images(make_image())

    assert harness.final_reaction(ts) == "white_check_mark"
    assert thread_posts(harness, ts) == []


# -- on-demand: nothing until someone asks ------------------------------------------------------------


def ask_by_reaction(app: Harness, ts: str, user: str = ALICE, *, retry_num: int | None = None,
                    event_id: str | None = None) -> None:
    status, _ = app.event(sh.reaction_added(user=user, reaction="mag", channel=PUBLIC, ts=ts),
                          event_id=event_id, retry_num=retry_num)
    assert status == 200


def test_in_an_on_demand_channel_a_post_waits_and_a_reaction_gets_exactly_one_reply(app: Harness) -> None:
    set_mode(app, "on-demand")
    photo = make_image()
    app.analyzer.script(photo, labels=[("Cat", 98.0)])
    ts, _, _ = app.post_images(photo, names=["cat.png"])
    time.sleep(0.5)
    assert thread_posts(app, ts) == [] and reactions_on(app, ts) == [] and app.analyzer.calls == 0

    ask_by_reaction(app, ts, ALICE, event_id="Ev0MAG0001")
    ask_by_reaction(app, ts, ALICE, event_id="Ev0MAG0001", retry_num=1)  # Slack retrying the same delivery
    ask_by_reaction(app, ts, BOB, event_id="Ev0MAG0002")  # a second person asking

    reply = app.replies(ts)[0]
    assert "Cat 98%" in reply.params["text"]
    assert app.final_reaction(ts) == "white_check_mark"
    time.sleep(0.5)
    assert len(thread_posts(app, ts)) == 1 and app.analyzer.calls == 1
    assert app.slack.calls_to("files.completeUploadExternal")  # what full gives: the annotated copy too


def test_other_reactions_ask_nothing(app: Harness) -> None:
    set_mode(app, "on-demand")
    ts, _, _ = app.post_images(make_image())

    app.event(sh.reaction_added(user=ALICE, reaction="thumbsup", channel=PUBLIC, ts=ts))
    time.sleep(0.5)

    assert thread_posts(app, ts) == [] and app.analyzer.calls == 0


def test_the_analyse_images_shortcut_answers_once(app: Harness) -> None:
    set_mode(app, "on-demand")
    photo = make_image()
    app.analyzer.script(photo, labels=[("Dog", 97.0)])
    ts, _, event = app.post_images(photo, names=["dog.png"])
    message = {k: v for k, v in event.items() if k not in {"channel", "channel_type"}}

    for user in (ALICE, BOB):
        status, body = sh.send_form(app.port, sh.message_action(
            "imgbot_analyze", message=message, user_id=user, team_id=app.slack.team_id, channel_id=PUBLIC,
            response_url=f"{app.slack.url}response/shortcut-{user}"))
        assert status == 200, body

    assert "Dog 97%" in app.replies(ts)[0].params["text"]
    time.sleep(0.5)
    assert len(thread_posts(app, ts)) == 1


def test_mentioning_imgbot_in_the_images_thread_asks_for_it(app: Harness) -> None:
    set_mode(app, "on-demand")
    photo = make_image()
    app.analyzer.script(photo, labels=[("Bicycle", 95.0)])
    ts, _, _ = app.post_images(photo)

    app.event(sh.app_mention(user=BOB, channel=PUBLIC, ts=app.slack.new_ts(), thread_ts=ts,
                             bot_user_id=app.slack.bot_user_id))

    assert "Bicycle 95%" in app.replies(ts)[0].params["text"]


def test_asking_about_a_message_without_images_gets_a_private_friendly_answer(app: Harness) -> None:
    ts = app.slack.new_ts()
    app.slack.add_message(PUBLIC, {"type": "message", "user": ALICE, "text": "lunch?", "ts": ts})

    ask_by_reaction(app, ts, BOB)

    private = app.slack.wait_for("chat.postEphemeral")[0].params
    assert private["user"] == BOB and private["channel"] == PUBLIC and "no pictures" in private["text"]
    assert thread_posts(app, ts) == []


def test_in_a_full_channel_asking_again_reposts_nothing(app: Harness) -> None:
    photo = make_image()
    ts, _, _ = app.post_images(photo)
    app.replies(ts)

    ask_by_reaction(app, ts, BOB)
    time.sleep(0.7)

    assert len(thread_posts(app, ts)) == 1 and app.analyzer.calls == 1


# -- App Home -------------------------------------------------------------------------------------------


def home_of(app: Harness, user: str) -> dict:
    app.event({"type": "app_home_opened", "user": user, "channel": "D0HOME0001", "tab": "home",
               "event_ts": f"{time.time():.6f}"})
    published = app.slack.wait_for("views.publish", where=lambda c: c.params.get("user_id") == user)[-1]
    view = published.params["view"]
    return json.loads(view) if isinstance(view, str) else view


def test_the_home_tab_counts_only_the_users_channels_and_shows_their_modes(app: Harness) -> None:
    cat, secret = make_image(), make_image()
    app.analyzer.script(cat, labels=[("Cat", 98.0)])
    app.analyzer.script(secret, labels=[("Prototype", 97.0)], moderation=[("Violence", 90.0)])
    app.replies(app.post_images(cat)[0])
    app.replies(app.post_images(secret, channel=PRIVATE)[0])
    set_mode(app, "quiet")

    alice = json.dumps(home_of(app, ALICE))
    bob = json.dumps(home_of(app, BOB))  # Bob is not in the private channel

    assert "*2* images analysed" in alice and "Prototype" in alice and f"<#{PRIVATE}>" in alice
    assert "*1* images analysed" in bob and "*1* in the last 7 days" in bob and "Cat (1)" in bob
    assert f"<#{PUBLIC}>: quiet" in bob
    assert PRIVATE not in bob and "Prototype" not in bob
    assert "await review" in alice and "await review" not in bob  # Alice is in the moderation channel
    assert "/imgsearch" in bob
