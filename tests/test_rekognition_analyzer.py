"""The Rekognition analyser through boto3: against the fake Rekognition server, and moto where it can.

boto3 finds the fakes through ``AWS_ENDPOINT_URL_REKOGNITION`` / ``AWS_ENDPOINT_URL_S3``,
exactly as it would find a real endpoint. Retry tests use botocore's standard mode
with the back-off delay removed, so they check *that* botocore retries without
waiting for it.
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest
from PIL import Image, PngImagePlugin

from bot.analyzers.rekognition import (
    RekognitionAnalyzer,
    create,
    labels_from,
    s3_location,
    text_from,
)
from bot.aws import make_client
from bot.config import Settings
from bot.core.ports import Analyzer
from bot.core.types import BoundingBox, ModerationLabel, PreparedImage, StoredObject
from bot.errors import AnalyzerError
from bot.ratelimit import RateLimiter
from bot.storage.s3 import S3Storage
from tests.fakes.aws import instant_botocore_retries, moto_server, use_fake_aws
from tests.fakes.rekognition import FakeRekognition

#: botocore reads ``retries["max_attempts"]`` as retries after the first try, so a call is tried RETRIES + 1 times.
RETRIES = 2
ATTEMPTS = RETRIES + 1


def png(colour: tuple[int, int, int] = (220, 30, 30), size: tuple[int, int] = (120, 120), **chunks: str) -> bytes:
    """A plain PNG; ``chunks`` become text chunks the fake reads (``imgbot_text=…`` → ``imgbot:text``)."""
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key.replace("_", ":", 1), value)
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def prepared(data: bytes, *, stored: StoredObject | None = None, is_original: bool = True,
             analysis_bytes: bytes | None = None) -> PreparedImage:
    return PreparedImage(
        sha256=hashlib.sha256(data).hexdigest(), data=data, format="PNG", mime_type="image/png",
        width=120, height=120, analysis_bytes=analysis_bytes if analysis_bytes is not None else data,
        analysis_format="PNG", analysis_width=120, analysis_height=120, analysis_is_original=is_original,
        stored=stored,
    )


@pytest.fixture(autouse=True)
def _instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    instant_botocore_retries(monkeypatch)


@pytest.fixture
def fake() -> Iterator[FakeRekognition]:
    with FakeRekognition() as server:
        yield server


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeRekognition) -> None:
    use_fake_aws(monkeypatch, tmp_path, rekognition=fake.endpoint_url)


def build(*, faces: bool = False, tps: float = 10_000, retries: int = RETRIES,
          store_min_confidence: float = 50.0) -> RekognitionAnalyzer:
    client = make_client("rekognition", Settings(aws_max_attempts=retries), retry_mode="standard")
    return RekognitionAnalyzer(client, faces=faces, store_min_confidence=store_min_confidence,
                               limiter=RateLimiter(tps))


@pytest.fixture
def analyzer(aws: None) -> Iterator[RekognitionAnalyzer]:
    with build() as built:
        yield built


# -- mapping ------------------------------------------------------------------------------------


def test_labels_text_and_moderation_are_mapped_to_provider_neutral_types(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer
) -> None:
    data = png()
    fake.script(
        data,
        labels=[
            {"Name": "Cat", "Confidence": 97.5, "Parents": [{"Name": "Animal"}, {"Name": "Pet"}],
             "Aliases": [{"Name": "Kitty"}], "Categories": [{"Name": "Animals and Pets"}],
             "Instances": [{"BoundingBox": {"Width": 0.5, "Height": 0.4, "Left": 0.1, "Top": 0.2},
                            "Confidence": 96.0}]},
            ("Blurry Shape", 40.0),  # under the store floor: Rekognition is asked not to return it
        ],
        text=["Join us <!channel>"],
        moderation=["Explicit Nudity"],
    )

    analysis = analyzer.analyze(prepared(data))

    assert analysis.provider == "rekognition"
    [cat] = analysis.labels
    assert (cat.name, cat.confidence) == ("Cat", 97.5)
    assert cat.parents == ("Animal", "Pet")
    assert cat.aliases == ("Kitty",)
    assert cat.categories == ("Animals and Pets",)
    assert cat.instances[0].box == BoundingBox(left=0.1, top=0.2, width=0.5, height=0.4)
    assert cat.instances[0].confidence == 96.0
    [line] = analysis.lines
    assert line.text == "Join us <!channel>"
    assert [w.text for w in analysis.words] == ["Join", "us", "<!channel>"]
    assert {w.parent_id for w in analysis.words} == {line.id}
    assert line.parent_id is None and len(line.polygon) == 4
    assert analysis.moderation == (
        ModerationLabel(name="Explicit", confidence=92.5, parent_name=None, taxonomy_level=1),
        ModerationLabel(name="Explicit Nudity", confidence=92.5, parent_name="Explicit", taxonomy_level=2),
    )


def test_model_versions_and_raw_responses_are_kept_without_response_metadata(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer
) -> None:
    analysis = analyzer.analyze(prepared(png()))

    assert analysis.model_versions == {"labels": "3.0", "text": "3.0", "moderation": "7.0"}
    assert set(analysis.raw) == {"DetectLabels", "DetectText", "DetectModerationLabels"}
    assert all("ResponseMetadata" not in response for response in analysis.raw.values())
    assert analysis.raw["DetectLabels"]["Labels"][0]["Name"] == "Red"


def test_the_fake_derives_findings_from_the_image_itself(analyzer: RekognitionAnalyzer) -> None:
    data = png((40, 80, 220), imgbot_text="SALE 50%\nToday only", imgbot_labels="Poster", imgbot_moderation="Weapons")

    analysis = analyzer.analyze(prepared(data))

    assert [label.name for label in analysis.labels] == ["Blue", "Poster"]
    assert [line.text for line in analysis.lines] == ["SALE 50%", "Today only"]
    assert [m.name for m in analysis.moderation] == ["Violence", "Weapons"]


def test_detect_labels_asks_for_general_labels_above_the_store_floor(
    fake: FakeRekognition, aws: None
) -> None:
    with build(store_min_confidence=62.5) as analyzer:
        analyzer.analyze(prepared(png()))

    [labels] = [call for call in fake.requests if call.operation == "DetectLabels"]
    [moderation] = [call for call in fake.requests if call.operation == "DetectModerationLabels"]
    assert labels.params["MinConfidence"] == 62.5
    assert "Features" not in labels.params  # general labels are the default; not every endpoint takes the option
    assert "MaxLabels" not in labels.params  # the API's default is already its upper limit
    assert moderation.params["MinConfidence"] == 62.5


# -- faces --------------------------------------------------------------------------------------


def test_faces_are_not_requested_when_switched_off(fake: FakeRekognition, analyzer: RekognitionAnalyzer) -> None:
    data = png()
    fake.script(data, faces=2)

    analysis = analyzer.analyze(prepared(data))

    assert fake.call_count("DetectFaces") == 0
    assert analysis.faces == () and analysis.faces_requested is False


def test_faces_with_all_attributes_are_mapped_when_switched_on(fake: FakeRekognition, aws: None) -> None:
    data = png()
    fake.script(data, faces=2)

    with build(faces=True) as analyzer:
        analysis = analyzer.analyze(prepared(data))

    [request] = [call for call in fake.requests if call.operation == "DetectFaces"]
    assert request.params["Attributes"] == ["ALL"]
    assert analysis.faces_requested is True
    assert len(analysis.faces) == 2
    face = analysis.faces[0]
    assert face.confidence == 99.9
    assert [mark.type for mark in face.landmarks] == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
    assert face.attributes["AgeRange"] == {"Low": 25, "High": 35}
    assert face.attributes["Smile"] == {"Value": True, "Confidence": 93.1}
    assert face.attributes["Emotions"][0] == {"Type": "HAPPY", "Confidence": 91.0}
    assert "BoundingBox" not in face.attributes and "Landmarks" not in face.attributes


# -- concurrency and pacing ---------------------------------------------------------------------


def test_the_calls_for_one_image_run_at_the_same_time(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough that the four overlap even when the machine is busy (at 0.2 s they once did not).
    with FakeRekognition(latency=0.6) as slow:
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", slow.endpoint_url)
        with build(faces=True) as analyzer:
            analyzer.analyze(prepared(png()))

    # All four calls of one image were in flight at once (one after the other, it would be 1).
    # Speed itself is measured by bench/batch.py, not asserted here.
    assert slow.max_in_flight == 4


def test_one_analyser_serves_many_threads_at_once(fake: FakeRekognition, analyzer: RekognitionAnalyzer) -> None:
    images = [png((i * 20, 200 - i * 20, 90), imgbot_text=f"image {i}") for i in range(10)]
    results: dict[int, str] = {}

    def work(index: int) -> None:
        results[index] = analyzer.analyze(prepared(images[index])).lines[0].text

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {i: f"image {i}" for i in range(10)}
    assert fake.calls == {"DetectLabels": 10, "DetectText": 10, "DetectModerationLabels": 10}


def test_calls_share_the_analysers_pool_instead_of_a_pool_per_image(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer
) -> None:
    for _ in range(8):
        analyzer.analyze(prepared(png()))

    call_threads = [t for t in threading.enumerate() if t.name.startswith("imgbot-rekognition")]
    assert 0 < len(call_threads) <= 16  # the pool's size, however many images went through


def run_batch(analyzer: RekognitionAnalyzer, count: int, threads: int) -> list[BaseException]:
    errors: list[BaseException] = []
    data = png()

    def work(indices: range) -> None:
        for _ in indices:
            try:
                analyzer.analyze(prepared(data))
            except AnalyzerError as exc:
                errors.append(exc)

    workers = [threading.Thread(target=work, args=(range(i, count, threads),)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


def test_a_paced_batch_stays_under_the_quota_without_throttling(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeRekognition(tps_limit=20) as limited:
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", limited.endpoint_url)
        with build(tps=20) as analyzer:
            errors = run_batch(analyzer, count=30, threads=6)

    assert errors == []
    assert limited.throttled == {}
    assert limited.call_count("DetectLabels") == 30


def test_an_unpaced_batch_would_be_throttled(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter-test of the one above: without the limiter the same batch trips the quota."""
    with FakeRekognition(tps_limit=2) as limited:  # a low quota, so even a slow machine trips it
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", limited.endpoint_url)
        with build(tps=100_000, retries=0) as analyzer:
            errors = run_batch(analyzer, count=12, threads=6)

    assert limited.throttled
    assert errors and all(isinstance(e, AnalyzerError) and e.retryable for e in errors)


