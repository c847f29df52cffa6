"""Claims on Slack messages, and the inbox of acknowledged deliveries.

A message (channel, ts) is claimed with one insert-or-ignore: whichever delivery inserts
the row does the work; every other delivery of the same message (a retry, the
``file_shared`` twin of a ``file_share`` message, a restart in between) finds the row and
stops. The row stays ``received`` until the reply is posted, so work a crash or an outage
interrupted is found again by ``unfinished``.

The claim is also a job with a lease, as an image row is (``db.queries.claim_image``):
``take_message`` is one conditional UPDATE that succeeds only when the lease is free,
expired, already ours, parked for the queue (``QUEUED``), or held by a dead process on
this host. So several ``imgbot serve`` / ``imgbot worker`` processes can share a database
and a start-up sweep never takes a message another live process is working on.

The inbox holds Events API deliveries from the moment they are acknowledged until a
listener has handled them (``save_deliveries`` / ``delivery_done``); ``take_deliveries``
leases the ones a crash left behind for a replay. Works on SQLite and PostgreSQL; every
value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from db.models import SlackInbox, SlackMessage
from db.queries import _owner_is_dead as owner_is_dead  # the same dead-process rule as image leases

RECEIVED = "received"
REPLIED = "replied"
#: Lease owner of a claim handed to the work queue: any worker may take it.
QUEUED = "queue"
#: How long a claim's lease lasts without being renewed.
MESSAGE_LEASE = timedelta(minutes=2)
#: How long an inbox row is left to the process that wrote it before anyone may replay it.
INBOX_LEASE = timedelta(seconds=60)


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
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    reply_started_at: datetime | None = None


def _claim(row: SlackMessage) -> MessageClaim:
    return MessageClaim(
        id=row.id, team_id=row.team_id, channel_id=row.channel_id, message_ts=row.message_ts,
        thread_ts=row.thread_ts, user_id=row.user_id, file_ids=tuple(row.file_ids or ()), status=row.status,
        reply_ts=row.reply_ts, created_at=row.created_at, replied_at=row.replied_at,
        lease_owner=row.lease_owner, lease_expires_at=row.lease_expires_at, reply_started_at=row.reply_started_at,
    )


def _insert_ignoring_duplicates(session: Session, table: type, values: Mapping[str, Any],
                                index_elements: list[str], returning: Any) -> bool:
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        module = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(table).values(**values).on_conflict_do_nothing(
            index_elements=index_elements).returning(returning)
        return session.execute(stmt).scalar_one_or_none() is not None
    # Any other database: a savepoint makes the duplicate insert harmless.
    try:
        with session.begin_nested():
            session.add(table(**values))
    except IntegrityError:
        return False
    return True


# -- claims ------------------------------------------------------------------------------------


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
    owner: str | None = None,
    lease: timedelta = MESSAGE_LEASE,
) -> bool:
    """Insert the row unless (channel_id, message_ts) exists; True when this call inserted it.

    With ``owner`` the new claim is leased to it at once (``QUEUED``: parked for any worker).
    """
    values = {
        "team_id": team_id, "channel_id": channel_id, "message_ts": message_ts, "thread_ts": thread_ts,
        "user_id": user_id, "file_ids": list(file_ids), "status": RECEIVED, "created_at": now,
        "lease_owner": owner, "lease_expires_at": now + lease if owner else None,
    }
    return _insert_ignoring_duplicates(session, SlackMessage, values, ["channel_id", "message_ts"], SlackMessage.id)


def get_message(session: Session, channel_id: str, message_ts: str) -> MessageClaim | None:
    row = session.execute(
        select(SlackMessage).where(SlackMessage.channel_id == channel_id, SlackMessage.message_ts == message_ts)
    ).scalar_one_or_none()
    return _claim(row) if row is not None else None


def _lease_free(owner: str, now: datetime, current_owner: str | None) -> ColumnElement[bool]:
    free = or_(
        SlackMessage.lease_expires_at.is_(None),
        SlackMessage.lease_expires_at < now,
        SlackMessage.lease_owner == owner,
        SlackMessage.lease_owner == QUEUED,
    )
    if owner_is_dead(current_owner):
        free = or_(free, SlackMessage.lease_owner == current_owner)
    return free


def take_message(session: Session, claim_id: int, owner: str, now: datetime,
                 lease: timedelta = MESSAGE_LEASE) -> bool:
    """Lease a ``received`` claim to ``owner``; False when it is replied or another live process holds it."""
    current = session.execute(
        select(SlackMessage.status, SlackMessage.lease_owner).where(SlackMessage.id == claim_id)
    ).one_or_none()
    if current is None or current.status != RECEIVED:
        return False
    result = session.execute(
        update(SlackMessage)
        .where(SlackMessage.id == claim_id, SlackMessage.status == RECEIVED,
               _lease_free(owner, now, current.lease_owner))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew_leases(session: Session, claim_ids: Sequence[int], owner: str, until: datetime) -> int:
    """Push back the expiry of ``owner``'s leases on these claims (a heartbeat); returns how many."""
    if not claim_ids:
        return 0
    result = session.execute(
        update(SlackMessage)
        .where(SlackMessage.id.in_(list(claim_ids)), SlackMessage.lease_owner == owner,
               SlackMessage.status == RECEIVED)
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def hand_over(session: Session, claim_id: int, owner: str, new_owner: str | None, until: datetime | None) -> None:
    """Pass ``owner``'s lease on a claim to ``new_owner`` (``QUEUED``, or None to free it) until ``until``."""
    session.execute(
        update(SlackMessage)
        .where(SlackMessage.id == claim_id, SlackMessage.lease_owner == owner)
        .values(lease_owner=new_owner, lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )


def mark_replying(session: Session, claim_id: int, now: datetime) -> datetime | None:
    """Note that a reply is about to be posted; returns when an earlier attempt did so (None: never)."""
    earlier = session.execute(select(SlackMessage.reply_started_at).where(SlackMessage.id == claim_id)).scalar_one()
    if earlier is None:
        session.execute(update(SlackMessage).where(SlackMessage.id == claim_id).values(reply_started_at=now))
    return earlier


def mark_replied(session: Session, claim_id: int, reply_ts: str | None, now: datetime) -> None:
    session.execute(
        update(SlackMessage).where(SlackMessage.id == claim_id)
        .values(status=REPLIED, reply_ts=reply_ts, replied_at=now, lease_owner=None, lease_expires_at=None)
    )


def unfinished(session: Session, *, created_before: datetime | None = None, now: datetime | None = None,
               owner: str | None = None, limit: int = 500) -> list[MessageClaim]:
    """Claims still ``received`` (oldest first): interrupted by a crash, or waiting out an outage.

    With ``now``, only those nobody else holds: lease free or expired, held by ``owner``
    itself, or by a process on this host that is gone.
    """
    stmt = select(SlackMessage).where(SlackMessage.status == RECEIVED)
    if created_before is not None:
        stmt = stmt.where(SlackMessage.created_at < created_before)
    rows = session.execute(stmt.order_by(SlackMessage.id).limit(limit)).scalars().all()
    claims = [_claim(row) for row in rows]
    if now is None:
        return claims
    return [
        claim for claim in claims
        if claim.lease_expires_at is None or claim.lease_expires_at < now
        or (owner is not None and claim.lease_owner == owner) or owner_is_dead(claim.lease_owner)
    ]


def claims_with_file(session: Session, channel_id: str, file_id: str, *, since: datetime) -> list[MessageClaim]:
    """Recent claims in ``channel_id`` that include ``file_id`` (the JSON list is checked in Python, portably)."""
    rows = session.execute(
        select(SlackMessage).where(SlackMessage.channel_id == channel_id, SlackMessage.created_at >= since)
        .order_by(SlackMessage.id.desc()).limit(500)
    ).scalars().all()
    return [_claim(row) for row in rows if file_id in (row.file_ids or ())]


# -- the inbox ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """An acknowledged Events API delivery waiting in the inbox."""

    id: int
    event_id: str
    body: str
    attempts: int
    received_at: datetime


def save_deliveries(session: Session, deliveries: Sequence[tuple[str, str]], *, owner: str, now: datetime,
                    lease: timedelta = INBOX_LEASE) -> None:
    """Keep ``(event_id, body)`` pairs, leased to ``owner``; an event id already waiting is left as it is."""
    if not deliveries:
        return
    rows = [{"event_id": event_id, "body": body, "received_at": now, "attempts": 0, "lease_owner": owner,
             "lease_expires_at": now + lease} for event_id, body in deliveries]
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        module = sqlite if dialect == "sqlite" else postgresql
        session.execute(module.insert(SlackInbox).on_conflict_do_nothing(index_elements=["event_id"]), rows)
        return
    for row in rows:
        try:
            with session.begin_nested():
                session.add(SlackInbox(**row))
        except IntegrityError:
            continue


def delivery_done(session: Session, event_id: str) -> None:
    session.execute(delete(SlackInbox).where(SlackInbox.event_id == event_id))


def take_deliveries(session: Session, owner: str, now: datetime, *, limit: int = 100,
                    lease: timedelta = INBOX_LEASE) -> list[Delivery]:
    """Lease to ``owner`` the deliveries whose lease expired or whose writer is gone (oldest first)."""
    rows = session.execute(
        select(SlackInbox.id, SlackInbox.lease_owner, SlackInbox.lease_expires_at)
        .order_by(SlackInbox.id).limit(limit)
    ).all()
    taken: list[int] = []
    for row in rows:
        free: ColumnElement[bool] = or_(SlackInbox.lease_expires_at.is_(None), SlackInbox.lease_expires_at < now)
        if owner_is_dead(row.lease_owner):
            free = or_(free, SlackInbox.lease_owner == row.lease_owner)
        elif not (row.lease_expires_at is None or row.lease_expires_at < now):
            continue
        result = session.execute(
            update(SlackInbox).where(SlackInbox.id == row.id, free)
            .values(lease_owner=owner, lease_expires_at=now + lease, attempts=SlackInbox.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            taken.append(row.id)
    if not taken:
        return []
    found = session.execute(select(SlackInbox).where(SlackInbox.id.in_(taken)).order_by(SlackInbox.id)).scalars()
    return [Delivery(r.id, r.event_id, r.body, r.attempts, r.received_at) for r in found]
