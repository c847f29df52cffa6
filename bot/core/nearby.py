"""Near-duplicates by perceptual hash: every image's 64-bit pHash in memory, searched with numpy.

A million hashes are 8 MB; XOR and a population count over all of them take a few
milliseconds, which is simpler and faster than any index for distances this large
(a bucketed index would need many buckets for 10 bits). Resized, recompressed and
re-levelled copies sit 0-2 bits apart, a light crop 6-12, different photos 18 and more
(measured on the bundled samples), hence ``DUPLICATE_MAX_DISTANCE``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bot.core.id_rows import IdRows

#: Without embeddings: at most this many differing bits of 64 make two images near-duplicates.
DUPLICATE_MAX_DISTANCE = 10
#: With embeddings (calibrated in ``bot/analyzers/local/embedding.py``): this close by hash alone…
DUPLICATE_HASH_ALONE = 6
#: …or this close by hash and at least this alike by embedding (crops, caption strips, recompression).
DUPLICATE_HASH_WITH_EMBEDDING = 24
DUPLICATE_MIN_COSINE = 0.82


def is_near_duplicate(hash_distance: int, similarity: float | None) -> bool:
    """The rule: close by hash alone, or close by hash and alike by embedding (``similarity``, the
    embeddings' cosine); ``None`` when either image has no embedding, and then the hash alone decides."""
    if hash_distance <= DUPLICATE_HASH_ALONE:
        return True
    if similarity is None:
        return hash_distance <= DUPLICATE_MAX_DISTANCE
    return hash_distance <= DUPLICATE_HASH_WITH_EMBEDDING and similarity >= DUPLICATE_MIN_COSINE


def uninformative(phash: int) -> bool:
    """A hash with at most one bit set says nothing: every flat colour and smooth gradient has it, so
    it would make a blank slide a "duplicate" of every other blank picture."""
    return (phash & 0xFFFF_FFFF_FFFF_FFFF).bit_count() <= 1


def to_signed(value: int) -> int:
    """A 64-bit hash as the signed integer a BIGINT column holds."""
    return value - (1 << 64) if value >= 1 << 63 else value


class HashIndex:
    """Image id → pHash (as unsigned 64-bit words, for XOR and a population count)."""

    def __init__(self) -> None:
        self._rows = IdRows(np.uint64)

    def __len__(self) -> int:
        return len(self._rows)

    def upsert(self, rows: Iterable[tuple[int, int]]) -> None:
        """Add (image id, signed pHash) rows; an id already known gets its new hash. Uninformative hashes
        are kept too (so a changed image replaces its old hash), but ``near`` never matches them."""
        self._rows.upsert((image_id, np.int64(phash).view(np.uint64)) for image_id, phash in rows)

    def hash_of(self, image_id: int) -> int | None:
        row = self._rows.row(image_id)
        return None if row is None else int(row.view(np.int64))

    def near(self, phash: int, max_distance: int = DUPLICATE_MAX_DISTANCE,
             limit: int = 10_000) -> list[tuple[int, int]]:
        """(image id, distance) of the images within ``max_distance`` bits of ``phash``, closest first
        (nothing for an uninformative hash, and never an image whose own hash is)."""
        if uninformative(phash):
            return []
        ids, hashes = self._rows.snapshot()
        distances = np.bitwise_count(hashes ^ np.int64(phash).view(np.uint64))
        found = np.flatnonzero((distances <= max_distance) & (np.bitwise_count(hashes) > 1))
        order = found[np.argsort(distances[found], kind="stable")][:limit]
        return [(int(ids[i]), int(distances[i])) for i in order]


def duplicate_groups(hashes: dict[int, int], max_distance: int = DUPLICATE_MAX_DISTANCE,
                     chunk: int = 256) -> list[list[int]]:
    """Groups (two or more ids, smallest first) of images linked by near-duplicate hashes, largest group first.

    All pairs at once, in chunks: 10,000 images are 100 million comparisons, a fraction of a second."""
    hashes = {image_id: phash for image_id, phash in hashes.items() if not uninformative(phash)}
    ids = np.fromiter(hashes.keys(), dtype=np.int64, count=len(hashes))
    values = np.fromiter(hashes.values(), dtype=np.int64, count=len(hashes)).view(np.uint64)
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(ids), chunk):
        block = values[start:start + chunk]
        later = values[start:]  # each pair once: this block against itself and what follows
        distances = np.bitwise_count(block[:, None] ^ later[None, :])
        rows, cols = np.nonzero(distances <= max_distance)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            a, b = root(start + row), root(start + col)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for index, image_id in enumerate(ids.tolist()):
        groups.setdefault(root(index), []).append(image_id)
    found = [sorted(group) for group in groups.values() if len(group) > 1]
    return sorted(found, key=lambda group: (-len(group), group[0]))
