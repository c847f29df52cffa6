"""``imgbot watch s3://bucket/prefix`` from the outside, and S3 event notifications through the queue:
moto's S3 behind ``AWS_ENDPOINT_URL_S3``, the fake Rekognition, a SQLite database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import cli
from bot.config import Settings
from bot.queue.handlers import build_handlers
from bot.queue.memory import MemoryQueue
from bot.queue.worker import QueueWorker, WorkerOptions
from bot.wiring import build_core
from db import models
from tests.fakes.aws import moto_server, use_fake_aws
from tests.fakes.rekognition import FakeRekognition
from tests.images import make_image
from tests.test_queue import reset_moto


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_server() as url, FakeRekognition() as rekognition:
        reset_moto(url)
        use_fake_aws(monkeypatch, tmp_path, s3=url, rekognition=rekognition.endpoint_url)
        monkeypatch.chdir(tmp_path)
        for name, value in {"DATABASE_URL": f"sqlite:///{tmp_path}/imgbot.db",
                            "IMGBOT_STORAGE": "s3://uploads/imgbot-originals", "IMGBOT_ANALYZER": "rekognition",
                            "IMGBOT_AWS_MAX_ATTEMPTS": "2"}.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("s3")
        client.create_bucket(Bucket="uploads")
        client.rekognition = rekognition  # type: ignore[attr-defined]
        yield client


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def analysed_images(tmp_path: Path) -> dict[str, int]:
    core = build_core(Settings(database_url=f"sqlite:///{tmp_path}/imgbot.db", storage_url="memory://"),
                      analyzer_factory=lambda: None)  # type: ignore[arg-type, return-value]
    try:
        with core.database.transaction() as session:
            rows = session.execute(select(models.Sighting.name, func.count()).group_by(models.Sighting.name)).all()
    finally:
        core.database.dispose()
    return {name: count for name, count in rows}


def test_watch_analyses_each_new_object_once_across_runs(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket="uploads", Key="incoming/2026-01-01/cat.png", Body=make_image())
    s3.put_object(Bucket="uploads", Key="incoming/2026-01-02/dog.jpg", Body=make_image("JPEG"))
    s3.put_object(Bucket="uploads", Key="elsewhere/not-watched.png", Body=make_image())

    code, out, err = run("watch", "--once", "s3://uploads/incoming/")
    assert code == 0, out + err
    assert "watched s3://uploads/incoming/: 2 new — analysed 2, reused 0, failed 0" in out

    s3.put_object(Bucket="uploads", Key="incoming/2026-01-03/banner.png", Body=make_image())
    s3.put_object(Bucket="uploads", Key="incoming/2026-01-03/notes.txt", Body=b"not an image at all")
    code, out, err = run("watch", "--once", "s3://uploads/incoming/")
    assert code == 1, out + err  # the text file failed, with its reason
    assert "2 new — analysed 1, reused 0, failed 1" in out
    assert "s3://uploads/incoming/2026-01-03/notes.txt reason:" in out

    code, out, _ = run("watch", "--once", "s3://uploads/incoming/")
    assert code == 0 and "0 new" in out
    assert s3.rekognition.call_count("DetectLabels") == 3
    assert analysed_images(tmp_path) == {f"s3://uploads/incoming/{key}": 1 for key in (
        "2026-01-01/cat.png", "2026-01-02/dog.jpg", "2026-01-03/banner.png", "2026-01-03/notes.txt")}


def test_watch_from_the_start_downloads_nothing_it_has_seen(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket="uploads", Key="incoming/b.png", Body=make_image())
    code, out, err = run("watch", "--once", "s3://uploads/incoming/")
    assert code == 0, out + err
    s3.put_object(Bucket="uploads", Key="incoming/a.png", Body=make_image())  # sorts before the watermark

    code, out, _ = run("watch", "--once", "--from-start", "s3://uploads/incoming/")

    assert code == 0 and "1 new — analysed 1" in out
    assert s3.rekognition.call_count("DetectLabels") == 2


def test_watch_never_takes_in_imgbots_own_originals(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket="uploads", Key="photo.png", Body=make_image())

    code, out, err = run("watch", "--once", "s3://uploads/")  # the originals land under imgbot-originals/
    assert code == 0, out + err
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket="uploads", Prefix="imgbot-originals/")["Contents"]]
    assert len(stored) == 1
    code, out, _ = run("watch", "--once", "--from-start", "s3://uploads/")
    assert code == 0 and "analysed 0" in out and f"skipped {len(stored)}" in out

    code, _, err = run("watch", "--once", "s3://uploads/imgbot-originals/")
    assert code == 2 and "imgbot keeps its own originals" in err
    assert analysed_images(tmp_path) == {"s3://uploads/photo.png": 1}


def test_s3_event_notifications_on_the_queue_are_analysed_once(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket="uploads", Key="drop/summer sale!.png", Body=make_image())
    settings = Settings.from_env()
    core = build_core(settings)
    queue = MemoryQueue(visibility_timeout=30)

    def notification(key: str) -> str:
        return json.dumps({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
                   "object": {"key": key, "size": 100, "sequencer": "0A1B2C3D4E5F678901"}}}]})

    queue.send_raw(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads"}))
    queue.send_raw(notification("drop/summer+sale%21.png"))  # S3 form-encodes keys in notifications
    queue.send_raw(notification("drop/summer+sale%21.png"))  # delivered twice (at least once)
    queue.send_raw(notification("drop/deleted-meanwhile.png"))
    handlers = build_handlers(core)
    try:
        stats = QueueWorker(queue, handlers.as_dict(), concurrency=1,
                            options=WorkerOptions(wait_seconds=1, idle_interval=3600)).run(once=True)
        originals = [o["Key"] for o in s3.list_objects_v2(Bucket="uploads", Prefix="imgbot-originals/")["Contents"]]
        queue.send_raw(notification(originals[0].replace(" ", "+")))  # imgbot's own put, if notifications overlap
        again = QueueWorker(queue, handlers.as_dict(), concurrency=1,
                            options=WorkerOptions(wait_seconds=1, idle_interval=3600)).run(once=True)
    finally:
        handlers.close()
        core.database.dispose()

    assert stats.done == 4 and again.done == 1 and len(queue) == 0
    assert s3.rekognition.call_count("DetectLabels") == 1
    assert analysed_images(tmp_path) == {"s3://uploads/drop/summer sale!.png": 1}


def test_the_watermark_only_moves_forward_in_s3_key_order(database_url: str) -> None:
    from datetime import UTC, datetime

    from bot.core.types import Source
    from db import work_queries
    from db.session import Database

    database = Database(database_url)
    database.ensure_schema()
    now = datetime.now(UTC)
    try:
        with database.transaction() as session:
            assert work_queries.get_watermark(session, "b", "p/") is None
            work_queries.set_watermark(session, "b", "p/", "p/b.png", now)
            work_queries.set_watermark(session, "b", "p/", "p/B.png", now)  # upper case sorts first in S3
            work_queries.set_watermark(session, "b", "p/", "p/a.png", now)
            work_queries.set_watermark(session, "b", "other/", "other/z.png", now)
        with database.transaction() as session:
            assert work_queries.get_watermark(session, "b", "p/") == "p/b.png"
            work_queries.set_watermark(session, "b", "p/", "p/é.png", now)
            assert work_queries.get_watermark(session, "b", "p/") == "p/é.png"
            work_queries.reset_watermark(session, "b", "p/")
            assert work_queries.get_watermark(session, "b", "p/") is None
            assert work_queries.get_watermark(session, "b", "other/") == "other/z.png"
            assert work_queries.seen_sources(session, [Source.s3("s3://b/p/a.png")]) == set()
    finally:
        database.dispose()


def test_an_image_found_in_s3_names_its_source_with_one_scheme(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket="uploads", Key="incoming/banner.png", Body=make_image())
    assert run("watch", "--once", "s3://uploads/incoming/")[0] == 0

    code, out, _ = run("search", "--json")
    shown = json.loads(out)

    assert code == 0
    assert [hit["source"] for hit in shown] == ["s3://uploads/incoming/banner.png"]
    assert "s3:s3://" not in out
