"""How an image looks, for every image whatever the engine: colours, quality and a perceptual hash.

Read from the analysis copy (JPEG or PNG, at most 5 MB) decoded at a reduced size: a JPEG
is decoded straight to about 512 px by Pillow's DCT scaling, so a 12 MP photo costs a few
milliseconds, not the hundred a full decode would.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace

import imagehash
import numpy as np
from PIL import Image

from bot.core.nearby import to_signed
from bot.core.ports import Embedder
from bot.core.types import Analysis, PreparedImage
from bot.core.visual import image_properties

log = logging.getLogger("imgbot.looks")

WORKING_SIDE = 512


def look(prepared: PreparedImage, analysis: Analysis, embedder: Embedder | None = None) -> Analysis:
    """``analysis`` with colours and quality (unless Rekognition gave them), the pHash and, when an
    embedder is available, the embedding."""
    with Image.open(io.BytesIO(prepared.analysis_bytes)) as opened:
        opened.draft("RGB", (WORKING_SIDE, WORKING_SIDE))
        image = opened.convert("RGBA" if opened.mode in ("RGBA", "LA", "P") else "RGB")
    image.thumbnail((WORKING_SIDE, WORKING_SIDE))
    properties = analysis.properties or image_properties(image)
    seen = replace(analysis, properties=properties, phash=phash(image))
    if embedder is not None:
        try:
            vector = np.asarray(embedder.embed(image), dtype="<f2")
        except Exception as err:  # no embedding (like: skips this image); its colours and hash still count
            log.warning("embedding not computed: %r", err)
        else:
            seen = replace(seen, embedding=vector.tobytes(), embedding_model=embedder.version)
    return seen


def phash(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash (imagehash's pHash), as a signed integer for a BIGINT column."""
    return to_signed(int(str(imagehash.phash(image.convert("RGB"))), 16))
