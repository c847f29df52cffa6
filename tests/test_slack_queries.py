"""Claims on Slack messages: one insert wins, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from db import slack_queries
from db.session import Database

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.ensure_schema()
    yield db
    db.dispose()


def claim(database: Database, ts: str = "1.1", channel: str = "C1", files: tuple[str, ...] = ("F1",),
          now: datetime = NOW) -> bool:
    with database.transaction() as session:
        return slack_queries.claim_message(session, team_id="T1", channel_id=channel, message_ts=ts, thread_ts=None,
                                           user_id="U1", file_ids=list(files), now=now)


def test_the_first_claim_of_a_message_wins_and_every_other_is_refused(database: Database) -> None:
    assert claim(database) is True
    assert claim(database) is False
    assert claim(database, channel="C2") is True  # the same ts in another channel is another message


def test_a_claim_is_received_until_marked_replied(database: Database) -> None:
    claim(database, files=("F1", "F2"))
    with database.transaction() as session:
        row = slack_queries.get_message(session, "C1", "1.1")
        assert row is not None and row.status == "received" and row.file_ids == ("F1", "F2")
        assert [c.id for c in slack_queries.unfinished(session)] == [row.id]
        slack_queries.mark_replied(session, row.id, "9.9", NOW)
    with database.transaction() as session:
        done = slack_queries.get_message(session, "C1", "1.1")
        assert done is not None and (done.status, done.reply_ts) == ("replied", "9.9")
        assert slack_queries.unfinished(session) == []


def test_unfinished_can_leave_out_recent_claims(database: Database) -> None:
    claim(database, ts="1.1", now=NOW - timedelta(hours=1))
    claim(database, ts="2.2", now=NOW)
    with database.transaction() as session:
        old = slack_queries.unfinished(session, created_before=NOW - timedelta(minutes=10))
    assert [c.message_ts for c in old] == ["1.1"]


def test_claims_are_found_by_one_of_their_files(database: Database) -> None:
    claim(database, ts="1.1", files=("F1", "F2"))
    claim(database, ts="2.2", files=("F3",))
    with database.transaction() as session:
        found = slack_queries.claims_with_file(session, "C1", "F2", since=NOW - timedelta(days=1))
        elsewhere = slack_queries.claims_with_file(session, "C9", "F2", since=NOW - timedelta(days=1))
    assert [c.message_ts for c in found] == ["1.1"] and elsewhere == []
