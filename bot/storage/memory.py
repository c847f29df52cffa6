"""The in-process fake ``Storage``: a dict behind a lock, with counters tests can assert on."""

from __future__ import annotations

import threading

from bot.core.types import StoredObject
from bot.errors import NotFound


class MemoryStorage:
    """``Storage`` in a dict; URIs are ``memory://KEY``.

    ``puts`` counts every ``put`` call (including repeats of the same key) so a test
    can say "the second copy was not stored again". ``fail_next`` makes the next
    calls raise, for testing how callers handle storage failures.
    """

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._failures: list[Exception] = []
        self.puts = 0
        self.gets = 0
        self.deletes = 0

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        with self._lock:
            self._raise_scripted_failure()
            self.puts += 1
            self._objects[key] = (bytes(data), content_type)
        return StoredObject(uri=f"memory://{key}", key=key)

    def get(self, key: str) -> bytes:
        with self._lock:
            self._raise_scripted_failure()
            self.gets += 1
            found = self._objects.get(key)
        if found is None:
            raise NotFound(f"The stored image {key} is missing.")
        return found[0]

    def delete(self, key: str) -> None:
        with self._lock:
            self._raise_scripted_failure()
            self.deletes += 1
            self._objects.pop(key, None)

    def fail_next(self, error: Exception, times: int = 1) -> None:
        """Make the next ``times`` calls (of any kind) raise ``error``."""
        with self._lock:
            self._failures.extend([error] * times)

    def content_type(self, key: str) -> str | None:
        with self._lock:
            found = self._objects.get(key)
        return found[1] if found else None

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._objects

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def _raise_scripted_failure(self) -> None:
        if self._failures:
            raise self._failures.pop(0)
