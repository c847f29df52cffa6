"""Engine, sessions and schema checks for one ``DATABASE_URL``.

SQLite gets WAL, foreign keys and a busy timeout so several analysis threads
can write; PostgreSQL is used as configured. ``ensure_schema`` migrates an
empty database on first use and refuses to run on an out-of-date one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import ConfigError, SchemaOutOfDate
from db.group_commit import GroupCommit

log = logging.getLogger("imgbot.db")

T = TypeVar("T")


def normalise_url(url: str) -> URL:
    """Accept the URLs people paste (``postgres://``, ``postgresql://``) and pick the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a technical message
        raise ConfigError(f"DATABASE_URL is not a valid database URL: {url!r}") from exc
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine: Engine = _create_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite writes one transaction at a time: the busiest writes go through one thread (see
        # ``db.group_commit``). An in-memory database is one per connection, so it cannot.
        self._writer = GroupCommit(self.transaction) if (
            self.dialect == "sqlite" and self.shared_between_connections) else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def shared_between_connections(self) -> bool:
        """False for an in-memory SQLite database: each connection would see an empty database of its own."""
        return not (self.dialect == "sqlite" and self.url.database in (None, "", ":memory:"))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def write(self, work: Callable[[Session], T], *, appends: bool = False) -> T:
        """``work(session)`` in a write transaction, committed before this returns its result.

        For the writes of every image (recording it, saving its results): on SQLite they are
        committed together with other threads' (``GroupCommit``), elsewhere in a transaction of
        their own. ``work`` may run twice (again alone after its batch failed), so it must only
        touch the database. ``appends``: see ``GroupCommit.run``."""
        if self._writer is not None:
            return self._writer.run(work, appends=appends)
        with self.transaction() as session:
            return work(session)

    def ensure_schema(self, *, auto_upgrade: bool = True) -> None:
        """Migrate an empty database; refuse one whose schema is not at head."""
        from db.migrate import current_revision, head_revision, upgrade

        head = head_revision()
        current = current_revision(self.engine)
        if current == head:
            return
        if current is None and auto_upgrade and not _has_tables(self.engine):
            log.info("empty database, applying migrations to %s", head)
            upgrade(self.engine)
            return
        raise SchemaOutOfDate(current, head)

    def dispose(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.engine.dispose()


def is_transient(exc: BaseException) -> bool:
    """A database error that may pass on its own: a dropped connection, a server restarting, a full pool."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeout))


def _has_tables(engine: Engine) -> bool:
    return bool(inspect(engine).get_table_names())


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # Many rows as one INSERT … VALUES (…), (…) (SQLAlchemy's "insertmanyvalues", as on PostgreSQL)
        # rather than a row at a time: Python's sqlite3 lets go of the interpreter for every row.
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    event.listen(engine, "connect", _postgres_settings)
    return engine


def _postgres_settings(dbapi_connection: Any, _record: Any) -> None:
    """No JIT: imgbot's statements take milliseconds, and compiling one that the planner guesses is
    costly (a count over a million rows' worth of estimates) added 15-40 ms to it."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SET jit = off")
    cursor.close()
    dbapi_connection.commit()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