# -- where the image comes from -----------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def test_an_original_stored_in_s3_is_passed_as_an_s3_object(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_url: str
) -> None:
    use_fake_aws(monkeypatch, tmp_path, s3=moto_url)
    bucket = f"imgbot-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    data = png((40, 170, 60))
    stored = S3Storage(bucket, "team/originals", s3).put("ab/abcdef.png", data, "image/png")

    with FakeRekognition(s3_client=s3) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", fake.endpoint_url)
        with build() as analyzer:
            analysis = analyzer.analyze(prepared(data, stored=stored))

    assert {call.operation: call.params["Image"] for call in fake.requests} == {
        op: {"S3Object": {"Bucket": bucket, "Name": "team/originals/ab/abcdef.png"}}
        for op in ("DetectLabels", "DetectText", "DetectModerationLabels")
    }
    assert analysis.labels[0].name == "Green"  # the fake read the object from S3


def test_an_s3_object_rekognition_cannot_read_is_sent_as_bytes_instead(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer
) -> None:
    data = png((200, 30, 30))
    stored = StoredObject(uri="s3://elsewhere/originals/ab/abc.png", key="ab/abc.png", bucket="elsewhere")
    for operation in ("DetectLabels", "DetectText", "DetectModerationLabels"):
        fake.fail_next(operation, "InvalidS3ObjectException")  # as AWS says when it cannot read the object

    analysis = analyzer.analyze(prepared(data, stored=stored))

    sent = [(call.operation, next(iter(call.params["Image"]))) for call in fake.requests]
    assert sorted(sent) == sorted([(op, kind) for op in ("DetectLabels", "DetectText", "DetectModerationLabels")
                                   for kind in ("S3Object", "Bytes")])
    assert analysis.labels[0].name == "Red"


