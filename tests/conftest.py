"""Shared fixtures: settings on temporary folders, a migrated database (SQLite, and
PostgreSQL when ``IMGBOT_TEST_POSTGRES_URL`` is set — ``.ci/run`` sets it), the
in-process fakes, and a ``Core`` built by the same ``build_core`` the CLI uses."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.storage.memory import MemoryStorage
from bot.wiring import Core, build_core
from db.session import Database
from tests.fakes.analyzer import FakeAnalyzer

POSTGRES_URL = os.environ.get("IMGBOT_TEST_POSTGRES_URL")
KEEP = {"IMGBOT_TEST_POSTGRES_URL", "IMGBOT_TEST_SLOW"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's Slack, AWS or imgbot settings; AWS calls get fake credentials."""
    for name in list(os.environ):
        if name in KEEP:
            continue
        if name.startswith(("IMGBOT_", "SLACK_", "AWS_")) or name in {"DATABASE_URL", "PORT"}:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def create_postgres_database() -> str:
    """A new, empty PostgreSQL database; returns its URL."""
    assert POSTGRES_URL
    name = f"imgbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    assert POSTGRES_URL
    name = make_url(url).database
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_postgres_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the session; tests empty it before use."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need IMGBOT_TEST_POSTGRES_URL (bash .ci/run sets it up)")
    url = create_postgres_database()
    database = Database(url)
    database.ensure_schema()
    database.dispose()
    yield url
    drop_postgres_database(url)


def _empty_postgres(url: str) -> None:
    database = Database(url)
    with database.engine.begin() as connection:
        tables = connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )).scalars().all()
        if tables:
            connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/imgbot.db"
    url: str = request.getfixturevalue("migrated_postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: os.PathLike[str]) -> Settings:
    return Settings(database_url=database_url, storage_url=f"file://{tmp_path}/images", concurrency=4)


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def fake_analyzer() -> FakeAnalyzer:
    return FakeAnalyzer()


@pytest.fixture
def core(settings: Settings, storage: MemoryStorage, fake_analyzer: FakeAnalyzer) -> Iterator[Core]:
    built = build_core(settings, storage=storage, analyzer_factory=lambda: fake_analyzer)
    yield built
    built.database.dispose()


@pytest.fixture
def pipeline(core: Core):  # type: ignore[no-untyped-def]
    return core.pipeline


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[Database]:
    """A database with no tables at all (not migrated), of each kind."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/empty.db")
        yield database
        database.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need IMGBOT_TEST_POSTGRES_URL (bash .ci/run sets it up)")
    url = create_postgres_database()
    database = Database(url)
    yield database
    database.dispose()
    drop_postgres_database(url)
