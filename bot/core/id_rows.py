"""Image id → one row of a numpy array, kept in memory for a whole-collection numpy pass.

The near-duplicate hashes (``nearby.HashIndex``) and the "more like this" sign codes
(``vectors.CodeIndex``) are both this: rows added or replaced at any time by the refresh
thread, read all at once by searches. Readers take a snapshot and work without the lock;
a write replaces the arrays (new rows) or one row in place (a changed image).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


class IdRows:
    """Thread-safe id → row store; ``shape`` is one row's shape (``()`` for a scalar)."""

    def __init__(self, dtype: np.dtype | type, shape: tuple[int, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._ids = np.empty(0, dtype=np.int64)
        self._rows = np.empty((0, *shape), dtype=dtype)
        self._position: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._position)

    def upsert(self, rows: Iterable[tuple[int, Any]]) -> None:
        """Add (image id, row) pairs; an id already known gets its new row."""
        new: dict[int, np.ndarray] = {}
        with self._lock:
            for image_id, row in rows:
                at = self._position.get(image_id)
                if at is not None:
                    self._rows[at] = row
                else:
                    new[image_id] = row
            if new:
                start = len(self._ids)
                self._position.update((image_id, start + n) for n, image_id in enumerate(new))
                self._ids = np.concatenate([self._ids, np.fromiter(new.keys(), dtype=np.int64, count=len(new))])
                added = np.asarray(list(new.values()), dtype=self._rows.dtype).reshape(-1, *self._rows.shape[1:])
                self._rows = np.concatenate([self._rows, added])

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, rows) as they are now, to search without holding the lock."""
        with self._lock:
            return self._ids, self._rows

    def row(self, image_id: int) -> np.ndarray | None:
        with self._lock:
            at = self._position.get(image_id)
            return None if at is None else self._rows[at].copy()

    def rows(self, image_ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
        """The ids of ``image_ids`` that are known, and their rows in that order."""
        with self._lock:
            known = [image_id for image_id in image_ids if image_id in self._position]
            return known, self._rows[[self._position[image_id] for image_id in known]]
