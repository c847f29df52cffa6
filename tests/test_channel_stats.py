"""The per-channel counts a Slack user's report reads stay equal to counting from scratch."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select

from bot.core.types import Source
from bot.errors import AnalyzerError
from bot.wiring import Core
from db import channel_stats, models
from tests.fakes.analyzer import FakeAnalyzer
from tests.images import make_image

CHANNELS = ("C0ONE", "C0TWO", "C0THREE")


def post(core: Core, data: bytes, channel: str, ts: str, file_id: str) -> Any:
    return core.ingest(data, Source.slack(team_id="T1", channel_id=channel, user_id="U1", file_id=file_id,
                                          message_ts=ts, name=f"{file_id}.png"))


def kept(core: Core) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    with core.database.transaction() as session:
        stats = {tuple(row) for row in session.execute(
            select(models.ChannelStat.channel_id, models.ChannelStat.status, models.ChannelStat.has_text,
                   models.ChannelStat.moderation_floor, models.ChannelStat.images)
            .where(models.ChannelStat.images != 0))}
        labels = {tuple(row) for row in session.execute(
            select(models.ChannelLabelStat.channel_id, models.ChannelLabelStat.name,
                   models.ChannelLabelStat.confidence_floor, models.ChannelLabelStat.images)
            .where(models.ChannelLabelStat.images != 0))}
    return stats, labels


def recounted(core: Core) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    with core.database.transaction() as session:
        channel_stats.rebuild(session)
    counted = kept(core)
    return counted


def test_counts_kept_through_posts_analyses_failures_and_deletions_equal_a_recount(
    core: Core, fake_analyzer: FakeAnalyzer
) -> None:
    cat, banner, broken, shared = (make_image() for _ in range(4))
    fake_analyzer.script(cat, labels=[("Cat", 97.6, ("Animal",)), ("Animal", 97.6)])
    fake_analyzer.script(banner, labels=[("Poster", 80.2)], text=["50% OFF"], moderation=[("Violence", 75.5)])
    fake_analyzer.script(shared, labels=[("Cat", 75.0)])
    fake_analyzer.fail(broken, AnalyzerError("Rekognition refused it.", retryable=False))

    post(core, cat, "C0ONE", "1.1", "F1")
    post(core, cat, "C0ONE", "1.2", "F2")  # the same image twice in one channel: counted once there
    post(core, cat, "C0TWO", "1.3", "F3")
    post(core, banner, "C0TWO", "1.4", "F4")
    post(core, broken, "C0THREE", "1.5", "F5")
    post(core, shared, "C0ONE", "1.6", "F6")
    post(core, shared, "C0THREE", "1.7", "F7")
    core.ingest(make_image(), Source.file("/photos/not-in-slack.png"))
    core.delete_slack_file("F1")  # cat keeps its other post in C0ONE
    core.delete_slack_message("C0THREE", "1.7")  # shared leaves C0THREE

    counts = kept(core)

    assert counts == recounted(core)
    stats, labels = counts
    assert ("C0ONE", "Cat", 97, 1) in labels and ("C0TWO", "Cat", 97, 1) in labels
    assert ("C0TWO", "done", True, 75, 1) in stats
    assert ("C0THREE", "failed", False, 0, 1) in stats
    assert not any(row[0] == "C0THREE" and row[1] == "Cat" for row in labels)


def test_a_report_over_channels_counts_an_image_in_several_of_them_once(
    core: Core, fake_analyzer: FakeAnalyzer
) -> None:
    cat, dog, flagged = make_image(), make_image(), make_image()
    fake_analyzer.script(cat, labels=[("Cat", 99.0)], text=["MEOW"])
    fake_analyzer.script(dog, labels=[("Dog", 88.0), ("Cat", 60.0)])
    fake_analyzer.script(flagged, labels=[("Cat", 80.0)], moderation=[("Violence", 90.0)])
    for channel, ts in (("C0ONE", "2.1"), ("C0TWO", "2.2"), ("C0THREE", "2.3")):
        post(core, cat, channel, ts, f"cat-{ts}")
    post(core, dog, "C0TWO", "2.4", "dog")
    post(core, flagged, "C0THREE", "2.5", "flagged")

    fast = core.report("", channels=["C0ONE", "C0TWO", "C0THREE"])
    counted = core.report("conf>=75", channels=["C0ONE", "C0TWO", "C0THREE"])  # the row-by-row path

    assert fast.totals is not None and counted.totals is not None
    assert dataclasses.replace(fast.totals, with_people=None, people=None) == dataclasses.replace(
        counted.totals, with_people=None, people=None)  # the kept counts do not count people
    assert fast.totals.images == 3 and fast.totals.with_text == 1 and fast.totals.flagged == 1
    assert [(c.name, c.images) for c in fast.top_labels] == [(c.name, c.images) for c in counted.top_labels]
    assert [(c.name, c.images) for c in fast.top_labels] == [("Cat", 2), ("Dog", 1)]
    assert core.report("", channels=["C0TWO"]).totals.images == 2


def test_a_report_on_an_in_memory_database_counts_on_its_one_connection(tmp_path: Any) -> None:
    from bot.config import Settings
    from bot.storage.memory import MemoryStorage
    from bot.wiring import build_core

    analyzer = FakeAnalyzer()
    core = build_core(Settings(database_url="sqlite:///:memory:"), storage=MemoryStorage(),
                      analyzer_factory=lambda: analyzer)
    post(core, make_image(), "C0ONE", "9.1", "F9")

    data = core.report("", channels=["C0ONE"])

    assert core.database.shared_between_connections is False
    assert data.totals is not None and data.totals.images == 1 and len(data.images) == 1
