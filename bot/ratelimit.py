"""Client-side rate limits: a thread-safe token bucket, and one bucket per API per process.

Rekognition's quotas are transactions per second per API. If every worker thread
fired as fast as it could, a batch would spend most of its time in botocore's
throttling back-off. Pacing the calls here keeps a batch just under the quota, so
throttling stays the exception botocore handles, not the rule.

A bucket hands out *reservations*: a caller takes the next free slot under the lock
and sleeps outside it, so threads are served in arrival order and never hold the
lock while waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar


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


class RateLimiter:
    """One ``TokenBucket`` per key (an API name), all at the same rate.

    ``RateLimiter.shared(name, rate)`` returns the same limiter to every caller in
    the process, so two analysers built from the same settings (say, by the CLI and
    the worker pool) still share one budget.
    """

    _shared: ClassVar[dict[tuple[str, float], RateLimiter]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

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
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, name: str, rate: float) -> RateLimiter:
        """The process-wide limiter called ``name`` at ``rate`` calls per second per key."""
        with cls._shared_lock:
            limiter = cls._shared.get((name, float(rate)))
            if limiter is None:
                limiter = cls._shared[(name, float(rate))] = cls(rate)
            return limiter

    def bucket(self, key: str) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(
                    self.rate, self.burst, clock=self._clock, sleep=self._sleep
                )
            return bucket

    def acquire(self, key: str) -> float:
        """Block until one call to ``key`` is allowed; return the seconds waited."""
        return self.bucket(key).acquire()
