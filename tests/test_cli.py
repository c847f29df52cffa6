"""The ``imgbot`` CLI from the outside: real analyser (Rekognition through boto3) against the
fake Rekognition server, files on disk, a SQLite database; exit statuses as documented."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from bot.cli import cli
from tests.fakes.rekognition import FakeRekognition
from tests.images import make_image


def png_with(text: list[str] | None = None, labels: str | None = None, moderation: str | None = None,
             colour: tuple[int, int, int] = (40, 80, 220)) -> bytes:
    """A PNG whose text chunks tell the fake Rekognition what it 'sees'."""
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("imgbot:text", "\n".join(text))
    if labels:
        info.add_text("imgbot:labels", labels)
    if moderation:
        info.add_text("imgbot:moderation", moderation)
    image = Image.open(io.BytesIO(make_image("PNG", colour=colour, size=(200, 150))))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.fixture
def rekognition():
    with FakeRekognition() as fake:
        yield fake


@pytest.fixture
def env(tmp_path, monkeypatch, rekognition):
    monkeypatch.chdir(tmp_path)
    values = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/imgbot.db",
        "IMGBOT_STORAGE": f"file://{tmp_path}/originals",
        "IMGBOT_ANALYZER": "rekognition",
        "IMGBOT_AWS_MAX_ATTEMPTS": "2",
        "AWS_ENDPOINT_URL_REKOGNITION": rekognition.endpoint_url,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "cat.png").write_bytes(png_with(labels="Cat,Animal"))
    (folder / "nested" / "banner.png").write_bytes(png_with(text=["SUMMER SALE", "50% OFF"], colour=(220, 30, 30)))
    (folder / "nested" / "beach.jpg").write_bytes(make_image("JPEG", colour=(240, 220, 40)))
    (folder / "README.txt").write_text("not an image, and skipped when walking a folder")
    return folder


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_analyze_walks_folders_and_prints_a_closing_summary(env, photos, rekognition):
    code, out, err = run("analyze", str(photos))

    assert code == 0, out + err
    assert "analysed 3, reused 0, failed 0" in out
    assert rekognition.call_count("DetectLabels") == 3
    assert rekognition.call_count("DetectFaces") == 0  # faces are off by default


def test_analyze_twice_reuses_every_image_without_calling_rekognition_again(env, photos, rekognition):
    run("analyze", str(photos))
    calls = rekognition.call_count()
    code, out, _ = run("analyze", str(photos))

    assert code == 0 and "analysed 0, reused 3" in out
    assert rekognition.call_count() == calls


def test_analyze_exits_1_when_any_image_fails_but_analyses_the_rest(env, photos):
    (photos / "notes.jpg").write_text("a text file named .jpg")
    (photos / "empty.png").write_bytes(b"")
    code, out, err = run("analyze", str(photos))

    assert code == 1
    assert "analysed 3, reused 0, failed 2" in out
    assert "notes.jpg: The file is text, not an image" in err
    assert "empty.png: The file is empty" in err


def test_analyze_with_a_missing_path_is_a_usage_error(env):
    code, _, err = run("analyze", "does-not-exist.jpg")
    assert code == 2 and "does not exist" in err


def test_a_permanent_rekognition_error_fails_the_image_with_its_reason(env, tmp_path, rekognition):
    path = tmp_path / "odd.png"
    path.write_bytes(png_with())
    rekognition.fail_next("DetectLabels", "InvalidImageFormatException")
    code, _, err = run("analyze", str(path))

    assert code == 1 and "InvalidImageFormat" in err


def test_throttling_is_retried_and_a_later_run_finishes_what_still_failed(env, tmp_path, rekognition):
    path = tmp_path / "busy.png"
    path.write_bytes(png_with())
    rekognition.fail_next("DetectText", "ThrottlingException", times=10)
    code, _, _ = run("analyze", str(path))
    assert code == 1

    rekognition.reset()
    code, out, _ = run("analyze", str(path))
    assert code == 0 and "resumed 1" in out


def test_search_json_has_the_documented_fields(env, photos):
    run("analyze", str(photos))
    code, out, _ = run("search", "text:\"50% off\"", "--json")

    hits = json.loads(out)
    assert code == 0 and len(hits) == 1
    hit = hits[0]
    assert {"id", "sha256", "source", "labels", "text", "moderation"} <= set(hit)
    assert hit["text"] == ["SUMMER SALE", "50% OFF"]
    assert all({"name", "confidence"} <= set(label) for label in hit["labels"])


def test_search_finds_labels_through_their_parents(env, photos):
    run("analyze", str(photos))
    code, out, _ = run("search", "label:animal", "--json")
    assert code == 0 and [Path(h["source"]).name for h in json.loads(out)] == ["cat.png"]


def test_search_with_no_match_exits_0_and_a_malformed_query_exits_2(env, photos):
    run("analyze", str(photos))
    code, out, _ = run("search", "label:unicorn")
    assert code == 0 and "No images match" in out

    code, _, err = run("search", "after:yesterday-ish")
    assert code == 2 and err.startswith("Error: ") and "Traceback" not in err

    code, out, err = run("search", "dupes:999999")  # an id that is not there says so
    assert code == 0 and "No images match" in out
    assert "no analysed image 999999, so like:999999 and dupes:999999 match nothing" in err


def test_report_in_every_format(env, photos, tmp_path):
    run("analyze", str(photos))
    code, out, _ = run("report")
    assert code == 0 and out.startswith("# ") and "SUMMER SALE" in out

    code, _, _ = run("report", "--format", "csv", "-o", str(tmp_path / "r.csv"))
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert code == 0 and len(rows) == 1 + 3

    code, out, _ = run("report", "label:cat", "--format", "json")
    assert code == 0 and json.loads(out)["totals"]["images"] == 1


def test_show_by_id_and_by_sha_prefix_and_not_found(env, photos):
    run("analyze", str(photos))
    code, out, _ = run("search", "label:cat", "--json")
    image = json.loads(out)[0]

    code, out, _ = run("show", str(image["id"]), "--json")
    assert code == 0 and json.loads(out)["sha256"] == image["sha256"]
    code, out, _ = run("show", image["sha256"][:10])
    assert code == 0 and "Cat" in out

    code, _, err = run("show", "99999")
    assert code == 1 and "No image" in err


def test_db_upgrade_creates_the_schema_and_is_idempotent(env):
    from db.migrate import head_revision

    code, out, _ = run("db", "upgrade")
    assert code == 0 and f"database at {head_revision()}" in out
    code, out, _ = run("db", "upgrade")
    assert code == 0


def test_an_out_of_date_schema_names_the_fixing_command(env, tmp_path):
    from sqlalchemy import create_engine, text

    engine = create_engine(env["DATABASE_URL"])
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0000')"))
    engine.dispose()

    code, _, err = run("search", "cat")
    assert code == 1 and "imgbot db upgrade" in err


def test_an_unknown_analyzer_fails_at_start_up_with_the_known_names(env, photos, monkeypatch):
    monkeypatch.setenv("IMGBOT_ANALYZER", "magic")
    code, _, err = run("analyze", str(photos))
    assert code == 2 and "magic" in err and "rekognition" in err


def test_worker_once_finishes_pending_images(env, tmp_path, rekognition):
    path = tmp_path / "later.png"
    path.write_bytes(png_with())
    rekognition.fail_next("*", "ServiceUnavailableException", times=50, status=503)
    run("analyze", str(path))
    rekognition.reset()

    code, out, _ = run("worker", "--once")
    assert code == 0 and "finished 1 images, 0 failed" in out


def test_serve_without_a_token_explains_what_is_missing(env):
    code, _, err = run("serve")
    assert code == 2 and "SLACK_BOT_TOKEN" in err


def test_the_console_script_runs_as_a_separate_process(env, photos):
    completed = subprocess.run(
        [sys.executable, "-m", "bot.cli", "analyze", str(photos)], capture_output=True, text=True,
        env=os.environ.copy(), timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "outcome=done" in completed.stderr  # the operator's log line, one per image
    assert completed.stdout.count("done ") == 3


def test_demo_analyses_the_bundled_samples_and_writes_a_report(env, tmp_path, monkeypatch, rekognition):
    code, out, _ = run("demo", "-o", str(tmp_path / "demo.md"))

    assert code == 0, out
    assert "failed 0" in out and "$ imgbot search label:animal" in out
    assert (tmp_path / "demo.md").read_text().startswith("# imgbot demo report")


def test_analyze_stores_originals_encrypted_in_s3_and_rekognition_reads_them_there(env, photos, tmp_path,
                                                                                 monkeypatch):
    import boto3

    from tests.fakes.aws import moto_server

    with moto_server() as s3_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_url)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="acme-images")
        with FakeRekognition(s3_client=s3) as fake:
            monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", fake.endpoint_url)
            monkeypatch.setenv("IMGBOT_STORAGE", "s3://acme-images/imgbot")
            code, out, err = run("analyze", str(photos))
            image_args = [call.params.get("Image", {}) for call in fake.requests]

        keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket="acme-images")["Contents"]]
        heads = [s3.head_object(Bucket="acme-images", Key=key) for key in keys]

    assert code == 0, out + err
    assert len(keys) == 3 and all(key.startswith("imgbot/") for key in keys)
    assert all(head["ServerSideEncryption"] == "AES256" for head in heads)
    assert any("S3Object" in arg for arg in image_args)  # originals that fit are read from S3, not re-sent


def test_a_missing_bucket_fails_each_image_with_a_readable_reason(env, photos, monkeypatch):
    from tests.fakes.aws import moto_server

    with moto_server() as s3_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_url)
        monkeypatch.setenv("IMGBOT_STORAGE", "s3://no-such-bucket/imgbot")
        code, out, err = run("analyze", str(photos))

    assert code == 1 and "failed 3" in out
    assert "no-such-bucket" in err
