"""The four migration checks worth having, on SQLite and PostgreSQL: one head; an empty
database upgrades to head; models and migrations agree; every revision goes down and up."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from db.base import Base
from db.migrate import alembic_config, current_revision, downgrade, head_revision, include_object, upgrade


def test_there_is_exactly_one_head():
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


def test_an_empty_database_upgrades_to_head(empty_database):
    upgrade(empty_database.engine)
    assert current_revision(empty_database.engine) == head_revision()
    assert {"images", "sightings", "labels", "label_terms", "search_documents"} <= set(
        inspect(empty_database.engine).get_table_names()
    )


def test_models_and_migrations_agree(empty_database):
    upgrade(empty_database.engine)
    with empty_database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "compare_server_default": True, "include_object": include_object,
        })
        assert compare_metadata(context, Base.metadata) == []


def test_every_revision_goes_down_and_up_again(empty_database):
    revisions = list(ScriptDirectory.from_config(alembic_config()).walk_revisions("base", "heads"))
    upgrade(empty_database.engine)
    for revision in revisions:  # newest first
        downgrade(empty_database.engine, revision.down_revision or "base")
    assert current_revision(empty_database.engine) is None
    upgrade(empty_database.engine)
    assert current_revision(empty_database.engine) == head_revision()


def test_full_text_search_is_built_for_the_dialect(empty_database):
    upgrade(empty_database.engine)
    names = set(inspect(empty_database.engine).get_table_names())
    if empty_database.dialect == "sqlite":
        assert "search_fts" in names
    else:
        indexes = {ix["name"] for ix in inspect(empty_database.engine).get_indexes("search_documents")}
        assert {"ix_search_documents_labels_tsv", "ix_search_documents_text_tsv"} <= indexes


def test_the_app_refuses_a_database_behind_head(empty_database):
    from bot.errors import SchemaOutOfDate

    upgrade(empty_database.engine)
    downgrade(empty_database.engine, "base")
    empty_database.engine.dispose()
    with empty_database.engine.begin() as connection:  # a table left behind: not "empty", so no auto-upgrade
        connection.exec_driver_sql("CREATE TABLE leftover (id INTEGER)")
    with pytest.raises(SchemaOutOfDate, match="imgbot db upgrade"):
        empty_database.ensure_schema()


def test_an_app_refused_for_its_schema_closes_its_database_connections(empty_database, monkeypatch):
    from bot.config import Settings
    from bot.errors import SchemaOutOfDate
    from bot.storage.memory import MemoryStorage
    from bot.wiring import build_core
    from db.session import Database

    with empty_database.engine.begin() as connection:  # not empty, not migrated: refused
        connection.exec_driver_sql("CREATE TABLE leftover (id INTEGER)")
    disposed: list[str] = []
    dispose = Database.dispose

    def recorded(database: Database) -> None:
        disposed.append(database.engine.url.render_as_string(hide_password=False))
        dispose(database)

    monkeypatch.setattr(Database, "dispose", recorded)
    url = empty_database.engine.url.render_as_string(hide_password=False)
    with pytest.raises(SchemaOutOfDate):
        build_core(Settings(database_url=url), storage=MemoryStorage(), analyzer_factory=lambda: None)
    assert disposed == [url]
