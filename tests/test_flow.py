"""How many images are in flight: rate × measured time per image, bounded by a cap and by bytes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.core.flow import FlowControl
from bot.core.types import Analysis, PreparedImage, Source
from bot.storage.memory import MemoryStorage
from bot.wiring import build_core
from tests.fakes.analyzer import FakeAnalyzer
from tests.images import make_image

MB = 1024 * 1024


def test_a_rate_limited_analyser_gets_rate_times_time_per_image_in_flight() -> None:
    flow = FlowControl(rate=50, cap=500, budget_bytes=256 * MB)
    assert flow.target() == 65  # before any measurement: 1 s per image, 25 % headroom and two spare

    for _ in range(200):
        flow.observe(0.2)

    assert flow.seconds_per_image == pytest.approx(0.2, abs=0.01)
    assert flow.target() == 15  # ceil(50 × 0.2 × 1.25) + 2

    for _ in range(200):
        flow.observe(2.0)  # Rekognition slows down: more images in flight, up to the cap
    assert flow.target() == 127


def test_the_cap_and_a_cpu_bound_analyser_fix_the_number() -> None:
    assert FlowControl(rate=50, cap=8, budget_bytes=MB).target() == 8
    assert FlowControl(rate=None, cap=128, budget_bytes=MB, cores=2).target() == 4


def test_admission_waits_for_a_free_slot() -> None:
    flow = FlowControl(rate=None, cap=1, budget_bytes=256 * MB)
    order: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with flow.admit(10):
            first_in.set()
            time.sleep(0.3)
            order.append("first out")

    def second() -> None:
        first_in.wait(5)
        with flow.admit(10):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert order == ["first out", "second in"]
    assert flow.in_flight == 0


def test_admission_is_bounded_by_bytes_but_one_large_image_always_goes_alone() -> None:
    flow = FlowControl(rate=None, cap=100, budget_bytes=10 * MB)
    admitted = threading.Event()

    with flow.admit(40 * MB):  # larger than the whole budget: admitted, since nothing else is in flight
        waiter = threading.Thread(target=lambda: _admit_and_signal(flow, MB, admitted))
        waiter.start()
        assert not admitted.wait(0.3)  # a small one waits while the large one holds the memory
    assert admitted.wait(5)
    waiter.join(5)


def _admit_and_signal(flow: FlowControl, size: int, admitted: threading.Event) -> None:
    with flow.admit(size):
        admitted.set()


def test_admission_is_re_entrant_within_a_thread() -> None:
    flow = FlowControl(rate=None, cap=1, budget_bytes=MB)

    with flow.admit(100), flow.admit(100):  # admitted before a download, then ingested: one slot
        assert flow.in_flight == 1
    assert flow.in_flight == 0


def test_a_download_larger_than_announced_counts_its_real_size() -> None:
    flow = FlowControl(rate=None, cap=10, budget_bytes=10 * MB)
    admitted = threading.Event()

    with flow.admit(0), flow.admit(8 * MB):  # a Slack file without a size, then its 8 MB of bytes
        waiter = threading.Thread(target=lambda: _admit_and_signal(flow, MB, admitted))
        waiter.start()
        assert not admitted.wait(0.3)  # 8 MB + its 5 MB copy already hold the budget
    assert admitted.wait(5)
    waiter.join(5)


def test_waits_for_the_rate_limit_are_not_counted_as_time_per_image() -> None:
    now = [100.0]
    flow = FlowControl(rate=10, cap=100, budget_bytes=MB, clock=lambda: now[0])
    for _ in range(300):
        with flow.admit():
            now[0] += 3.0  # 3 s in the pipeline, 2.5 of them waiting for the pacing
            flow.observe_admitted(waited_seconds=2.5)

    assert flow.seconds_per_image == pytest.approx(0.5, abs=0.01)


class _RateBoundAnalyzer(FakeAnalyzer):
    """A slow service with a rate: like Rekognition at 40 images/s and 0.5 s per call."""

    images_per_second = 40.0

    def __init__(self) -> None:
        super().__init__(delay=0.5)
        self.running = 0
        self.most_running = 0
        self._count_lock = threading.Lock()

    def analyze(self, image: PreparedImage) -> Analysis:
        with self._count_lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            return super().analyze(image)
        finally:
            with self._count_lock:
                self.running -= 1


def test_a_batch_on_defaults_keeps_enough_images_in_flight_for_the_analysers_rate(tmp_path: Path) -> None:
    analyzer = _RateBoundAnalyzer()
    settings = Settings(database_url=f"sqlite:///{tmp_path}/imgbot.db")  # IMGBOT_CONCURRENCY automatic
    core = build_core(settings, storage=MemoryStorage(), analyzer_factory=lambda: analyzer)
    items: list[Any] = [(make_image(size=(90, 90)), Source.file(f"shot-{n}.png")) for n in range(80)]

    results = core.ingest_many(items)
    core.database.dispose()

    assert [r.outcome for r in results].count("done") == 80
    assert analyzer.most_running >= 20  # 40/s × 0.5 s; a fixed pool of 8 would have reached 16 images/s
