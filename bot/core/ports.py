"""The small interfaces the core needs from the outside world."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from bot.core.types import Analysis, PiiEntity, PreparedImage, StoredObject


@runtime_checkable
class Storage(Protocol):
    """Keeps originals. Keys are content-addressed, so a put of existing bytes is harmless."""

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store ``data`` under ``key``; raise ``StorageError`` on failure."""
        ...

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; raise ``NotFound`` if absent, ``StorageError`` otherwise."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        ...


@runtime_checkable
class Analyzer(Protocol):
    """Turns a prepared image into an ``Analysis``; raises ``AnalyzerError`` on failure.

    Called from several threads at once: implementations must be thread-safe. An analyser
    bound by a service's rate (rather than by this machine's CPU) says so with an attribute
    ``images_per_second``; the pipeline then keeps enough images in flight to reach it.
    """

    name: str

    def analyze(self, image: PreparedImage) -> Analysis:
        ...


@runtime_checkable
class PiiDetector(Protocol):
    """Finds personal data in plain text (Amazon Comprehend's DetectPiiEntities); thread-safe.

    It is given text whose secrets are already masked, and raises ``ImgbotError`` on failure.
    """

    name: str

    def detect(self, text: str) -> list[PiiEntity]:
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns a picture into a unit vector whose cosine with another says how alike they look; thread-safe.

    ``version`` names the model and everything that shapes the vector: vectors of two versions
    are not compared."""

    @property
    def version(self) -> str:
        ...

    def embed(self, image: Any) -> Any:
        """A 1-d float32 numpy array of unit length for a PIL image."""
        ...


class PendingLooks(Protocol):
    """Looks being computed for one image (or already computed)."""

    def applied_to(self, analysis: Analysis) -> Analysis:
        """``analysis`` with the looks, once they are ready; raises when they could not be computed."""
        ...


class Looker(Protocol):
    """Computes what the pixels say (colours, quality, pHash, embedding) for an image; thread-safe."""

    def start(self, prepared: PreparedImage) -> PendingLooks:
        """Begin computing the looks of ``prepared`` (so they can be ready when its analysis is)."""
        ...

    def look(self, prepared: PreparedImage, analysis: Analysis) -> Analysis:
        """``analysis`` with its looks, computed now (colours the analysis has are kept, not computed)."""
        ...

    def warm(self) -> None:
        """Get ready (load models, start helpers) before the first image needs it."""
        ...

    def close(self) -> None:
        """Release what ``warm`` or ``look`` started."""
        ...