def test_a_service_that_does_not_offer_an_operation_fails_at_once(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer
) -> None:
    fake.fail_next("DetectModerationLabels", "NotImplemented", times=100, status=501)

    with pytest.raises(AnalyzerError) as caught:
        analyzer.analyze(prepared(png()))

    assert caught.value.retryable is False
    assert "does not offer DetectModerationLabels" in caught.value.user_message
    assert fake.call_count("DetectModerationLabels") == 1


def test_bytes_are_sent_when_the_analysis_copy_is_not_the_original(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer
) -> None:
    original, copy = png(size=(300, 300)), png(size=(150, 150))
    stored = StoredObject(uri="s3://bucket/originals/ab/abc.png", key="ab/abc.png", bucket="bucket")

    analyzer.analyze(prepared(original, stored=stored, is_original=False, analysis_bytes=copy))

    assert {call.image_sha256 for call in fake.requests} == {hashlib.sha256(copy).hexdigest()}
    assert all("Bytes" in call.params["Image"] for call in fake.requests)


def test_an_original_in_a_local_folder_is_sent_as_bytes(fake: FakeRekognition, analyzer: RekognitionAnalyzer) -> None:
    data = png()
    stored = StoredObject(uri="file:///data/images/ab/abc.png", key="ab/abc.png")

    analyzer.analyze(prepared(data, stored=stored))

    assert all("Bytes" in call.params["Image"] for call in fake.requests)


