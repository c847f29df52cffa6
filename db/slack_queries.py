"""Claims on Slack messages: the rows that make each message's reply happen exactly once.

A message (channel, ts) is claimed with one insert-or-ignore: whichever delivery inserts
the row does the work; every other delivery of the same message (a retry, the
``file_shared`` twin of a ``file_share`` message, a restart in between) finds the row and
stops. The row stays ``received`` until the reply is posted, so work a crash or an outage
interrupted is found again by ``unfinished``. Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import SlackMessage

RECEIVED = "received"
REPLIED = "replied"


@dataclass(frozen=True)
class MessageClaim:
    """A plain copy of a ``slack_messages`` row, safe to use outside the session."""

    id: int
    team_id: str | None
    channel_id: str
    message_ts: str
    thread_ts: str | None
    user_id: str | None
    file_ids: tuple[str, ...]
    status: str
    reply_ts: str | None
    created_at: datetime
    replied_at: datetime | None


def _claim(row: SlackMessage) -> MessageClaim:
    return MessageClaim(
        id=row.id, team_id=row.team_id, channel_id=row.channel_id, message_ts=row.message_ts,
        thread_ts=row.thread_ts, user_id=row.user_id, file_ids=tuple(row.file_ids or ()), status=row.status,
        reply_ts=row.reply_ts, created_at=row.created_at, replied_at=row.replied_at,
    )


def claim_message(
    session: Session,
    *,
    team_id: str | None,
    channel_id: str,
    message_ts: str,
    thread_ts: str | None,
    user_id: str | None,
    file_ids: Sequence[str],
    now: datetime,
) -> bool:
    """Insert the row unless (channel_id, message_ts) exists; True when this call inserted it."""
    values = {
        "team_id": team_id, "channel_id": channel_id, "message_ts": message_ts, "thread_ts": thread_ts,
        "user_id": user_id, "file_ids": list(file_ids), "status": RECEIVED, "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        module = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(SlackMessage).values(**values).on_conflict_do_nothing(
            index_elements=["channel_id", "message_ts"]).returning(SlackMessage.id)
        return session.execute(stmt).scalar_one_or_none() is not None
    # Any other database: a savepoint makes the duplicate insert harmless.
    try:
        with session.begin_nested():
            session.add(SlackMessage(**values))
    except IntegrityError:
        return False
    return True


def get_message(session: Session, channel_id: str, message_ts: str) -> MessageClaim | None:
    row = session.execute(
        select(SlackMessage).where(SlackMessage.channel_id == channel_id, SlackMessage.message_ts == message_ts)
    ).scalar_one_or_none()
    return _claim(row) if row is not None else None


def mark_replied(session: Session, claim_id: int, reply_ts: str | None, now: datetime) -> None:
    session.execute(
        update(SlackMessage).where(SlackMessage.id == claim_id)
        .values(status=REPLIED, reply_ts=reply_ts, replied_at=now)
    )


def unfinished(session: Session, *, created_before: datetime | None = None, limit: int = 500) -> list[MessageClaim]:
    """Claims still ``received`` (oldest first): interrupted by a crash, or waiting out an outage."""
    stmt = select(SlackMessage).where(SlackMessage.status == RECEIVED)
    if created_before is not None:
        stmt = stmt.where(SlackMessage.created_at < created_before)
    rows = session.execute(stmt.order_by(SlackMessage.id).limit(limit)).scalars().all()
    return [_claim(row) for row in rows]


def claims_with_file(session: Session, channel_id: str, file_id: str, *, since: datetime) -> list[MessageClaim]:
    """Recent claims in ``channel_id`` that include ``file_id`` (the JSON list is checked in Python, portably)."""
    rows = session.execute(
        select(SlackMessage).where(SlackMessage.channel_id == channel_id, SlackMessage.created_at >= since)
        .order_by(SlackMessage.id.desc()).limit(500)
    ).scalars().all()
    return [_claim(row) for row in rows if file_id in (row.file_ids or ())]
