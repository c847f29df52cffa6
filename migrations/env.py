"""Alembic environment: targets imgbot's metadata with the engine handed over in code."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from db import models  # noqa: F401  (registers every table on the metadata)
from db.base import Base
from db.migrate import include_object


def run_migrations() -> None:
    config = context.config
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("migrations need an engine (db.migrate) or sqlalchemy.url")
        engine = create_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Two deploys migrating at once would race; a transaction-level advisory lock serialises them.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(723411)")
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            compare_server_default=True,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