def test_the_s3_location_is_the_full_object_key_from_the_uri() -> None:
    assert s3_location(StoredObject(uri="s3://b/p/q/ab/x.jpg", key="ab/x.jpg", bucket="b")) == ("b", "p/q/ab/x.jpg")
    assert s3_location(StoredObject(uri="memory://ab/x.jpg", key="ab/x.jpg")) is None
    assert s3_location(None) is None


def test_detect_labels_and_detect_text_speak_moto_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_url: str
) -> None:
    """moto answers DetectLabels and DetectText (not moderation or faces): check the mapping on its answers."""
    use_fake_aws(monkeypatch, tmp_path, rekognition=moto_url)
    with build() as analyzer:
        requests = analyzer.requests(prepared(png()))
        labels = labels_from(analyzer.call("DetectLabels", requests["DetectLabels"]))
        text = text_from(analyzer.call("DetectText", requests["DetectText"]))

    phone = labels[0]
    assert phone.name == "Mobile Phone"
    assert phone.parents == ("Phone",) and phone.aliases == ("Cell Phone",)
    assert phone.categories == ("Technology and Computing",)
    assert phone.instances[0].box.width > 0
    assert [t.text for t in text if t.kind == "LINE"][:2] == ["IT'S", "MONDAY"]
    assert all(t.parent_id is not None for t in text if t.kind == "WORD")


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_throttling_is_retried_by_botocore_and_then_succeeds(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer, code: str
) -> None:
    fake.fail_next("DetectLabels", code, times=ATTEMPTS - 1)

    analysis = analyzer.analyze(prepared(png()))

    assert analysis.labels[0].name == "Red"
    assert fake.call_count("DetectLabels") == ATTEMPTS


