"""The lazy-model base, the ONNX runtime wrapper, the per-process cache and the CPU pool.

Every model of the offline engine is a short class on ``LazyModel``: a class-level
``task`` and ``_load`` / ``_predict``. ``predict`` loads on first use, once, under a
lock, so the first image pays only for the models the settings switch on and two
threads never load the same file twice. ``shared(cls)`` keeps one instance per
process, so every ``LocalAnalyzer`` (the CLI, the Slack worker, tests) reuses it.

All inference runs on ``cpu_pool()``, a thread pool sized to the cores this process
may use; each ONNX Runtime session then uses one intra-op thread, so N images in
flight never ask for more than N cores.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np
from PIL import Image

from bot.errors import AnalyzerError

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("imgbot.analyzers.local")

DATA = Path(__file__).with_name("data")

#: Longest side, in pixels, the engine ever decodes to (text is read at this size).
MAX_WORKING_SIDE = 2000

R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may run on (cgroup/affinity aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# --- the bounded CPU pool ---------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def cpu_pool() -> ThreadPoolExecutor:
    """One pool per process, sized to the cores; all model work runs here."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=available_cores(), thread_name_prefix="imgbot-model")
    return _pool


# --- ONNX Runtime -------------------------------------------------------------------------


def onnx_session(path: Path | str, *, threads: int = 1, memory_arena: bool = True) -> ort.InferenceSession:
    """A CPU session with a fixed, small thread count (the pool provides the parallelism)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = memory_arena
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# --- the decoded image, shared by every model of one analysis --------------------------


@dataclass
class Decoded:
    """One analysis image decoded once; models ask for the size they need."""

    image: Image.Image  # RGB, longest side <= MAX_WORKING_SIDE
    width: int  # of the analysis copy (boxes are ratios, so only the aspect matters)
    height: int
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> Decoded:
        try:
            with warnings.catch_warnings():
                # The intake already enforced imgbot's own pixel limit on this copy.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                opened = Image.open(io.BytesIO(data))
                width, height = opened.size
                if opened.format == "JPEG":
                    opened.draft("RGB", (MAX_WORKING_SIDE, MAX_WORKING_SIDE))
                image = _to_rgb(opened)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means the same to the user
            raise AnalyzerError(
                "The offline analyser could not read this image.", detail=f"decode failed: {exc!r}"
            ) from exc
        if max(image.size) > MAX_WORKING_SIDE:
            image.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return cls(image=image, width=width, height=height)

    def fit(self, max_side: int) -> Image.Image:
        """The image scaled down (never up) so its longest side is at most ``max_side``."""
        key = ("fit", max_side)
        with self._lock:
            if key not in self._cache:
                if max(self.image.size) <= max_side:
                    self._cache[key] = self.image
                else:
                    copy = self.image.copy()
                    copy.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
                    self._cache[key] = copy
            return self._cache[key]  # type: ignore[no-any-return]

    def bgr(self, max_side: int) -> np.ndarray:
        """A contiguous BGR uint8 array (OpenCV's order) of ``fit(max_side)``."""
        key = ("bgr", max_side)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = np.ascontiguousarray(np.asarray(self.fit(max_side))[:, :, ::-1])
            with self._lock:
                self._cache[key] = cached
        return cached

    @cached_property
    def aspect(self) -> float:
        return self.width / self.height


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; transparent areas (logos, banners) are shown on white, as a viewer would."""
    if image.mode == "RGB":
        image.load()
        return image
    if image.mode == "P" or image.mode == "LA" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, (255, 255, 255))
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


# --- the lazy base and the per-process cache -------------------------------------------


class LazyModel(ABC, Generic[R]):
    """Loads on first ``predict``, once, under a lock; then predicts without locking."""

    #: What the model is for, as in ``Analysis.model_versions`` ("labels", "text", ...).
    task: ClassVar[str]
    #: Shown to people when the model fails.
    what: ClassVar[str] = "analysing this image"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            try:
                self._load()
            except AnalyzerError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise AnalyzerError(
                    f"The offline analyser could not load its model for {self.what}.",
                    detail=f"{type(self).__name__} load failed: {exc!r}",
                ) from exc
            self._loaded = True
            log.debug("loaded %s (%s)", type(self).__name__, self.version)

    def predict(self, image: Decoded) -> R:
        self.load()
        try:
            return self._predict(image)
        except AnalyzerError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise AnalyzerError(
                f"The offline analyser failed while {self.what}.",
                detail=f"{type(self).__name__} failed: {exc!r}",
            ) from exc

    @property
    @abstractmethod
    def version(self) -> str:
        """Model name and the package version it came from."""

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _predict(self, image: Decoded) -> R: ...


M = TypeVar("M", bound=LazyModel[Any])

_shared: dict[tuple[type[Any], tuple[Any, ...]], Any] = {}
_shared_lock = threading.Lock()


def shared(cls: type[M], *args: Any) -> M:
    """The process-wide instance of ``cls(*args)`` (created on first request, not loaded)."""
    key = (cls, args)
    with _shared_lock:
        model = _shared.get(key)
        if model is None:
            model = cls(*args)
            _shared[key] = model
        return model


def loaded_models() -> list[str]:
    """Names of the models this process has loaded so far (for tests and diagnostics)."""
    with _shared_lock:
        return sorted(type(m).__name__ for m in _shared.values() if m.loaded)
