"""One writer thread for SQLite: every caller gets its own result, one bad piece of work fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.group_commit import GroupCommit, insert_rows
from db.session import Database


@pytest.fixture
def database(tmp_path) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    built = Database(f"sqlite:///{tmp_path}/writes.db")
    with built.transaction() as session:
        session.execute(text("CREATE TABLE notes (n INTEGER PRIMARY KEY)"))
    yield built
    built.dispose()


def _add(n: int):  # type: ignore[no-untyped-def]
    def work(session: Session) -> int:
        session.execute(text("INSERT INTO notes (n) VALUES (:n)"), {"n": n})
        return n * 10
    return work


def _wait_until_queued(writer: GroupCommit, count: int) -> None:
    deadline = time.monotonic() + 5
    while writer._queue.qsize() < count:  # noqa: SLF001 - the test holds the writer busy meanwhile
        assert time.monotonic() < deadline, "the work was not queued"
        time.sleep(0.01)


def _stored(database: Database) -> list[int]:
    with database.transaction() as session:
        return list(session.execute(text("SELECT n FROM notes ORDER BY n")).scalars())


def test_many_threads_writes_are_committed_together_and_each_gets_its_own_result(database):
    transactions = 0
    opened = database.transaction

    def counted():  # type: ignore[no-untyped-def]
        nonlocal transactions
        transactions += 1
        return opened()

    writer = GroupCommit(counted)
    started, gate = threading.Event(), threading.Event()

    def blocked(session: Session) -> None:  # holds the writer busy while the others queue up
        started.set()
        gate.wait(5)

    with ThreadPoolExecutor(max_workers=41) as pool:
        first = pool.submit(writer.run, blocked)
        started.wait(5)
        results = [pool.submit(writer.run, _add(n)) for n in range(40)]
        _wait_until_queued(writer, 40)
        gate.set()
        first.result()
        assert [future.result() for future in results] == [n * 10 for n in range(40)]
    writer.close()

    assert _stored(database) == list(range(40))
    assert transactions == 2  # the blocked one's, then the 40 queued behind it in one


def test_a_piece_of_work_that_fails_fails_alone(database):
    writer = GroupCommit(database.transaction)
    started, gate = threading.Event(), threading.Event()

    def hold_writer(session: Session) -> None:
        started.set()
        gate.wait(5)

    def duplicate(session: Session) -> None:
        session.execute(text("INSERT INTO notes (n) VALUES (1)"))  # 1 is also written by _add(1)

    with ThreadPoolExecutor(max_workers=5) as pool:
        hold = pool.submit(writer.run, hold_writer)
        started.wait(5)
        futures = [pool.submit(writer.run, work) for work in (_add(1), duplicate, _add(2), _add(3))]
        _wait_until_queued(writer, 4)
        gate.set()
        hold.result()
        outcomes = [future.exception() is None for future in futures]
    writer.close()

    assert outcomes == [True, False, True, True]
    assert _stored(database) == [1, 2, 3]


def test_it_starts_again_after_close_and_refuses_work_from_its_own_thread(database):
    writer = GroupCommit(database.transaction)
    assert writer.run(_add(5)) == 50
    writer.close()
    assert writer.run(_add(6)) == 60

    with pytest.raises(RuntimeError, match="own writer thread"):
        writer.run(lambda session: writer.run(_add(7)))
    writer.close()
    assert _stored(database) == [5, 6]


def test_a_sqlite_file_has_a_writer_thread_and_an_in_memory_database_none(database):
    assert database.write(_add(9)) == 90 and database._writer is not None  # noqa: SLF001
    memory = Database("sqlite://")
    try:
        assert memory._writer is None  # noqa: SLF001 - each connection of an in-memory database is another one
    finally:
        memory.dispose()


def test_appending_work_runs_last_and_its_rows_are_written_together(database):
    from sqlalchemy import Column, Integer, MetaData, Table, event

    notes = Table("notes", MetaData(), Column("n", Integer, primary_key=True))
    writer = GroupCommit(database.transaction)
    started, gate = threading.Event(), threading.Event()
    order: list[str] = []
    statements: list[str] = []
    event.listen(database.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    def hold_writer(session: Session) -> None:
        started.set()
        gate.wait(5)

    def append(n: int):  # type: ignore[no-untyped-def]
        def work(session: Session) -> None:
            order.append(f"append {n}")
            insert_rows(session, notes, [{"n": n}, {"n": n + 100}], may_defer=True)
        return work

    def plain(session: Session) -> None:
        order.append("plain")
        session.execute(text("INSERT INTO notes (n) VALUES (7)"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        hold = pool.submit(writer.run, hold_writer)
        started.wait(5)
        futures = [pool.submit(writer.run, append(1), appends=True)]
        _wait_until_queued(writer, 1)
        futures.append(pool.submit(writer.run, append(2), appends=True))
        _wait_until_queued(writer, 2)
        futures.append(pool.submit(writer.run, plain))
        _wait_until_queued(writer, 3)
        statements.clear()
        gate.set()
        hold.result()
        for future in futures:
            future.result()
    writer.close()

    assert order == ["plain", "append 1", "append 2"]  # the plain work first, whatever the arrival order
    assert sum("INSERT INTO notes" in statement for statement in statements) == 2  # one for 7, one for 4 rows
    assert _stored(database) == [1, 2, 7, 101, 102]


def test_rows_are_written_at_once_outside_an_appending_batch(database):
    from sqlalchemy import Column, Integer, MetaData, Table

    notes = Table("notes", MetaData(), Column("n", Integer, primary_key=True))
    with database.transaction() as session:
        insert_rows(session, notes, [{"n": 3}], may_defer=True)
        assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # it dies on purpose
def test_a_writer_thread_that_died_is_replaced(database):
    writer = GroupCommit(database.transaction)
    dying: list[threading.Thread] = []

    def leave(session: Session) -> None:
        dying.append(threading.current_thread())
        raise SystemExit  # what the interpreter going down looks like to the writer: it stops

    with pytest.raises(SystemExit):
        writer.run(leave)
    dying[0].join(timeout=10)  # its death is reported as it ends: within this test, whose filter expects it
    assert not dying[0].is_alive()
    assert writer.run(_add(4)) == 40  # a new writer took the work instead of leaving the caller waiting
    writer.close()
    assert _stored(database) == [4]