def test_a_throttle_slows_that_api_and_its_retry_is_paced_too(
    fake: FakeRekognition, aws: None
) -> None:
    limiter = RateLimiter(1_000)
    client = make_client("rekognition", Settings(aws_max_attempts=3), retry_mode="standard")
    paced: list[str] = []
    acquire = limiter.acquire
    limiter.acquire = lambda key: paced.append(key) or acquire(key)  # type: ignore[method-assign]
    fake.fail_next("DetectText", "ThrottlingException", times=1)

    with RekognitionAnalyzer(client, faces=False, limiter=limiter) as analyzer:
        analyzer.analyze(prepared(png()))

    assert paced.count("DetectText") == 2  # the first try and botocore's retry both waited their turn
    assert limiter.quota("DetectText").throttles == 1
    assert limiter.quota("DetectText").current_share() < 1.0
    assert limiter.quota("DetectLabels").current_share() == 1.0  # the other APIs keep their pace


def test_the_analysis_says_how_long_it_waited_for_its_turn(fake: FakeRekognition, aws: None) -> None:
    with build(tps=2) as analyzer:
        analyzer.analyze(prepared(png()))
        second = analyzer.analyze(prepared(png(colour=(0, 0, 255))))

    assert 0.2 < second.paced_seconds <= 1 / 2 * 1.02 + 0.01  # it waited its turn, and only that long


def test_persistent_throttling_is_a_retryable_analyzer_error(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer
) -> None:
    fake.fail_next("DetectText", "ProvisionedThroughputExceededException", times=100)

    with pytest.raises(AnalyzerError) as caught:
        analyzer.analyze(prepared(png()))

    assert caught.value.retryable is True
    assert caught.value.user_message.startswith("Amazon Rekognition is busy (ProvisionedThroughputExceeded)")
    assert fake.call_count("DetectText") == ATTEMPTS


def test_an_unreadable_image_is_a_permanent_error_with_a_readable_message(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer
) -> None:
    with pytest.raises(AnalyzerError) as caught:
        analyzer.analyze(prepared(b"GIF89a this is not a JPEG or PNG"))

    assert caught.value.retryable is False
    assert caught.value.user_message.startswith("Rekognition could not read this image (InvalidImageFormat).")
    assert "InvalidImageFormatException" in caught.value.detail
    assert fake.call_count("DetectLabels") == 1  # not retried


@pytest.mark.parametrize(
    ("code", "retryable", "says"),
    [
        ("InvalidImageFormatException", False, "could not read this image"),
        ("ImageTooLargeException", False, "too large"),
        ("InvalidS3ObjectException", False, "could not read the stored image from S3"),
        ("InvalidParameterException", False, "InvalidParameter"),
        ("AccessDeniedException", False, "not allowed to use Amazon Rekognition"),
        ("UnrecognizedClientException", False, "imgbot's AWS credentials were refused"),
        ("InvalidSignatureException", False, "imgbot's AWS credentials were refused"),
        ("ExpiredTokenException", False, "imgbot's AWS credentials were refused"),
        ("ThrottlingException", True, "busy"),
        ("LimitExceededException", True, "busy"),
        ("InternalServerError", True, "unavailable right now"),
        ("UnknownOperationException", False, "does not offer"),
    ],
)
def test_rekognition_errors_say_whether_trying_later_can_help(
    fake: FakeRekognition, analyzer: RekognitionAnalyzer, code: str, retryable: bool, says: str
) -> None:
    fake.fail_next("*", code, times=100)

    with pytest.raises(AnalyzerError) as caught:
        analyzer.analyze(prepared(png()))

    assert caught.value.retryable is retryable
    assert says in caught.value.user_message


