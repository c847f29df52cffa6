"""Each Slack channel's mode (``/imgbot mode …``), read for every message so a change applies at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db import models

SETTINGS: Table = models.ChannelSetting.__table__  # type: ignore[assignment]


def mode_of(session: Session, channel_id: str) -> str | None:
    """The mode set for ``channel_id``, or None when nobody set one."""
    found = session.execute(select(SETTINGS.c.mode).where(SETTINGS.c.channel_id == channel_id)).scalar()
    return str(found) if found is not None else None


def set_mode(session: Session, channel_id: str, mode: str, user_id: str | None, now: datetime) -> None:
    upsert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = upsert(SETTINGS).values(channel_id=channel_id, mode=mode, set_by=user_id, set_at=now)
    session.execute(statement.on_conflict_do_update(
        index_elements=["channel_id"], set_={"mode": mode, "set_by": user_id, "set_at": now}))
