"""The query plans behind a piece of code: which statements it runs, and what ``EXPLAIN`` says of them.

``bench/search.py`` prints them and ``tests/test_search_plans.py`` asserts on the
index names in them. Plans are read on a separate connection with the same
bound parameters, so nothing is ever interpolated into SQL text.

    with captured_statements(engine) as statements:
        core.search("label:cat")
    for statement in statements:
        print("\\n".join(explain(engine, statement)))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["Statement", "captured_statements", "explain"]


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: Any


@contextmanager
def captured_statements(engine: Engine) -> Iterator[list[Statement]]:
    """Every SELECT run on ``engine`` inside the block, with its parameters, in order."""
    captured: list[Statement] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append(Statement(statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield captured
    finally:
        event.remove(engine, "before_cursor_execute", record)


def explain(engine: Engine, statement: Statement, *, avoid_scans: bool = False) -> list[str]:
    """The plan of ``statement``: SQLite's ``EXPLAIN QUERY PLAN`` as an indented tree,
    PostgreSQL's ``EXPLAIN`` lines.

    ``avoid_scans`` (PostgreSQL) plans as if sequential scans, nested loops and merge joins
    were very costly, which on a handful of test rows shows whether an index *can* answer each
    condition (on big tables the planner chooses that by itself; on tiny ones reading
    everything, or walking a join in id order, is cheaper). SQLite plans without row counts unless ``ANALYZE`` has
    run, so its plans are the same for ten rows as for a million.
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if avoid_scans and engine.dialect.name == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_nestloop = off")
            cursor.execute("SET LOCAL enable_mergejoin = off")
        if engine.dialect.name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement.sql, statement.parameters)
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, _unused, detail in cursor.fetchall():
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + str(detail))
            return lines
        cursor.execute("EXPLAIN " + statement.sql, statement.parameters)
        return [str(row[0]) for row in cursor.fetchall()]
    finally:
        connection.rollback()
        connection.close()