def test_a_server_unavailable_answer_is_retryable(fake: FakeRekognition, analyzer: RekognitionAnalyzer) -> None:
    fake.fail_next("*", "ServiceUnavailable", times=100, status=503)

    with pytest.raises(AnalyzerError) as caught:
        analyzer.analyze(prepared(png()))

    assert caught.value.retryable is True


def test_a_permanent_failure_wins_over_a_retryable_one(fake: FakeRekognition, analyzer: RekognitionAnalyzer) -> None:
    fake.fail_next("DetectLabels", "ThrottlingException", times=100)
    fake.fail_next("DetectText", "InvalidParameterException")

    with pytest.raises(AnalyzerError) as caught:
        analyzer.analyze(prepared(png()))

    assert caught.value.retryable is False


def test_an_unreachable_endpoint_is_retryable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_fake_aws(monkeypatch, tmp_path, rekognition="http://127.0.0.1:9")  # nothing listens there

    with build(retries=0) as analyzer, pytest.raises(AnalyzerError) as caught:
        analyzer.analyze(prepared(png()))

    assert caught.value.retryable is True


def test_a_read_timeout_is_retryable(aws: None) -> None:
    with FakeRekognition(latency=1.0) as slow, build() as analyzer:
        analyzer.client = boto3.client(
            "rekognition", endpoint_url=slow.endpoint_url,
            config=botocore.config.Config(read_timeout=0.1, retries={"total_max_attempts": 1}),
        )
        with pytest.raises(AnalyzerError) as caught:
            analyzer.analyze(prepared(png()))

    assert caught.value.retryable is True


# -- building from settings ---------------------------------------------------------------------


def test_create_builds_a_paced_client_with_standard_retries_from_settings(fake: FakeRekognition, aws: None) -> None:
    settings = Settings(analyzer="rekognition", faces=True, store_min_confidence=60, rekognition_tps=123,
                        aws_max_attempts=4, concurrency=5)

    analyzer = create(settings)
    try:
        analysis = analyzer.analyze(prepared(png()))
    finally:
        analyzer.close()

    config: Any = analyzer.client.meta.config
    assert config.retries["mode"] == "standard"  # the pacing slows each API itself; adaptive would slow all
    assert config.retries["total_max_attempts"] == 5  # IMGBOT_AWS_MAX_ATTEMPTS retries after the first try
    assert config.max_pool_connections == 20
    assert analyzer.limiter is RateLimiter.shared("rekognition", 123)
    assert analyzer.images_per_second == 123
    assert isinstance(analyzer, Analyzer) and analyzer.name == "rekognition"
    assert analysis.faces_requested is True
    assert fake.requests[0].params.get("MinConfidence", 60) == 60
    assert fake.call_count() == 4


@pytest.mark.parametrize(("region", "tps"), [
    ("us-east-1", 50), ("us-west-2", 50), ("eu-west-1", 50), ("eu-central-1", 5), ("ap-southeast-2", 5),
])
def test_the_default_rate_is_the_regions_default_quota(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeRekognition, region: str, tps: float
) -> None:
    use_fake_aws(monkeypatch, tmp_path, rekognition=fake.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)

    with create(Settings(analyzer="rekognition")) as analyzer:
        assert analyzer.images_per_second == tps
    with create(Settings(analyzer="rekognition", rekognition_tps=7)) as analyzer:
        assert analyzer.images_per_second == 7  # an explicit IMGBOT_REKOGNITION_TPS wins


@pytest.mark.parametrize(("variables", "region"), [
    ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),  # what the AWS documentation and the other SDKs use
    ({"AWS_DEFAULT_REGION": "eu-central-1", "AWS_REGION": "eu-west-1"}, "eu-central-1"),  # botocore's own wins
])
def test_the_region_comes_from_aws_region_or_botocores_own_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variables: dict[str, str], region: str
) -> None:
    use_fake_aws(monkeypatch, tmp_path)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    assert make_client("rekognition", Settings()).meta.region_name == region
