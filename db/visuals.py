"""Rows of ``image_visuals``, ``image_colors`` and ``image_color_names``: written with an analysis, read back
as ``ImageProperties``."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Table, select

from bot.core.nearby import DUPLICATE_MAX_DISTANCE, HashIndex, Likeness
from bot.core.types import DominantColor, ImageProperties
from bot.core.vectors import CodeIndex, read_all
from db import models

VISUALS: Table = models.ImageVisual.__table__  # type: ignore[assignment]
EMBEDDINGS: Table = models.ImageEmbedding.__table__  # type: ignore[assignment]
COLORS: Table = models.ImageColor.__table__  # type: ignore[assignment]
COLOR_NAMES: Table = models.ImageColorName.__table__  # type: ignore[assignment]


Rows = list[tuple[Table, list[dict[str, Any]]]]


def rows(image_id: int, properties: ImageProperties | None, phash: int | None,
         embedding: bytes | None = None, model: str | None = None) -> Rows:
    """The statements' rows for one image (none when nothing was computed)."""
    found: Rows = []
    if embedding is not None:
        found.append((EMBEDDINGS, [{"image_id": image_id, "seq": time.time_ns(), "model": (model or "")[:128],
                                    "vector": embedding}]))
    if properties is None:
        return found
    visual = {"image_id": image_id, "seq": time.time_ns(), "phash": phash, "brightness": properties.brightness,
              "sharpness": properties.sharpness, "contrast": properties.contrast, "source": properties.source}
    colors = [
        {"image_id": image_id, "rank": rank, "red": c.red, "green": c.green, "blue": c.blue, "hex": c.hex_code[:7],
         "css": c.css_color[:32], "simplified": c.simplified_color[:16], "percent": c.pixel_percent}
        for rank, c in enumerate(properties.dominant_colors)
    ]
    shares: dict[str, float] = {}
    for c in properties.dominant_colors:
        for name in {c.css_color[:32], c.simplified_color[:32]} - {""}:  # an answer may lack a CSS name
            shares[name] = max(shares.get(name, 0.0), c.pixel_percent)
    names = [{"image_id": image_id, "name": name, "percent": percent} for name, percent in shares.items()]
    return [*found, (VISUALS, [visual]), (COLORS, colors), (COLOR_NAMES, names)]


def stored_properties(connection: Connection, image_id: int) -> ImageProperties | None:
    """The colours and quality stored for one image, if any."""
    visual = connection.execute(select(VISUALS).where(VISUALS.c.image_id == image_id)).first()
    colors = connection.execute(select(COLORS).where(COLORS.c.image_id == image_id).order_by(COLORS.c.rank)).all()
    return to_properties(visual, colors)


def to_properties(visual: Any, colors: Sequence[Any]) -> ImageProperties | None:
    """From an ORM or plain row of ``image_visuals`` and the image's ``image_colors`` rows (in rank order)."""
    if visual is None:
        return None
    return ImageProperties(
        brightness=visual.brightness, sharpness=visual.sharpness, contrast=visual.contrast, source=visual.source,
        dominant_colors=tuple(
            DominantColor(red=c.red, green=c.green, blue=c.blue, hex_code=c.hex, css_color=c.css,
                          simplified_color=c.simplified, pixel_percent=c.percent)
            for c in colors
        ),
    )


def hashes_since(connection: Connection, seq: int) -> list[tuple[int, int, int]]:
    """(image id, pHash, seq) of the rows written after ``seq``."""
    return [(row.image_id, row.phash, row.seq) for row in connection.execute(
        select(VISUALS.c.image_id, VISUALS.c.phash, VISUALS.c.seq)
        .where(VISUALS.c.seq > seq, VISUALS.c.phash.is_not(None)).order_by(VISUALS.c.seq)
    )]


class _RefreshedCache:
    """An in-memory index kept up to date from a table whose rows carry ``seq``, the writer's clock in
    nanoseconds. Loads every row on first use (1,000,000 in about ten seconds), then, at most once per
    ``REFRESH_EVERY`` seconds, the rows written since it last looked; the look-back of ``LOOK_BACK_NS``
    covers transactions that committed later than they wrote."""

    LOOK_BACK_NS = 30 * 1_000_000_000
    REFRESH_EVERY = 1.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._seq = 0
        self._checked = 0.0
        self._lock = threading.Lock()

    def _rows_since(self, connection: Connection, seq: int) -> list[tuple[int, Any, int]]:
        """(image id, value, seq) of the rows written after ``seq``, in ``seq`` order."""
        raise NotImplementedError

    def _upsert(self, rows: list[tuple[int, Any, int]]) -> None:
        raise NotImplementedError

    @property
    def loaded(self) -> bool:
        """Whether every row has been loaded once (after that, ``refresh`` reads only new rows)."""
        return self._checked > 0

    def refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked < self.REFRESH_EVERY:
                return
            since = self._seq - self.LOOK_BACK_NS if self._seq else 0
            with self.engine.connect() as connection:
                found = self._rows_since(connection, since)
            self._upsert(found)
            if found:
                self._seq = max(self._seq, found[-1][2])
            self._checked = time.monotonic()


