"""How an image looks, for every image whatever the engine: colours, quality and a perceptual hash.

Read from the analysis copy (JPEG or PNG, at most 5 MB) decoded at a reduced size: a JPEG
is decoded straight to about 512 px by Pillow's DCT scaling, so a 12 MP photo costs a few
milliseconds, not the hundred a full decode would.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import imagehash
import numpy as np
from PIL import Image

from bot.core.nearby import to_signed
from bot.core.ports import Embedder
from bot.core.types import Analysis, ImageProperties, PreparedImage
from bot.core.visual import image_properties

log = logging.getLogger("imgbot.looks")

WORKING_SIDE = 512


@dataclass(frozen=True)
class Looks:
    """What the pixels say, apart from the analyser: colours and quality, the pHash, the embedding.

    Small and plain, so that helper processes (``bot.core.pixel_processes``) can hand it back."""

    properties: ImageProperties | None
    phash: int
    embedding: bytes | None = None
    embedding_model: str | None = None

    def applied_to(self, analysis: Analysis) -> Analysis:
        """``analysis`` with these looks (colours and quality Rekognition gave are kept)."""
        seen = replace(analysis, properties=analysis.properties or self.properties, phash=self.phash)
        if self.embedding is not None:
            seen = replace(seen, embedding=self.embedding, embedding_model=self.embedding_model)
        return seen


def see(analysis_bytes: bytes, *, properties: bool = True, embedder: Embedder | None = None) -> Looks:
    """The looks of an analysis copy (JPEG or PNG): colours and quality unless ``properties`` is
    False (the analyser gave them), the pHash and, with an ``embedder``, the embedding."""
    with Image.open(io.BytesIO(analysis_bytes)) as opened:
        opened.draft("RGB", (WORKING_SIDE, WORKING_SIDE))
        image = opened.convert("RGBA" if opened.mode in ("RGBA", "LA", "P") else "RGB")
    image.thumbnail((WORKING_SIDE, WORKING_SIDE))
    looks = Looks(properties=image_properties(image) if properties else None, phash=phash(image))
    if embedder is not None:
        try:
            vector = np.asarray(embedder.embed(image), dtype="<f2")
        except Exception as err:  # no embedding (like: skips this image); its colours and hash still count
            log.warning("embedding not computed: %r", err)
        else:
            looks = replace(looks, embedding=vector.tobytes(), embedding_model=embedder.version)
    return looks


def look(prepared: PreparedImage, analysis: Analysis, embedder: Embedder | None = None) -> Analysis:
    """``analysis`` with colours and quality (unless Rekognition gave them), the pHash and, when an
    embedder is available, the embedding, computed in this thread."""
    return see(prepared.analysis_bytes, properties=analysis.properties is None, embedder=embedder
               ).applied_to(analysis)


class InlineLooks:
    """``Looker`` that computes the looks in the calling thread (IMGBOT_PIXEL_PROCESSES=0)."""

    def __init__(self, embedder: Callable[[], Embedder | None] = lambda: None) -> None:
        self._embedder = embedder

    def start(self, prepared: PreparedImage) -> Looks:
        return see(prepared.analysis_bytes, embedder=self._embedder())

    def look(self, prepared: PreparedImage, analysis: Analysis) -> Analysis:
        return look(prepared, analysis, self._embedder())

    def warm(self) -> None:
        """Load the embedder now rather than on the first image."""
        load = getattr(self._embedder(), "load", None)
        if load is not None:
            load()

    def close(self) -> None:
        """Nothing to stop: the work runs in the callers' threads."""


def phash(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash (imagehash's pHash), as a signed integer for a BIGINT column."""
    return to_signed(int(str(imagehash.phash(image.convert("RGB"))), 16))
