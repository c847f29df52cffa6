"""A fixed thread pool whose ``submit`` takes no Python-level lock.

``ThreadPoolExecutor.submit`` holds a module-wide lock (shared by every pool in the
process) while it queues the work and maybe starts a thread. Under a burst of 200
requests, with the GIL passed between many threads, a thread preempted while holding
that lock stalls every request thread behind it: the ack latency went from ~2 ms to
~250 ms in ``bench/ack.py``. Here the workers are started up front and ``submit`` is
one ``SimpleQueue.put`` (atomic, implemented in C), so the request thread never waits
on another thread to hand work off.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

log = logging.getLogger("imgbot.executor")

T = TypeVar("T")
_STOP = object()


class QueueExecutor(Executor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "imgbot-worker") -> None:
        if max_workers <= 0:
            raise ValueError("max_workers must be positive")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._shutdown = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}-{n}", daemon=True)
            for n in range(max_workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._shutdown:
            raise RuntimeError("cannot schedule new work after shutdown")
        future: Future[T] = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as err:  # handed to whoever waits on the future, as ThreadPoolExecutor does
                future.set_exception(err)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    item[0].cancel()
        for _ in self._threads:
            self._queue.put(_STOP)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()
