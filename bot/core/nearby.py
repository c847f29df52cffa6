"""Near-duplicates by perceptual hash: every image's 64-bit pHash in memory, searched with numpy.

A million hashes are 8 MB; XOR and a population count over all of them take a few
milliseconds, which is simpler and faster than any index for distances this large
(a bucketed index would need many buckets for 10 bits). Resized, recompressed and
re-levelled copies sit 0-2 bits apart, a light crop 6-12, different photos 18 and more
(measured on the bundled samples), hence ``DUPLICATE_MAX_DISTANCE``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bot.core.id_rows import IdRows
from bot.core.vectors import DIM, DUPLICATE_MAX_CODE_BITS, sign_code

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


def duplicate_groups(hashes: dict[int, int], likeness: Likeness | None = None,
                     chunk: int = 256) -> list[list[int]]:
    """Groups (two or more ids, smallest first) of images linked as near-duplicates, largest group first.

    The rule is ``is_near_duplicate``'s, as for ``dupes:``: with ``likeness`` (the images'
    embeddings; an image without one is judged by its hash alone), pairs up to
    ``DUPLICATE_HASH_WITH_EMBEDDING`` bits apart are compared by cosine; without, only the hash
    counts. All pairs at once, in chunks: 10,000 images are 50 million comparisons. At 24 bits a
    few percent of unrelated photos are candidates (over a million pairs), so their sign codes
    first rule out the ones too unlike (``DUPLICATE_MAX_CODE_BITS``); only the images in the
    pairs left are read for a cosine."""
    hashes = {image_id: phash for image_id, phash in hashes.items() if not uninformative(phash)}
    ids = np.fromiter(hashes.keys(), dtype=np.int64, count=len(hashes))
    values = np.fromiter(hashes.values(), dtype=np.int64, count=len(hashes)).view(np.uint64)
    codes = _Codes.of(ids, likeness) if likeness is not None else None
    reach = DUPLICATE_HASH_WITH_EMBEDDING if codes is not None else DUPLICATE_MAX_DISTANCE
    linked: list[tuple[np.ndarray, np.ndarray]] = []
    unsure: list[tuple[np.ndarray, np.ndarray]] = []  # close enough by code: the cosine decides
    differing = np.empty(min(chunk, len(ids)) * len(ids), dtype=np.uint64)  # reused: no fresh pages per chunk
    distances = np.empty(len(differing), dtype=np.uint8)
    for start in range(0, len(ids), chunk):
        block = values[start:start + chunk]
        later = values[start:]  # each pair once: this block against itself and what follows
        size = len(block) * len(later)
        np.bitwise_xor(block[:, None], later[None, :], out=differing[:size].reshape(len(block), len(later)))
        np.bitwise_count(differing[:size], out=distances[:size])
        close = np.flatnonzero(distances[:size] <= reach)
        firsts, seconds = close // len(later) + start, close % len(later) + start
        if codes is None:
            linked.append((firsts, seconds))
            continue
        sure, maybe = codes.sort_out(firsts, seconds, distances[close])
        linked.append((firsts[sure], seconds[sure]))
        unsure.append((firsts[maybe], seconds[maybe]))
    if codes is not None and likeness is not None and unsure:
        firsts, seconds = (np.concatenate(part) for part in zip(*unsure, strict=True))
        alike = codes.alike(firsts, seconds, likeness.read)
        linked.append((firsts[alike], seconds[alike]))
    return _components(ids, linked)


def _components(ids: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[list[int]]:
    """The groups the linked pairs (rows of ``ids``) make, largest first, each in id order."""
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for firsts, seconds in pairs:
        for first, second in zip(firsts.tolist(), seconds.tolist(), strict=True):
            a, b = root(first), root(second)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for index, image_id in enumerate(ids.tolist()):
        groups.setdefault(root(index), []).append(image_id)
    found = [sorted(group) for group in groups.values() if len(group) > 1]
    return sorted(found, key=lambda group: (-len(group), group[0]))


@dataclass(frozen=True)
class Likeness:
    """Some images' embeddings as ``duplicate_groups`` compares them: every one's sign code at once
    (``vectors.sign_code``), and a reader of the vectors themselves, asked only for the images in
    pairs whose codes are close."""

    codes: Mapping[int, np.ndarray]
    read: Callable[[Sequence[int]], Mapping[int, np.ndarray]]

    @classmethod
    def of_vectors(cls, vectors: Mapping[int, np.ndarray]) -> Likeness:
        return cls({image_id: sign_code(vector) for image_id, vector in vectors.items()},
                   lambda image_ids: {i: vectors[i] for i in image_ids if i in vectors})


class _Codes:
    """The sign codes of ``duplicate_groups``' images, row for row (zeros and absent where none)."""

    def __init__(self, codes: np.ndarray, present: np.ndarray, ids: np.ndarray) -> None:
        self.codes, self.present, self.ids = codes, present, ids

    @classmethod
    def of(cls, ids: np.ndarray, likeness: Likeness) -> _Codes:
        codes = np.zeros((len(ids), DIM // 64), dtype=np.uint64)
        present = np.zeros(len(ids), dtype=bool)
        for row, image_id in enumerate(ids.tolist()):
            code = likeness.codes.get(image_id)
            if code is not None:
                codes[row], present[row] = code, True
        return cls(codes, present, ids)

    def sort_out(self, firsts: np.ndarray, seconds: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of these pairs (rows, ``bits`` apart by hash): the ones near-duplicates without a cosine (by
        hash alone, or without two embeddings), and the ones whose codes leave the cosine to decide."""
        both = self.present[firsts] & self.present[seconds]
        sure = (bits <= DUPLICATE_HASH_ALONE) | (~both & (bits <= DUPLICATE_MAX_DISTANCE))
        maybe = np.flatnonzero(both & ~sure)
        code_bits = np.bitwise_count(self.codes[firsts[maybe]] ^ self.codes[seconds[maybe]]).sum(axis=1)
        return np.flatnonzero(sure), maybe[code_bits <= DUPLICATE_MAX_CODE_BITS]

    def alike(self, firsts: np.ndarray, seconds: np.ndarray,
              read: Callable[[Sequence[int]], Mapping[int, np.ndarray]]) -> np.ndarray:
        """Which of these pairs (rows) have embeddings at least ``DUPLICATE_MIN_COSINE`` alike."""
        rows = np.unique(np.concatenate([firsts, seconds]))  # sorted: a pair's rows are found by bisection
        wanted = self.ids[rows].tolist()
        vectors = read(wanted)
        matrix = np.zeros((len(rows), DIM), dtype=np.float32)  # a vector missing now counts as unlike
        for n, image_id in enumerate(wanted):
            vector = vectors.get(image_id)
            if vector is not None:
                matrix[n] = vector
        cosine = np.einsum("ij,ij->i", matrix[np.searchsorted(rows, firsts)], matrix[np.searchsorted(rows, seconds)])
        return np.flatnonzero(cosine >= DUPLICATE_MIN_COSINE)
