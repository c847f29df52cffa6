"""Slack work that must survive crashes and a second process: the inbox and the leases on claims.

An acknowledged event is kept (the inbox) until its listener has claimed the message, so a
process that dies in between loses nothing; a claim carries a lease, so a sweep never takes
a message another live ``imgbot serve`` or ``imgbot worker`` is working on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from bot.config import Settings
from bot.slack.edge import InboxWriter
from db import models, slack_queries
from db.session import Database
from tests import slack_helpers as sh
from tests.fakes.analyzer import FakeAnalyzer
from tests.fakes.slack_api import FakeSlack
from tests.images import make_image
from tests.test_slack_e2e import ALICE, PUBLIC, Harness


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    fake.add_channel(PUBLIC, "general", members=[ALICE])
    yield fake
    fake.stop()


@pytest.fixture
def harness(slack: FakeSlack, tmp_path: Path) -> Iterator[Harness]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/imgbot.db", storage_url=f"file://{tmp_path}/images",
                        concurrency=4, slack_bot_token=slack.bot_token, slack_signing_secret=sh.SIGNING_SECRET,
                        slack_api_url=slack.api_url)
    running = Harness(slack=slack, analyzer=FakeAnalyzer(), tmp_path=tmp_path, settings=settings)
    yield running
    running.stop()


def dead_owner() -> str:
    """The lease owner a crashed process on this host leaves behind: its pid no longer runs."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return f"{socket.gethostname()}:{finished.pid}"


def inbox_rows(h: Harness) -> int:
    assert h.core is not None
    with h.core.database.transaction() as session:
        return int(session.execute(select(func.count()).select_from(models.SlackInbox)).scalar_one())


def claim_of(h: Harness, ts: str) -> slack_queries.MessageClaim | None:
    assert h.core is not None
    with h.core.database.transaction() as session:
        return slack_queries.get_message(session, PUBLIC, ts)


class _Vanishing:
    """An executor whose work never runs: the process died right after the ack."""

    def submit(self, *args: Any, **kwargs: Any) -> None:
        return None

    def shutdown(self, wait: bool = True) -> None:
        return None


def test_an_event_acknowledged_just_before_a_crash_is_replayed_at_start_up(harness: Harness) -> None:
    harness.start()
    assert harness.bot is not None and harness.bot.ack_first is not None
    harness.bot.ack_first.executor = _Vanishing()  # type: ignore[assignment]

    ts, _, _ = harness.post_images(make_image())  # answered 200: Slack will not send it again

    time.sleep(0.3)
    assert harness.slack.calls_to("chat.postMessage") == [] and claim_of(harness, ts) is None
    assert inbox_rows(harness) == 1
    harness.stop()
    database = Database(harness.settings.database_url)
    with database.transaction() as session:  # what the dead process's rows look like to the next one
        session.execute(update(models.SlackInbox).values(lease_owner=dead_owner()))
    database.dispose()

    harness.start(annotate=False)  # its start-up replays the inbox

    assert len(harness.replies(ts)) == 1
    sh.wait_until(lambda: inbox_rows(harness) == 0)
    time.sleep(0.5)
    assert len([c for c in harness.slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts]) == 1


def test_a_replay_of_an_event_whose_message_was_claimed_changes_nothing(harness: Harness) -> None:
    harness.start(annotate=False)
    ts, _, event = harness.post_images(make_image())
    harness.replies(ts)
    envelope = sh.envelope(event, team_id=harness.slack.team_id, bot_user_id=harness.slack.bot_user_id)
    assert harness.core is not None and harness.bot is not None
    with harness.core.database.transaction() as session:  # died after the claim, before the inbox row went
        slack_queries.save_deliveries(session, [(envelope["event_id"], json.dumps(envelope))], owner=dead_owner(),
                                      now=datetime.now(UTC))

    assert harness.bot.jobs._extra_sweeps[0]() == 1
    time.sleep(0.5)
    assert inbox_rows(harness) == 0
    assert len(harness.slack.calls_to("chat.postMessage")) == 1


def test_when_the_inbox_cannot_be_written_the_message_is_claimed_before_the_answer(harness: Harness) -> None:
    harness.start(annotate=False)
    assert harness.bot is not None and harness.bot.ack_first is not None and harness.bot.ack_first.inbox is not None

    def unavailable(deliveries: Any) -> None:
        raise OperationalError("INSERT INTO slack_inbox", {}, Exception("database is locked"))

    harness.bot.ack_first.inbox.save = unavailable  # type: ignore[method-assign]
    ts, _, _ = harness.post_images(make_image())

    assert claim_of(harness, ts) is not None  # already there when Slack got its 200
    assert len(harness.replies(ts)) == 1


