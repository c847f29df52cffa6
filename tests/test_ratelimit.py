"""The client-side token bucket that paces Rekognition calls."""

from __future__ import annotations

import threading
import time

import pytest

from bot.ratelimit import MARGIN, RECOVERY_SECONDS, Quota, RateLimiter, SlidingWindow, TokenBucket


class FakeClock:
    """Time that moves only when told to (or when someone "sleeps")."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_first_call_is_free_and_the_next_waits_one_interval() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, clock=clock, sleep=clock.sleep)

    assert bucket.acquire() == 0.0
    assert bucket.acquire() == pytest.approx(0.1)
    assert clock.slept == [pytest.approx(0.1)]


def test_calls_spaced_at_the_rate_never_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, clock=clock, sleep=clock.sleep)

    for _ in range(10):
        assert bucket.acquire() == 0.0
        clock.now += 0.2

    assert clock.slept == []


def test_idle_time_saves_up_at_most_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire()
    clock.now += 60  # a long quiet spell earns 3 tokens, not 600

    waits = [bucket.acquire() for _ in range(5)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.1)
    assert waits[4] == pytest.approx(0.1)


def test_concurrent_callers_each_get_their_own_slot() -> None:
    clock = FakeClock()  # frozen: every reservation is made at the same instant
    bucket = TokenBucket(rate=100, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        wait = bucket.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(round(w, 6) for w in waits) == [round(i / 100, 6) for i in range(50)]


def test_threads_sharing_a_bucket_are_held_to_its_rate_in_real_time() -> None:
    bucket = TokenBucket(rate=200)
    started = time.monotonic()

    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(5)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 40 calls at 200/s: the first is free, the other 39 need 0.195 s between them.
    assert time.monotonic() - started >= 0.18


def test_each_api_has_its_own_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1, clock=clock, sleep=clock.sleep)

    assert limiter.acquire("DetectLabels") == 0.0
    assert limiter.acquire("DetectText") == 0.0
    assert limiter.acquire("DetectLabels") == pytest.approx(1.0 * MARGIN)


def test_the_shared_limiter_is_one_per_name_and_rate_in_the_process() -> None:
    first = RateLimiter.shared("test-shared", 7)

    assert RateLimiter.shared("test-shared", 7) is first
    assert RateLimiter.shared("test-shared", 8) is not first
    assert RateLimiter.shared("test-other", 7) is not first


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_nonsense_rates_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def test_the_window_holds_back_a_call_that_would_make_more_than_the_limit_in_a_second() -> None:
    clock = FakeClock()
    window = SlidingWindow(3, 1.0, clock=clock, sleep=clock.sleep)

    waits = [window.acquire() for _ in range(3)]  # three at once: the limit
    fourth = window.acquire()

    assert waits == [0.0, 0.0, 0.0]
    assert fourth == pytest.approx(1.0)


def test_a_quota_never_exceeds_its_rate_in_any_one_second_window_even_when_threads_wake_late() -> None:
    clock = FakeClock()
    late = [0.0]

    def oversleep(seconds: float) -> None:  # every sleeper wakes 30 ms late, as under a busy interpreter
        clock.sleep(seconds + late[0])

    quota = Quota(50, clock=clock, sleep=oversleep)
    sent = []
    for n in range(400):
        late[0] = 0.03 if n % 3 == 0 else 0.0
        quota.acquire()
        sent.append(clock.now)

    busiest = max(sum(1 for t in sent if start <= t <= start + 1.0) for start in sent)
    assert busiest <= 50


def test_a_quota_paces_close_to_its_rate() -> None:
    clock = FakeClock()
    quota = Quota(50, clock=clock, sleep=clock.sleep)

    for _ in range(500):
        quota.acquire()

    assert 499 / (clock.now - 1000.0) == pytest.approx(50 / MARGIN, rel=0.01)


def test_a_throttle_slows_the_api_at_once_and_the_rate_recovers_within_seconds() -> None:
    clock = FakeClock()
    quota = Quota(50, clock=clock, sleep=clock.sleep)
    quota.acquire()

    quota.throttled()

    assert quota.current_share() == pytest.approx(0.7)
    clock.now += RECOVERY_SECONDS / 2
    assert 0.7 < quota.current_share() < 1.0
    clock.now += RECOVERY_SECONDS / 2
    assert quota.current_share() == 1.0


def test_throttles_in_a_row_compound_but_never_stop_the_api() -> None:
    clock = FakeClock()
    quota = Quota(50, clock=clock, sleep=clock.sleep)

    for _ in range(20):
        quota.throttled()

    assert quota.current_share() == pytest.approx(0.2)
    started = clock.now
    for _ in range(10):
        quota.acquire()
    assert clock.now - started < 1.5  # still about 10 calls a second, not zero


def test_each_thread_learns_only_its_own_waiting() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, clock=clock, sleep=clock.sleep)
    limiter.take_waited()
    limiter.acquire("DetectText")
    limiter.acquire("DetectText")
    seen: list[float] = []

    other = threading.Thread(target=lambda: seen.append(limiter.take_waited()))
    other.start()
    other.join()

    assert seen == [0.0]
    assert limiter.take_waited() == pytest.approx(0.1 * MARGIN)
    assert limiter.take_waited() == 0.0
