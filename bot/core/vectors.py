""""More like this": every embedding's sign code in memory, a Hamming pass with numpy, exact cosine on the best.

A 256-d unit vector's signs are a 256-bit code whose Hamming distance to another code
estimates the angle between the vectors (random-hyperplane hashing: the embeddings come out
of a random rotation, so each sign is such a hyperplane). A million codes are 32 MB and one
pass over them takes about 15 ms; the ``CANDIDATES`` closest then get their exact cosine
from the stored vectors. Nothing to build or keep on disk: it is filled from the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from bot.core.id_rows import IdRows

log = logging.getLogger("imgbot.looks")

DIM = 256
#: How many codes the Hamming pass hands on to the exact cosine.
CANDIDATES = 2000
#: Codes further apart than this cannot be near-duplicates (cosine ≥ 0.82 of the 256-d vectors).
#: Each sign differs with probability angle / π of the 1,280-d features the signs come from; those
#: are at least 0.76 alike when the 256-d vectors are 0.82 alike (the projection moves such
#: cosines by at most 0.06, see ``bot/analyzers/local/embedding.py``), so 58 bits are expected,
#: give or take 7: 90 is 4.8 standard deviations out. Unrelated photos (cosine 0.1-0.3) sit
#: 100-120 bits apart, so most of a hash's loose candidates are dropped without reading a vector.
DUPLICATE_MAX_CODE_BITS = 90


STORED_BYTES = DIM * 2  # little-endian float16


def from_bytes(data: bytes) -> np.ndarray:
    """A stored embedding (little-endian float16) as float32; ``ValueError`` for any other length."""
    if len(data) != STORED_BYTES:
        raise ValueError(f"an embedding is {STORED_BYTES} bytes, this one {len(data)}")
    return np.frombuffer(data, dtype="<f2").astype(np.float32)


def readable(rows: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, np.ndarray]]:
    """(image id, vector) of the stored rows that are whole; a damaged row is logged and left out, so
    one bad row costs its image's "more like this", not everyone's."""
    for image_id, data in rows:
        try:
            yield image_id, from_bytes(data)
        except ValueError as err:
            log.warning("image=%s embedding unreadable (%s): left out; imgbot rescan-images redoes it",
                        image_id, err)


def read_all(rows: Iterable[tuple[int, bytes]]) -> dict[int, np.ndarray]:
    """As ``readable``, as one dict, the whole rows converted at once (10,000 in 5 ms rather than 30)."""
    whole: list[tuple[int, bytes]] = []
    damaged: list[tuple[int, bytes]] = []
    for image_id, data in rows:
        (whole if len(data) == STORED_BYTES else damaged).append((image_id, data))
    for _ in readable(damaged):  # logs each
        pass
    if not whole:
        return {}
    matrix = np.frombuffer(b"".join(bytes(data) for _, data in whole), dtype="<f2").reshape(-1, DIM)
    vectors = matrix.astype(np.float32)
    return {image_id: vectors[n] for n, (image_id, _) in enumerate(whole)}


def sign_code(vector: np.ndarray) -> np.ndarray:
    """The 256 signs of ``vector`` packed into four 64-bit words."""
    return np.packbits(np.asarray(vector) > 0).view(np.uint64)


class CodeIndex:
    """Image id → sign code of its embedding (four 64-bit words)."""

    def __init__(self) -> None:
        self._rows = IdRows(np.uint64, (DIM // 64,))

    def __len__(self) -> int:
        return len(self._rows)

    def upsert(self, rows: Iterable[tuple[int, bytes]]) -> None:
        self._rows.upsert((image_id, sign_code(vector)) for image_id, vector in readable(rows))

    def rows(self, image_ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
        """The ids of ``image_ids`` in the index, and their codes in that order."""
        return self._rows.rows(image_ids)

    def distances(self, image_id: int, others: Iterable[int]) -> dict[int, int] | None:
        """Sign-code Hamming distance from ``image_id`` to each of ``others`` in the index
        (``None`` when ``image_id`` itself is not; ids not in the index are left out)."""
        mine = self._rows.row(image_id)
        if mine is None:
            return None
        known, codes = self._rows.rows(list(others))
        bits = np.bitwise_count(codes ^ mine).sum(axis=1)
        return {other: int(b) for other, b in zip(known, bits, strict=True)}

    def nearest(self, vector: np.ndarray, k: int = CANDIDATES) -> list[int]:
        """The ids of the ``k`` codes closest to ``vector``'s, closest first."""
        ids, codes = self._rows.snapshot()
        if not len(ids):
            return []
        bits = np.bitwise_count(codes ^ sign_code(vector))
        distance = bits[:, 0].astype(np.uint16) + bits[:, 1] + bits[:, 2] + bits[:, 3]
        if len(ids) > k:
            picked = np.argpartition(distance, k)[:k]
        else:
            picked = np.arange(len(ids))
        picked = picked[np.argsort(distance[picked], kind="stable")]
        return ids[picked].tolist()  # type: ignore[no-any-return]
