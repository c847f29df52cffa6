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


# -- leases: several processes on one database ------------------------------------------------------


def _only_claim(database: Database) -> slack_queries.MessageClaim:
    with database.transaction() as session:
        found = slack_queries.get_message(session, "C1", "1.1")
    assert found is not None
    return found


def _take(database: Database, owner: str, now: datetime = NOW) -> bool:
    with database.transaction() as session:
        return slack_queries.take_message(session, _only_claim(database).id, owner, now)


def test_a_claim_leased_to_a_live_process_is_not_taken_until_its_lease_runs_out(database: Database) -> None:
    with database.transaction() as session:
        slack_queries.claim_message(session, team_id="T1", channel_id="C1", message_ts="1.1", thread_ts=None,
                                    user_id="U1", file_ids=["F1"], now=NOW, owner="elsewhere:1",
                                    lease=timedelta(minutes=2))
        assert slack_queries.unfinished(session, now=NOW, owner="here:1") == []
        assert len(slack_queries.unfinished(session)) == 1  # without ``now``: every received claim

    assert _take(database, "here:1") is False
    assert _take(database, "elsewhere:1") is True  # its own lease, renewed
    assert _take(database, "here:1", now=NOW + timedelta(minutes=3)) is True  # expired
    assert _only_claim(database).lease_owner == "here:1"


def test_a_claim_parked_for_the_queue_or_held_by_a_dead_process_is_free(database: Database) -> None:
    import socket
    import subprocess
    import sys

    with database.transaction() as session:
        slack_queries.claim_message(session, team_id="T1", channel_id="C1", message_ts="1.1", thread_ts=None,
                                    user_id="U1", file_ids=["F1"], now=NOW, owner=slack_queries.QUEUED)
    assert _take(database, "worker:1") is True
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}"
    with database.transaction() as session:
        slack_queries.hand_over(session, _only_claim(database).id, "worker:1", dead, NOW + timedelta(hours=1))
        assert [c.lease_owner for c in slack_queries.unfinished(session, now=NOW, owner="here:1")] == [dead]
    assert _take(database, "here:1") is True


def test_leases_are_renewed_handed_over_and_cleared_by_the_reply(database: Database) -> None:
    claim(database)
    assert _take(database, "here:1") is True
    claim_id = _only_claim(database).id
    with database.transaction() as session:
        assert slack_queries.renew_leases(session, [claim_id], "here:1", NOW + timedelta(minutes=5)) == 1
        assert slack_queries.renew_leases(session, [claim_id], "elsewhere:1", NOW + timedelta(hours=5)) == 0
    assert _only_claim(database).lease_expires_at == NOW + timedelta(minutes=5)
    with database.transaction() as session:
        slack_queries.hand_over(session, claim_id, "here:1", slack_queries.QUEUED, NOW + timedelta(minutes=10))
    assert _only_claim(database).lease_owner == slack_queries.QUEUED
    assert _take(database, "worker:2") is True
    with database.transaction() as session:
        slack_queries.mark_replied(session, claim_id, "9.9", NOW)
    replied = _only_claim(database)
    assert (replied.status, replied.lease_owner, replied.lease_expires_at) == ("replied", None, None)
    assert _take(database, "worker:2") is False
