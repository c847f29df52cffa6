"""How many images a process works on at once: enough to keep the analyser at its rate, no more.

A rate-limited analyser (Rekognition: ``IMGBOT_REKOGNITION_TPS`` calls per second per
API) is kept busy only if enough images are in flight to cover each one's time in the
pipeline. By Little's law that is *rate × time per image*: at 50 images/s and 1 s per
image, 50 images must be in flight, where a fixed pool of 8 reaches 8 images/s. So the
number admitted follows the measured time per image (store, analyse, record; the time
spent waiting for the rate limit itself is left out, or an over-full pipeline would grow
itself), with a margin so that a slow moment does not starve the analyser.

An analyser with no rate (the offline engine) is bound by CPU instead, and gets a fixed
number of slots per core.

Memory is bounded too, by bytes rather than count: admission waits while the images in
flight hold more than the budget, so sixty 50 MB originals never sit in memory at once.
One image is always admitted when nothing else is in flight, whatever its size.

Admission is per thread and re-entrant: a caller that admits an image before downloading
it (to bound the memory of the download) and then ingests it holds one slot, not two.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: Time per image assumed before any was measured: a real Rekognition call takes 0.2–1 s.
INITIAL_SECONDS = 1.0
#: Extra share of images in flight over Little's law, so a slower moment still finds work.
HEADROOM = 1.25
#: Slots added on top, for images held up in storage or the database.
SPARE = 2
#: Images in flight per CPU core for an analyser bound by CPU (one computing, one reading or writing).
SLOTS_PER_CORE = 2
#: Weight of each new measurement in the moving average of the time per image.
SMOOTHING = 0.1


@dataclass
class _Admission:
    charge: int
    granted_at: float


class FlowControl:
    """Admission of images into the pipeline, sized by rate × measured time, bounded by bytes."""

    def __init__(
        self,
        *,
        rate: float | None,
        cap: int,
        budget_bytes: int,
        cores: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cap <= 0:
            raise ValueError(f"cap must be positive, got {cap!r}")
        self.rate = rate
        self.cap = cap
        self.budget_bytes = budget_bytes
        self.cores = cores or os.cpu_count() or 1
        self._clock = clock
        self._seconds = INITIAL_SECONDS
        self._in_flight = 0
        self._bytes = 0
        self._condition = threading.Condition()
        self._local = threading.local()

    # -- sizing -------------------------------------------------------------------------------

    @property
    def seconds_per_image(self) -> float:
        """The moving average of the time an image spends in the pipeline, waits for the rate left out."""
        return self._seconds

    def target(self) -> int:
        """How many images may be in flight now."""
        if self.rate is None:
            wanted = self.cores * SLOTS_PER_CORE
        else:
            wanted = math.ceil(self.rate * self._seconds * HEADROOM) + SPARE
        return max(1, min(self.cap, wanted))

    def observe(self, busy_seconds: float) -> None:
        """One image finished after ``busy_seconds`` of work (its waits for the rate limit excluded)."""
        if busy_seconds <= 0 or not math.isfinite(busy_seconds):
            return
        with self._condition:
            self._seconds += SMOOTHING * (busy_seconds - self._seconds)
            self._condition.notify_all()  # a longer time per image may admit more

    def observe_admitted(self, waited_seconds: float = 0.0) -> None:
        """Record the current thread's image as finished now, less ``waited_seconds`` spent on the rate limit."""
        admission: _Admission | None = getattr(self._local, "admission", None)
        if admission is not None:
            self.observe(self._clock() - admission.granted_at - waited_seconds)

    # -- admission ----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        with self._condition:
            return self._in_flight

    def room(self) -> int:
        """How many more images would be admitted now (for consumers that fetch work in batches)."""
        with self._condition:
            return max(0, self.target() - self._in_flight)

    @staticmethod
    def charge_for(byte_size: int) -> int:
        """The memory one image holds while in flight: its original and, at most 5 MB, its analysis copy."""
        return byte_size + min(byte_size, 5 * 1024 * 1024)

    @contextmanager
    def admit(self, byte_size: int = 0) -> Iterator[None]:
        """Hold a slot (and the image's bytes in the budget) for the ``with`` block; waits until both are free."""
        admission: _Admission | None = getattr(self._local, "admission", None)
        if admission is not None:  # already admitted by this thread (before a download, say)
            extra = self.charge_for(max(0, byte_size)) - admission.charge
            if extra > 0:  # the download was larger than announced: its bytes count now
                with self._condition:
                    self._bytes += extra
                admission.charge += extra
            yield
            return
        charge = self.charge_for(max(0, byte_size))
        with self._condition:
            while not self._fits(charge):
                self._condition.wait()
            self._in_flight += 1
            self._bytes += charge
        self._local.admission = _Admission(charge=charge, granted_at=self._clock())
        try:
            yield
        finally:
            self._local.admission = None
            with self._condition:
                self._in_flight -= 1
                self._bytes -= charge
                self._condition.notify_all()

    def _fits(self, charge: int) -> bool:
        if self._in_flight == 0:
            return True
        return self._in_flight < self.target() and self._bytes + charge <= self.budget_bytes
