"""The pipeline through its public interface: ingest, dedupe, failures, crash recovery."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from bot.core.types import Source
from bot.errors import AnalyzerError, StorageError
from tests.fakes.analyzer import FakeAnalyzer
from tests.images import make_image


def test_reposting_the_same_bytes_makes_no_new_analyzer_call(pipeline, fake_analyzer):
    cat = make_image()
    first = pipeline.ingest(cat, source=Source.file("cat.jpg"))
    second = pipeline.ingest(cat, source=Source.file("cat-copy.jpg"))

    assert first.outcome == "done"
    assert second.outcome == "reused"
    assert second.image_id == first.image_id
    assert fake_analyzer.calls == 1


def test_a_repost_is_a_new_sighting_of_the_same_image(core):
    cat = make_image()
    core.ingest(cat, Source.file("a.png"))
    core.ingest(cat, Source.slack(team_id="T1", channel_id="C1", user_id="U1", file_id="F1",
                                  message_ts="1700000000.0001"))

    again = core.ingest(cat, Source.file("a.png"))  # the same source again is not a new sighting

    record = core.show(again.image_id)
    assert again.outcome == "reused"
    assert sorted(s.source for s in record.sightings) == ["file:a.png", "slack:C1"]


def test_the_original_is_stored_once_under_a_content_address(pipeline, storage):
    data = make_image("JPEG")
    result = pipeline.ingest(data, Source.file("x.jpg"))
    pipeline.ingest(data, Source.file("y.jpg"))

    key = f"{result.sha256[:2]}/{result.sha256}.jpg"
    assert storage.get(key) == data
    assert storage.puts == 1


def test_scripted_results_are_saved_and_shown(core, fake_analyzer):
    banner = make_image()
    fake_analyzer.script(banner, labels=[("Cat", 98.5, ["Pet", "Animal"]), ("Animal", 98.5)],
                         text=["SUMMER SALE", "50% OFF"], moderation=[("Explicit", 88.0)])
    result = core.ingest(banner, Source.file("banner.png"))

    record = core.show(result.image_id)
    assert result.outcome == "done" and result.flagged and result.text_lines == 2
    assert [label.name for label in record.labels] == ["Cat", "Animal"]
    assert record.labels[0].parents == ("Pet", "Animal")
    assert [line.text for line in record.lines] == ["SUMMER SALE", "50% OFF"]
    assert len(record.text) == 2 + 4  # two lines and their four words
    assert record.moderation[0].name == "Explicit"
    assert record.provider == "fake" and record.model_versions == {"fake": "1"}


def test_labels_below_the_storage_floor_are_not_kept(core, fake_analyzer):
    data = make_image()
    fake_analyzer.script(data, labels=[("Dog", 97.0), ("Wolf", 49.0)], moderation=[("Violence", 40.0)])
    record = core.show(core.ingest(data, Source.file("dog.png")).image_id)

    assert [label.name for label in record.labels] == ["Dog"]
    assert record.moderation == ()


def test_every_bad_input_fails_alone_with_a_reason(core, fake_analyzer, tmp_path):
    tmp_path = tmp_path / "batch"
    tmp_path.mkdir()
    good = make_image()
    cases = {
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file, not a picture\n",
        "truncated.jpg": make_image("JPEG", size=(400, 300))[:600],
        "page.png": b"<!DOCTYPE html><html><body>sign in</body></html>",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "good.png").write_bytes(good)

    items = [(path, Source.file(str(path))) for path in sorted(tmp_path.iterdir()) if path.is_file()]
    results = {r.sha256: r for r in core.ingest_many(items)}

    by_name = {path.name: results[_sha(path.read_bytes())] for path, _ in items}
    assert by_name["good.png"].outcome == "done"
    assert "empty" in by_name["empty.jpg"].reason
    assert "text" in by_name["notes.jpg"].reason
    assert "damaged or incomplete" in by_name["truncated.jpg"].reason
    assert "web page" in by_name["page.png"].reason
    assert fake_analyzer.calls == 1
    assert core.show(by_name["notes.jpg"].image_id).status == "failed"


def test_a_huge_image_is_refused_before_its_pixels_are_decoded(core):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (10_000, 8_000)).save(buffer, "PNG")  # 80 megapixels, a few kilobytes
    result = core.ingest(buffer.getvalue(), Source.file("bomb.png"))

    assert result.outcome == "failed"
    assert "80 megapixels" in result.reason and "IMGBOT_MAX_PIXELS" in result.reason


def test_an_analyzer_failure_is_stored_and_a_later_run_finishes_it(core, fake_analyzer):
    data = make_image()
    fake_analyzer.fail(data, AnalyzerError("Rekognition is busy; try later.", retryable=True))

    first = core.ingest(data, Source.file("later.png"))
    assert first.outcome == "failed" and first.retryable
    assert core.show(first.image_id).failure_reason == "Rekognition is busy; try later."

    resumed = core.finish_pending()
    assert [r.outcome for r in resumed] == ["done"]
    assert core.show(first.image_id).status == "done"


def test_a_permanent_failure_is_not_retried_by_finish_pending(core, fake_analyzer):
    data = make_image()
    fake_analyzer.fail(data, AnalyzerError("Rekognition cannot read this image.", retryable=False))
    core.ingest(data, Source.file("bad.png"))

    assert core.finish_pending() == []


def test_a_storage_failure_fails_the_image_and_is_retried_later_from_its_file(core, storage, tmp_path):
    path = tmp_path / "s3down.png"
    path.write_bytes(make_image())
    storage.fail_next(StorageError("S3 is unreachable.", retryable=True))
    result = core.ingest(path.read_bytes(), Source.file(str(path)))

    assert result.outcome == "failed" and "S3 is unreachable." in result.reason
    assert [r.outcome for r in core.finish_pending()] == ["done"]


def test_an_image_left_pending_by_a_crash_is_finished_by_the_next_run(settings, storage):
    from bot.wiring import build_core
    from db import queries

    data = make_image()
    crashed = build_core(settings, storage=storage, analyzer_factory=FakeAnalyzer)
    key = f"{_sha(data)[:2]}/{_sha(data)}.png"
    storage.put(key, data, "image/png")
    with crashed.database.transaction() as session:  # what a run killed after "pending" leaves behind
        image_id = queries.record_image(session, sha256=_sha(data), byte_size=len(data), now=_now())
        queries.record_stored(session, image_id, key, f"memory://{key}", _now())
        # its lease, held by a process on another host, has run out
        queries.claim_image(session, image_id, owner="otherhost:1", now=_now() - queries.LEASE - timedelta(seconds=1))

    analyzer = FakeAnalyzer()
    next_run = build_core(settings, storage=storage, analyzer_factory=lambda: analyzer)
    results = next_run.finish_pending()

    try:
        assert [(r.image_id, r.outcome) for r in results] == [(image_id, "done")]
        assert next_run.show(image_id).status == "done" and analyzer.calls == 1
    finally:
        crashed.database.dispose()
        next_run.database.dispose()


def test_one_log_line_per_image_with_id_outcome_and_seconds(pipeline, caplog):
    caplog.set_level(logging.INFO, logger="imgbot.pipeline")
    result = pipeline.ingest(make_image(), Source.file("log.png"))

    lines = [r.getMessage() for r in caplog.records if r.name == "imgbot.pipeline"]
    assert len(lines) == 1
    assert f"image={result.image_id} " in lines[0] and "outcome=done" in lines[0] and "secs=" in lines[0]


def test_concurrent_ingest_of_duplicates_analyses_each_image_once(core, fake_analyzer):
    images = [make_image() for _ in range(5)]
    items = [(data, Source.file(f"{i}-{n}.png")) for n in range(3) for i, data in enumerate(images)]
    fake_analyzer.delay = 0.02

    results = core.ingest_many(items)

    assert len(results) == 15 and all(r.ok for r in results)
    assert fake_analyzer.calls == 5


def test_heic_webp_gif_tiff_bmp_and_rotated_jpeg_are_all_accepted(core):
    for fmt in ("HEIF", "WEBP", "GIF", "TIFF", "BMP", "JPEG"):
        data = make_image(fmt, exif_orientation=6 if fmt == "JPEG" else None)
        result = core.ingest(data, Source.file(f"x.{fmt.lower()}"))
        assert result.outcome == "done", (fmt, result.reason)
    rotated = core.show(result.image_id)
    assert (rotated.width, rotated.height) == (120, 160)  # EXIF orientation 6 applied


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _now():
    return datetime.now(UTC)


def test_a_repost_after_the_last_sighting_was_deleted_stores_the_original_again(core, storage):
    data = make_image("JPEG")
    slack = Source.slack(team_id="T1", channel_id="C1", user_id="U1", file_id="F1", message_ts="1700000000.0001")
    first = core.ingest(data, slack)
    core.delete_slack_file("F1")
    assert core.show(first.image_id).storage_key is None and len(storage) == 0

    again = core.ingest(data, Source.file("again.jpg"))

    assert again.outcome == "reused"
    assert storage.get(core.show(first.image_id).storage_key) == data


def test_a_storage_failure_while_deleting_keeps_the_deletion(core, storage):
    data = make_image()
    core.ingest(data, Source.slack(team_id="T1", channel_id="C1", user_id="U1", file_id="F9",
                                   message_ts="1700000000.0002"))
    storage.fail_next(StorageError("S3 is unreachable."))

    hidden = core.delete_slack_file("F9")

    assert len(hidden) == 1
    assert core.search("").total == 0


def test_saving_an_analysis_again_replaces_every_result_of_the_first(core, fake_analyzer):
    from db import queries
    from tests.fakes.analyzer import build_analysis

    data = make_image(colour=(10, 200, 30))
    fake_analyzer.script(data, labels=[("Cat", 95.0), ("Animal", 95.0)], text=["HELLO"], people=2)
    result = core.ingest(data, Source.file("/tmp/cat.png"))
    assert result.outcome == "done" and core.show(result.image_id).people == 2

    again = build_analysis(labels=[("Dog", 91.0)])
    with core.database.transaction() as session:
        queries.save_analysis(session, result.image_id, again, started_at=datetime.now(UTC), seconds=0.1,
                              now=datetime.now(UTC), store_min_confidence=50.0)

    record = core.show(result.image_id)
    assert [label.name for label in record.labels] == ["Dog"] and record.lines == () and record.people == 0
    assert {hit.image.id for hit in core.search("cat").hits} == set()
    assert {hit.image.id for hit in core.search("dog").hits} == {result.image_id}


def test_a_new_image_is_recorded_with_its_storage_sighting_and_job_at_once(core):
    """The arrival of a new image is one insert of the image (metadata, storage, lease, last seen) and one
    of its sighting; the same bytes again find the image, add their sighting and take no second job."""
    from sqlalchemy import event, select

    from bot.core.intake import prepare_image
    from bot.core.types import StoredObject
    from db import channel_stats, models, queries

    data = make_image(colour=(200, 20, 90))
    prepared = prepare_image(data, max_bytes=10**8, max_pixels=10**8)
    stored = StoredObject(key="ab/cd.png", uri="memory://ab/cd.png")
    posted = Source.slack(team_id="T1", channel_id="C1", user_id="U1", file_id="F1", message_ts="1700000000.0001",
                          name="a.png")
    statements: list[str] = []
    event.listen(core.database.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    first_seen = datetime.now(UTC)
    with core.database.transaction() as session:
        first = queries.record_arrival(session, sha256=prepared.sha256, byte_size=len(data), source=Source.file("/a"),
                                       owner="me:1", now=first_seen, prepared=prepared, stored=stored)
    written = [s for s in statements if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT"))]
    assert len(written) == 2, written
    with core.database.transaction() as session:
        again = queries.record_arrival(session, sha256=prepared.sha256, byte_size=len(data), source=posted,
                                       owner="other:2", now=datetime.now(UTC), prepared=prepared, stored=stored)
        image = session.execute(select(models.Image).where(models.Image.id == first.image_id)).scalar_one()
        sightings = session.execute(select(models.Sighting.source_key).where(
            models.Sighting.image_id == first.image_id)).scalars().all()
        in_channel = channel_stats.totals(session, ["C1"], label_floor=0, moderation_floor=0,
                                          statuses=("pending",)).images

    assert (first.created, first.claimed, first.status) == (True, True, "pending")
    assert (again.image_id, again.created, again.claimed) == (first.image_id, False, False)  # "me:1" holds it
    assert (image.storage_key, image.width, image.lease_owner, image.attempts) == ("ab/cd.png", prepared.width,
                                                                                 "me:1", 1)
    assert image.last_seen_at == first_seen  # the Slack post's own time is older: last seen never goes back
    assert sorted(sightings) == sorted([Source.file("/a").key, posted.key]) and in_channel == 1


def test_the_original_of_an_image_that_fails_to_be_stored_is_not_recorded(core, storage):
    data = make_image(colour=(1, 99, 250))
    storage.fail_next(StorageError("S3 is unreachable.", retryable=True))
    result = core.ingest(data, Source.file("/tmp/x.png"))

    record = core.show(result.image_id)
    assert (record.status, record.storage_key, record.failure_reason) == ("failed", None, "S3 is unreachable.")
    assert [r.outcome for r in core.finish_pending()] == ["failed"]  # no file to read it from: still failing