class HashCache(_RefreshedCache):
    """The near-duplicate index of this process (``HashIndex``), kept up to date from ``image_visuals``."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.index = HashIndex()

    def _rows_since(self, connection: Connection, seq: int) -> list[tuple[int, Any, int]]:
        return hashes_since(connection, seq)

    def _upsert(self, rows: list[tuple[int, Any, int]]) -> None:
        self.index.upsert((image_id, phash) for image_id, phash, _ in rows)

    def near(self, image_id: int, max_distance: int = DUPLICATE_MAX_DISTANCE) -> list[tuple[int, int]]:
        """(image id, distance) of ``image_id``'s near-duplicates, closest first, itself left out."""
        self.refresh()
        phash = self.index.hash_of(image_id)
        if phash is None:
            with self.engine.connect() as connection:
                phash = connection.execute(
                    select(VISUALS.c.phash).where(VISUALS.c.image_id == image_id)).scalar_one_or_none()
        if phash is None:
            return []
        return [(found, distance) for found, distance in self.index.near(phash, max_distance) if found != image_id]


def images_without_looks(connection: Connection, after_id: int, limit: int = 200, *,
                         model: str | None = None) -> list[tuple[int, str, str]]:
    """(id, sha256, storage key) of analysed images with a stored original and no colours or hash yet,
    or, given the embedder's ``model``, no embedding of that model."""
    from sqlalchemy import or_

    images = models.Image.__table__
    missing = [VISUALS.c.image_id.is_(None)]
    statement = select(images.c.id, images.c.sha256, images.c.storage_key).outerjoin(
        VISUALS, VISUALS.c.image_id == images.c.id)
    if model is not None:
        statement = statement.outerjoin(
            EMBEDDINGS, (EMBEDDINGS.c.image_id == images.c.id) & (EMBEDDINGS.c.model == model))
        missing.append(EMBEDDINGS.c.image_id.is_(None))
    rows = connection.execute(
        statement.where(images.c.id > after_id, images.c.status == "done", images.c.storage_key.is_not(None),
                        or_(*missing))
        .order_by(images.c.id).limit(limit)
    )
    return [(row.id, row.sha256, row.storage_key) for row in rows]


def save(connection: Connection, image_id: int, properties: ImageProperties, phash: int | None,
         embedding: bytes | None = None, model: str | None = None) -> None:
    """Write one image's colours, quality, hash and embedding (replacing any)."""
    from sqlalchemy import delete, insert

    for table in (COLORS, COLOR_NAMES, VISUALS, EMBEDDINGS):
        connection.execute(delete(table).where(table.c.image_id == image_id))
    for table, values in rows(image_id, properties, phash, embedding, model):
        if values:
            connection.execute(insert(table), values)


class EmbeddingCache(_RefreshedCache):
    """This process's "more like this" index (``CodeIndex``), kept up to date from ``image_embeddings``.

    Only vectors of ``model`` (the embedder's version) are loaded and compared. The exact cosine
    of the few best is computed from the stored vectors, read by id."""

    def __init__(self, engine: Engine, model: str) -> None:
        super().__init__(engine)
        self.model = model
        self.index = CodeIndex()

    def _rows_since(self, connection: Connection, seq: int) -> list[tuple[int, Any, int]]:
        return [(row.image_id, row.vector, row.seq) for row in connection.execute(
            select(EMBEDDINGS.c.image_id, EMBEDDINGS.c.vector, EMBEDDINGS.c.seq)
            .where(EMBEDDINGS.c.seq > seq, EMBEDDINGS.c.model == self.model).order_by(EMBEDDINGS.c.seq))]

    def _upsert(self, rows: list[tuple[int, Any, int]]) -> None:
        self.index.upsert((image_id, vector) for image_id, vector, _ in rows)

    def vectors(self, image_ids: Sequence[int]) -> dict[int, np.ndarray]:
        if not image_ids:
            return {}
        from db.bulk_records import one_of

        with self.engine.connect() as connection:
            rows = connection.execute(  # the ids as one parameter: binding 2,000 costs more than the query
                select(EMBEDDINGS.c.image_id, EMBEDDINGS.c.vector)
                .where(one_of(EMBEDDINGS.c.image_id, list(image_ids), connection.dialect.name),
                       EMBEDDINGS.c.model == self.model))
            return read_all((row.image_id, row.vector) for row in rows)

    def likeness(self, image_ids: Sequence[int]) -> Likeness:
        """``image_ids``' embeddings for ``duplicate_groups``. Once this process has the index (``serve``
        and ``worker`` load it as they start), their codes come from it and only the few vectors a
        cosine needs are read; else every vector is read (10,000 in about 0.1 s), not the whole index."""
        if not self.loaded:
            return Likeness.of_vectors(self.vectors(image_ids))
        self.refresh()
        known, codes = self.index.rows(image_ids)
        return Likeness(dict(zip(known, codes, strict=True)), self.vectors)

    def similar(self, image_id: int, limit: int) -> list[tuple[int, float]]:
        """(image id, cosine) of the images that look most like ``image_id``, best first, itself left out."""
        self.refresh()
        query = self.vectors([image_id]).get(image_id)
        if query is None:
            return []
        candidates = [found for found in self.index.nearest(query) if found != image_id]
        stored = self.vectors(candidates)
        if not stored:
            return []
        ids = list(stored)
        scores = np.stack([stored[i] for i in ids]) @ query
        order = np.argsort(-scores, kind="stable")[:limit]
        return [(ids[i], float(scores[i])) for i in order]
