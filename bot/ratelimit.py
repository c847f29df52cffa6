"""Client-side rate limits: keep each API under its per-second quota, so throttling stays rare.

Rekognition's quotas are transactions per second per API. If every worker thread fired
as fast as it could, a batch would spend most of its time in throttling back-off. A
``RateLimiter`` holds one ``Quota`` per API:

* a token bucket at slightly under the quota, one token at a time, hands out evenly
  spaced *reservations* in arrival order (a caller takes the next free slot under the
  lock and sleeps outside it, so no thread holds the lock while waiting);
* a sliding window then checks the moment each call really goes: threads wake late and
  in bunches when the interpreter is busy, and the window holds back a call that would
  make more than the quota in any one second;
* a throttle reported by the service (``throttled``) slows that API to 70 % at once,
  compounding, and the rate climbs back to the quota over the next few seconds.

Every attempt goes through the limiter, retries included (``bot.analyzers.rekognition``
hooks it into botocore's ``before-send``). botocore's own *adaptive* mode is not used for
Rekognition: its one rate limiter per client is shared by all APIs, so one throttled
DetectText call cuts DetectLabels and DetectModerationLabels too, and it climbs back slowly.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from typing import ClassVar

#: Pace at the quota divided by this, so the calls of any one second stay within it despite jitter.
MARGIN = 1.02
#: The sliding window's length: a second and a millisecond, for clocks that round.
WINDOW_SECONDS = 1.001
#: After a throttle the rate drops to this share of what it was…
SLOWDOWN = 0.7
#: …never below this share of the quota…
MIN_SHARE = 0.2
#: …and climbs back to the quota over this many seconds.
RECOVERY_SECONDS = 5.0


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``acquire`` blocks until a token is free.

    ``burst`` defaults to 1: a per-second quota would be spent at once by a larger
    burst and the next second would start throttled.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on (what was earned so far at the old rate is kept)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self.rate = float(rate)

    def reserve(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` now (possibly on credit) and return how long to wait before using them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= tokens
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, tokens: float = 1.0) -> float:
        """Block until ``tokens`` may be spent; return the seconds waited (0.0 when free)."""
        wait = self.reserve(tokens)
        if wait > 0:
            self._sleep(wait)
        return wait


class SlidingWindow:
    """At most ``limit`` calls in any ``seconds``-long window, checked when each call goes."""

    def __init__(
        self,
        limit: int,
        seconds: float = WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._times: collections.deque[float] = collections.deque(maxlen=limit)

    def acquire(self) -> float:
        """Block until a call fits in the window, record it, and return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                if len(self._times) < self.limit or now - self._times[0] >= self.seconds:
                    self._times.append(now)
                    return waited
                delay = self._times[0] + self.seconds - now
            self._sleep(delay)
            waited += delay


class Quota:
    """One API's quota of ``rate`` calls per second: an even pace, a hard per-second cap, a slow-down on throttles."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = float(rate)
        self._clock = clock
        self._bucket = TokenBucket(self.rate / MARGIN, clock=clock, sleep=sleep)
        # A whole number of calls per window of at least a second, never more than the rate allows.
        limit = max(1, math.floor(self.rate))
        self._window = SlidingWindow(limit, max(WINDOW_SECONDS, limit / self.rate), clock=clock, sleep=sleep)
        self._lock = threading.Lock()
        self._share = 1.0  # of the quota, right after the last throttle
        self._throttled_at: float | None = None
        self.throttles = 0

    def current_share(self) -> float:
        """The share of the quota used now: 1.0, or less while recovering from a throttle."""
        with self._lock:
            return self._share_at(self._clock())

    def _share_at(self, now: float) -> float:
        if self._throttled_at is None:
            return 1.0
        recovered = (now - self._throttled_at) / RECOVERY_SECONDS
        if recovered >= 1.0:
            self._throttled_at = None
            self._share = 1.0
            return 1.0
        return self._share + (1.0 - self._share) * recovered

    def acquire(self) -> float:
        """Block until one call may go; return the seconds waited."""
        with self._lock:
            share = self._share_at(self._clock())
        wanted = self.rate * share / MARGIN
        if abs(self._bucket.rate - wanted) > 1e-9:
            self._bucket.set_rate(wanted)
        return self._bucket.acquire() + self._window.acquire()

    def throttled(self) -> None:
        """The service refused a call for its rate: slow down at once, recover over ``RECOVERY_SECONDS``."""
        with self._lock:
            now = self._clock()
            self._share = max(MIN_SHARE, self._share_at(now) * SLOWDOWN)
            self._throttled_at = now
            self.throttles += 1
            share = self._share
        self._bucket.set_rate(self.rate * share / MARGIN)


class RateLimiter:
    """One ``Quota`` per key (an API name), all at the same rate.

    ``RateLimiter.shared(name, rate)`` returns the same limiter to every caller in
    the process, so two analysers built from the same settings (say, by the CLI and
    the worker pool) still share one budget. The seconds each thread waited are kept
    for it (``take_waited``), so a caller can tell its own waiting from its work.
    """

    _shared: ClassVar[dict[tuple[str, float], RateLimiter]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._quotas: dict[str, Quota] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    @classmethod
    def shared(cls, name: str, rate: float) -> RateLimiter:
        """The process-wide limiter called ``name`` at ``rate`` calls per second per key."""
        with cls._shared_lock:
            limiter = cls._shared.get((name, float(rate)))
            if limiter is None:
                limiter = cls._shared[(name, float(rate))] = cls(rate)
            return limiter

    def quota(self, key: str) -> Quota:
        with self._lock:
            quota = self._quotas.get(key)
            if quota is None:
                quota = self._quotas[key] = Quota(self.rate, clock=self._clock, sleep=self._sleep)
            return quota

    def acquire(self, key: str) -> float:
        """Block until one call to ``key`` is allowed; return the seconds waited."""
        waited = self.quota(key).acquire()
        self._local.waited = getattr(self._local, "waited", 0.0) + waited
        return waited

    def throttled(self, key: str) -> None:
        """``key`` was throttled by the service: slow it down for a few seconds."""
        self.quota(key).throttled()

    def take_waited(self) -> float:
        """The seconds this thread waited since the last call, and start counting again."""
        waited: float = getattr(self._local, "waited", 0.0)
        self._local.waited = 0.0
        return waited
