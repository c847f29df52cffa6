"""One writer thread for a SQLite database: the writes of many threads committed together.

SQLite lets one connection write at a time. When dozens of analysis threads each open their
own write transaction, they queue for that lock inside SQLite, whose busy handler sleeps
1-100 ms between tries and never hears that the lock is free; meanwhile each holder waits for
the interpreter between its statements, behind the other threads. On the throughput bench
(1,000 images, 2 cores) threads waited 0.77 s per transaction for a lock held 5-7 ms, and
those waits, not Rekognition, set the pace.

So the pace-setting writes of a SQLite database go to one thread. It takes what has queued up
(at most ``MAX_BATCH`` pieces of work), runs it in ONE transaction and hands each caller its
own result: the lock is taken once per batch by one connection, and a caller waits only for
its batch. A piece of work that raises does not take the others down: the batch is rolled
back and each piece runs again in a transaction of its own, so each caller gets its own
result or its own error.

Rows that only add to tables (an image's labels, text, colours…) go further: work marked
``appends`` runs after the rest of its batch, and the rows it hands to ``insert_rows`` are
held back and written for all the batch's images at once, one INSERT per table. Each
statement is a moment the writer lets go of the interpreter and then waits to take it back
behind the other threads; a batch of twenty analyses makes ~10 such statements, not ~200.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

log = logging.getLogger("imgbot.db")

T = TypeVar("T")
Work = Callable[[Session], Any]
Item = tuple[Work, "Future[Any]", bool]

#: ``Session.info`` key of the rows held back until the end of a batch.
_HELD = "imgbot.held_rows"

#: Pieces of work per transaction at most: enough for a second of a 50 images/s batch.
MAX_BATCH = 64


class GroupCommit:
    """Runs ``work(session)`` for any thread on one writer thread, batching what arrives together."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Session]], *, max_batch: int = MAX_BATCH
                 ) -> None:
        self._transaction = transaction
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def run(self, work: Callable[[Session], T], *, appends: bool = False) -> T:
        """``work``'s result once its transaction has committed (or its exception).

        ``appends``: ``work`` reads nothing that other work of its batch writes, so it may run
        last and its ``insert_rows`` may be written together with theirs."""
        if threading.current_thread() is self._thread:  # work that writes again: it is already in a transaction
            raise RuntimeError("GroupCommit.run called from its own writer thread")
        future: Future[T] = Future()
        self._start()
        self._queue.put((work, future, appends))
        return future.result()

    def close(self) -> None:
        """Finish what is queued and stop the thread (the next ``run`` starts another)."""
        with self._start_lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="imgbot-db-writer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                batch.append(following)
            live = [item for item in batch if item[1].set_running_or_notify_cancel()]
            self._commit(sorted(live, key=lambda item: item[2]))  # appending work last (a stable sort)

    def _commit(self, batch: list[Item]) -> None:
        try:
            results = []
            with self._transaction() as session:
                for work, _, appends in batch:
                    if appends:
                        session.info.setdefault(_HELD, {})
                    results.append(work(session))
                write_held_rows(session)
        except Exception as err:
            if len(batch) == 1:
                batch[0][1].set_exception(err)
                return
            log.debug("a batch of %d writes failed (%r); running each on its own", len(batch), err)
            for piece in batch:
                self._commit([piece])
            return
        except BaseException as err:  # the interpreter is going down: no caller may wait forever
            with self._start_lock:  # before anyone hears of it, so the next ``run`` starts another writer
                if self._thread is threading.current_thread():
                    self._thread = None
            for _, future, _ in batch:
                future.set_exception(err)
            raise
        for (_, future, _), result in zip(batch, results, strict=True):
            future.set_result(result)


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]], *, may_defer: bool = False) -> None:
    """INSERT ``rows`` into ``table``: now, or with the rest of the batch when appending work allows it."""
    held = session.info.get(_HELD) if may_defer else None
    if held is None:
        session.execute(insert(table), rows)
    else:
        held.setdefault(table, []).extend(rows)


def write_held_rows(session: Session) -> None:
    """Write the rows ``insert_rows`` held back, one statement per table, before the batch commits."""
    for table, rows in session.info.pop(_HELD, {}).items():
        session.execute(insert(table), rows)
