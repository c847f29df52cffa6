"""Nothing is lost: throttling, a killed batch, and two workers sharing one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.core.types import Source
from bot.wiring import build_core
from db import models
from tests.fakes.aws import instant_botocore_retries
from tests.fakes.rekognition import FakeRekognition
from tests.images import make_image


def _rekognition_settings(database_url: str, tmp_path: Path, **changes: object) -> Settings:
    return Settings(database_url=database_url, storage_url=f"file://{tmp_path}/originals", analyzer="rekognition",
                    concurrency=8, rekognition_tps=1000).replace(**changes)


def _done_runs_per_image(core) -> dict[int, int]:  # type: ignore[no-untyped-def]
    with core.database.transaction() as session:
        rows = session.execute(
            select(models.AnalysisRun.image_id, func.count())
            .where(models.AnalysisRun.outcome == "done")
            .group_by(models.AnalysisRun.image_id)
        ).all()
    return {image_id: count for image_id, count in rows}


def test_a_fifth_of_calls_throttled_fails_no_image(database_url, tmp_path, monkeypatch):
    instant_botocore_retries(monkeypatch)
    with FakeRekognition(throttle_fraction=0.2) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", fake.endpoint_url)
        core = build_core(_rekognition_settings(database_url, tmp_path))
        try:
            monkeypatch.setattr(core.analyzer, "client", _standard_retry_client(core.analyzer.client))
            results = core.ingest_many([(make_image("JPEG"), Source.file(f"{n}.jpg")) for n in range(30)])
        finally:
            core.database.dispose()
        throttled = sum(fake.throttled.values())

    assert throttled > 10  # the fake really throttled about a fifth of ~90 calls
    assert [r.outcome for r in results].count("done") == 30


def _standard_retry_client(client):  # type: ignore[no-untyped-def]
    """The same client in standard retry mode: adaptive mode's client-side pacing would slow the test down."""
    import boto3
    from botocore.config import Config

    return boto3.client("rekognition", config=Config(retries={"mode": "standard", "max_attempts": 10}))


def test_a_batch_killed_with_sigkill_is_finished_exactly_once_by_the_next_run(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(24):
        (folder / f"{n:02}.jpg").write_bytes(make_image("JPEG"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/imgbot.db",
        "IMGBOT_STORAGE": f"file://{tmp_path}/originals",
        "IMGBOT_ANALYZER": "rekognition",
        "IMGBOT_CONCURRENCY": "4",
    }
    with FakeRekognition(latency=0.15) as fake:
        env["AWS_ENDPOINT_URL_REKOGNITION"] = fake.endpoint_url
        command = [sys.executable, "-m", "bot.cli", "analyze", "--no-progress", str(folder)]
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert fake.wait_for_calls("DetectLabels", 8, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert first.returncode == -signal.SIGKILL
    assert second.returncode == 0, second.stdout + second.stderr
    core = build_core(Settings(database_url=env["DATABASE_URL"], storage_url=env["IMGBOT_STORAGE"]),
                      analyzer_factory=lambda: None)  # type: ignore[arg-type, return-value]
    try:
        runs = _done_runs_per_image(core)
        with core.database.transaction() as session:
            statuses = session.execute(select(models.Image.status, func.count()).group_by(models.Image.status)).all()
            sightings = session.execute(select(func.count()).select_from(models.Sighting)).scalar_one()
            labels = session.execute(select(func.count()).select_from(models.Label)).scalar_one()
    finally:
        core.database.dispose()
    assert dict(statuses) == {"done": 24}
    assert sorted(runs.values()) == [1] * 24  # each image analysed to completion exactly once
    assert sightings == 24
    assert labels == 24  # one colour label each: no duplicated result rows


@pytest.mark.postgres
def test_two_workers_on_one_postgresql_database_never_analyse_an_image_twice(tmp_path, monkeypatch):
    from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database

    if not POSTGRES_URL:
        pytest.skip("needs IMGBOT_TEST_POSTGRES_URL (bash .ci/run sets it up)")
    url = create_postgres_database()
    try:
        with FakeRekognition(latency=0.05) as fake:
            monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", fake.endpoint_url)
            settings = _rekognition_settings(url, tmp_path)
            core = build_core(settings)
            items = [make_image("JPEG") for _ in range(40)]
            _queue_pending(core, items)
            env = {**os.environ, "DATABASE_URL": url, "IMGBOT_STORAGE": settings.storage_url,
                   "IMGBOT_ANALYZER": "rekognition", "IMGBOT_CONCURRENCY": "4",
                   "AWS_ENDPOINT_URL_REKOGNITION": fake.endpoint_url}
            workers = [subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--once"], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
            outputs = [worker.communicate(timeout=300) for worker in workers]
            calls = fake.call_count("DetectLabels")
            runs = _done_runs_per_image(core)
            core.database.dispose()
    finally:
        drop_postgres_database(url)

    assert all(worker.returncode == 0 for worker in workers), outputs
    assert sorted(runs.values()) == [1] * 40
    assert calls == 40


def _queue_pending(core, images: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    """What `imgbot serve` leaves for workers: originals stored, rows pending, no analysis yet."""
    from datetime import datetime

    from bot.core.intake import prepare_image
    from bot.core.pipeline import storage_key
    from db import queries

    now = datetime.now(UTC)
    for n, data in enumerate(images):
        prepared = prepare_image(data, max_bytes=10**8, max_pixels=10**8)
        stored = core.storage.put(storage_key(prepared.sha256, prepared.extension), data, prepared.mime_type)
        with core.database.transaction() as session:
            image_id = queries.record_image(session, sha256=prepared.sha256, byte_size=len(data), now=now,
                                            prepared=prepared)
            queries.record_sighting(session, image_id, Source.file(f"queued-{n}.jpg"), now)
            queries.record_stored(session, image_id, stored.key, stored.uri, now)


def test_a_database_outage_of_a_few_seconds_is_retried_and_a_longer_one_fails_only_its_images(
        core, fake_analyzer, monkeypatch):  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    from bot.core import pipeline as pipeline_module
    from db import queries

    monkeypatch.setattr(pipeline_module, "DATABASE_RETRY_DELAYS", (0.01, 0.02, 0.05))
    save_analysis = queries.save_analysis
    outage = iter(range(2))

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        if next(outage, None) is not None:
            raise OperationalError("UPDATE images", {}, Exception("server closed the connection unexpectedly"))
        return save_analysis(*args, **kwargs)

    monkeypatch.setattr(queries, "save_analysis", flaky)
    brief = core.ingest_many([(make_image(), Source.file(f"brief-{n}.png")) for n in range(3)])
    assert [r.outcome for r in brief] == ["done"] * 3

    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("UPDATE images", {}, Exception("connection refused"))

    monkeypatch.setattr(queries, "save_analysis", down)
    long = core.ingest_many([(make_image(), Source.file("long.png"))])
    assert long[0].outcome == "failed" and long[0].retryable and "database" in (long[0].reason or "")

    monkeypatch.setattr(queries, "save_analysis", save_analysis)
    finished = core.finish_pending()
    assert [r.outcome for r in finished] == ["done"]
    runs = _done_runs_per_image(core)
    assert sorted(runs.values()) == [1] * 4
