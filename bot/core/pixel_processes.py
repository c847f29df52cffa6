"""Colours, quality, the pHash and the embedding computed in helper processes, not in the analysis threads.

This is the CPU-heavy part of each image (11-15 ms of CPU: decoding, numpy on small arrays,
Pillow's median cut, one network inference), and in the analysis threads it holds the
interpreter lock in many short stretches. The threads that wait on Rekognition, S3 and the
database writer then wait for the interpreter too: on ``bench/throughput.py`` (1,000 images,
two cores) the database writer ran 5× slower than its own CPU time, and images spent seconds
in flight where 0.3 s is needed. A helper process has an interpreter of its own; the analysis
copy goes to it and a few hundred bytes come back (``Looks``).

Each helper builds its embedder once, when it starts (``embedder_factory``: a module-level
callable, so a new process can import it by name; ``None``: no embeddings). Helpers are
started with ``spawn``: a fork of a process that already runs threads may copy a held lock.

A helper that dies (a decoder that crashes on a hostile file, say) takes the pool with it: the
pool is replaced and the image tried once more in the new one; if it fails again, that image
goes without its looks (the pipeline keeps the analysis and logs why) and the next one gets a
fresh pool. A crash in a helper never takes down the bot, as it would in a thread.

Pools that keep dying (``DEATHS_BEFORE_REST`` in a row, no image finished in between) mean
something kills every helper: the kernel's OOM killer, a broken install. Starting new ones
for every image would only repeat it, at 0.7 s and about 160 MB each, so the helpers rest for
``REST_SECONDS``: images analysed meanwhile are saved without their looks, which
``imgbot rescan-images`` adds later, and one error line says so.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ClassVar

from bot.core.looks import Looks, see
from bot.core.ports import Embedder
from bot.core.types import Analysis, PreparedImage

log = logging.getLogger("imgbot.looks")

EmbedderFactory = Callable[[], Embedder | None]

#: Pools that die this many times in a row (no image finished in between) send the helpers to rest…
DEATHS_BEFORE_REST = 3
#: …for this many seconds, after which the next image starts a new pool.
REST_SECONDS = 60.0


class HelpersResting(RuntimeError):
    """No helper is started while they rest: the image is saved without its looks."""

#: In a helper process: the embedder it built when it started (None: no embeddings).
_helper_embedder: Embedder | None = None


def _start_helper(factory: EmbedderFactory | None) -> None:
    """A helper's first step: build and load its embedder, so the first image does not wait for it."""
    global _helper_embedder
    if factory is None:
        return
    try:
        _helper_embedder = factory()
        load = getattr(_helper_embedder, "load", None)
        if load is not None:
            load()
    except Exception as err:  # noqa: BLE001 - each image then says why it has no embedding
        log.warning("image embedder not loaded in a helper process: %r", err)


def _see(analysis_bytes: bytes, properties: bool) -> Looks:
    return see(analysis_bytes, properties=properties, embedder=_helper_embedder)


def _ready() -> bool:
    return True


class PixelProcesses:
    """``Looker`` that computes the looks in ``processes`` helper processes, started on first use.

    ``PixelProcesses.shared`` gives every caller in the process the same helpers, as
    ``bot.analyzers.local.models.shared`` does for models: a core built per request, or per
    test, must not start helpers of its own."""

    _shared: ClassVar[dict[tuple[int, EmbedderFactory | None], PixelProcesses]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls, processes: int, embedder_factory: EmbedderFactory | None) -> PixelProcesses:
        """The process-wide helpers for these arguments (started on first use, not here)."""
        with cls._shared_lock:
            key = (processes, embedder_factory)
            if key not in cls._shared:
                cls._shared[key] = cls(processes, embedder_factory)
            return cls._shared[key]

    def __init__(self, processes: int, embedder_factory: EmbedderFactory | None) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes!r}")
        self.processes = processes
        self._factory = embedder_factory
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._deaths = 0  # pools that died since an image last came back
        self._resting_until = 0.0  # time.monotonic()

    def start(self, prepared: PreparedImage) -> _HelperLooks:
        return _HelperLooks(self, prepared, wanted=True)

    def look(self, prepared: PreparedImage, analysis: Analysis) -> Analysis:
        return _HelperLooks(self, prepared, wanted=analysis.properties is None).applied_to(analysis)

    def warm(self) -> None:
        """Start the helpers and wait until they have loaded their embedder."""
        pool = self._current()
        for ready in [pool.submit(_ready) for _ in range(self.processes)]:
            ready.result()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, prepared: PreparedImage, wanted: bool) -> tuple[ProcessPoolExecutor, Future[Looks]]:
        """Hand the image to a helper; a pool found broken is replaced first."""
        pool = self._current()
        try:
            return pool, pool.submit(_see, prepared.analysis_bytes, wanted)
        except BrokenProcessPool:
            self._discard(pool)
            pool = self._current()
            return pool, pool.submit(_see, prepared.analysis_bytes, wanted)

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                resting = self._resting_until - time.monotonic()
                if resting > 0:
                    raise HelpersResting(f"the pixel helper processes kept dying; they rest {resting:.0f} s more")
                self._pool = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_helper, initargs=(self._factory,))
            return self._pool

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
                self._deaths += 1
                if self._deaths >= DEATHS_BEFORE_REST:
                    self._resting_until = time.monotonic() + REST_SECONDS
                    log.error("pixel helper processes died %d times in a row: they rest %.0f s, and images "
                              "analysed meanwhile are saved without colours, quality, hash or embedding "
                              "(imgbot rescan-images adds them). Each helper needs about 160 MB: check the "
                              "memory, or set IMGBOT_PIXEL_PROCESSES=0", self._deaths, REST_SECONDS)
                    self._deaths = 0
        broken.shutdown(wait=False, cancel_futures=True)

    def _came_back(self) -> None:
        with self._lock:
            self._deaths = 0


class _HelperLooks:
    """One image's looks on their way from a helper; tried once more in a new pool if its helper dies."""

    def __init__(self, helpers: PixelProcesses, prepared: PreparedImage, *, wanted: bool) -> None:
        self._helpers = helpers
        self._prepared = prepared
        self._wanted = wanted
        self._pool, self._future = helpers._submit(prepared, wanted)

    def applied_to(self, analysis: Analysis) -> Analysis:
        try:
            looks = self._future.result()
        except BrokenProcessPool:
            self._helpers._discard(self._pool)
            log.warning("sha256=%s a pixel helper process died; starting another and trying again",
                        self._prepared.sha256[:12])
            pool, future = self._helpers._submit(self._prepared, self._wanted)
            try:
                looks = future.result()
            except BrokenProcessPool:
                self._helpers._discard(pool)
                raise
        self._helpers._came_back()
        return looks.applied_to(analysis)