def test_a_sweep_leaves_alone_a_claim_another_live_process_is_working_on(harness: Harness) -> None:
    ts = harness.slack.new_ts()
    files = [harness.slack.add_file(make_image(), channel=PUBLIC, ts=ts)]
    harness.start(annotate=False)
    assert harness.core is not None and harness.bot is not None
    with harness.core.database.transaction() as session:  # another instance, on another host, is on it
        slack_queries.claim_message(session, team_id=harness.slack.team_id, channel_id=PUBLIC, message_ts=ts,
                                    thread_ts=None, user_id=ALICE, file_ids=[files[0]["id"]], now=datetime.now(UTC),
                                    owner="other-host:4242", lease=timedelta(minutes=2))

    assert harness.bot.jobs.sweep(everything=True) == 0
    time.sleep(0.5)
    assert harness.slack.calls_to("chat.postMessage") == []

    with harness.core.database.transaction() as session:  # that instance vanished: its lease runs out
        session.execute(update(models.SlackMessage).values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert harness.bot.jobs.sweep(everything=True) == 1
    assert len(harness.replies(ts)) == 1


def test_through_the_edge_each_event_passes_the_inbox_and_leaves_it(harness: Harness) -> None:
    from bot.slack.app import serve
    from bot.wiring import build_core

    settings = harness.settings.replace(port=0, annotate=False)
    core = build_core(settings, storage=harness.storage, analyzer_factory=lambda: harness.analyzer)
    stop, ready = threading.Event(), []
    thread = threading.Thread(target=serve, args=(settings, core),
                              kwargs={"host": "127.0.0.1", "stop": stop, "ready": ready.append}, daemon=True)
    thread.start()
    try:
        sh.wait_until(lambda: ready, timeout=30)
        port = json.loads(ready[0])["port"]
        stamps = []
        for _ in range(5):
            ts = harness.slack.new_ts()
            files = [harness.slack.add_file(make_image(), channel=PUBLIC, ts=ts)]
            envelope = sh.envelope(sh.file_share_message(files, channel=PUBLIC, ts=ts),
                                   team_id=harness.slack.team_id, bot_user_id=harness.slack.bot_user_id)
            assert sh.send_event(port, envelope)[0] == 200
            stamps.append(ts)
        harness.slack.wait_for("chat.postMessage", 5, timeout=30)

        def empty() -> bool:
            with core.database.transaction() as session:
                return session.execute(select(func.count()).select_from(models.SlackInbox)).scalar_one() == 0

        sh.wait_until(empty)
    finally:
        stop.set()
        thread.join(20)
        core.database.dispose()
    assert {c.params["thread_ts"] for c in harness.slack.calls_to("chat.postMessage")} == set(stamps)


def test_socket_mode_claims_the_message_before_it_acknowledges(harness: Harness) -> None:
    from bot.slack.app import serve
    from bot.wiring import build_core

    settings = harness.settings.replace(slack_app_token=harness.slack.app_token, slack_signing_secret=None,
                                        annotate=False)
    core = build_core(settings, storage=harness.storage, analyzer_factory=lambda: harness.analyzer)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(settings, core),
                              kwargs={"stop": stop, "ready": lambda _: ready.set()}, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        ts = harness.slack.new_ts()
        files = [harness.slack.add_file(make_image(), channel=PUBLIC, ts=ts)]
        envelope = sh.envelope(sh.file_share_message(files, channel=PUBLIC, ts=ts), team_id=harness.slack.team_id,
                               bot_user_id=harness.slack.bot_user_id)
        harness.slack.wait_for_socket_ack(harness.slack.send_socket_envelope("events_api", envelope))
        with core.database.transaction() as session:
            claimed = slack_queries.get_message(session, PUBLIC, ts)
        harness.replies(ts)
    finally:
        stop.set()
        thread.join(10)
        core.database.dispose()
    assert claimed is not None


def test_the_edge_writes_deliveries_to_the_inbox_leased_to_the_app(database_url: str) -> None:
    from bot.slack.edge import DatabaseInbox

    database = Database(database_url)
    database.ensure_schema()
    save = DatabaseInbox(database_url, "app-host:1234")
    save([("Ev1", '{"type": "event_callback"}'), ("Ev2", "{}")])
    save([("Ev1", "a retry of Ev1")])  # one row per event id
    save.close()
    with database.transaction() as session:
        rows = session.execute(select(models.SlackInbox).order_by(models.SlackInbox.id)).scalars().all()
        kept = [(r.event_id, r.body, r.lease_owner) for r in rows]
    database.dispose()
    assert kept == [("Ev1", '{"type": "event_callback"}', "app-host:1234"), ("Ev2", "{}", "app-host:1234")]


def test_the_edge_commits_a_burst_in_a_few_transactions() -> None:
    batches: list[int] = []

    def save(deliveries: Any) -> None:
        time.sleep(0.02)
        batches.append(len(deliveries))

    async def burst() -> list[bool]:
        writer = InboxWriter(save)
        return await asyncio.gather(*(writer.save(f"Ev{n}", b"{}") for n in range(50)))

    assert all(asyncio.run(burst()))
    assert sum(batches) == 50 and len(batches) <= 3

    def broken(deliveries: Any) -> None:
        raise OSError("connection refused")

    async def refused() -> bool:
        return await InboxWriter(broken).save("Ev1", b"{}")

    assert asyncio.run(refused()) is False


@pytest.mark.parametrize("page_size", [1000, 1])  # 1: the reply is found on a later page of the thread
def test_a_reply_posted_just_before_a_failure_is_not_posted_again(harness: Harness, monkeypatch: Any,
                                                                  page_size: int) -> None:
    harness.start(annotate=False)
    harness.slack.page_size = page_size
    mark_replied = slack_queries.mark_replied
    failures = iter([True])

    def lost_after_posting(*args: Any, **kwargs: Any) -> None:  # the database went away (or the process died)
        if next(failures, False):
            raise OperationalError("UPDATE slack_messages", {}, Exception("server closed the connection"))
        mark_replied(*args, **kwargs)

    monkeypatch.setattr(slack_queries, "mark_replied", lost_after_posting)
    ts, _, _ = harness.post_images(make_image())

    replied = sh.wait_until(lambda: (claim := claim_of(harness, ts)) is not None and claim.status == "replied"
                            and claim)
    posts = [c for c in harness.slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts]
    assert len(posts) == 1 and replied.reply_ts == posts[0].answer["ts"]
    # The second attempt looked first: one page, or the parent and then the page with the reply.
    assert len(harness.slack.calls_to("conversations.replies")) == (1 if page_size > 1 else 2)
