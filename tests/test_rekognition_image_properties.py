"""DetectLabels' IMAGE_PROPERTIES (IMGBOT_REKOGNITION_IMAGE_PROPERTIES): real boto3 against the fake Rekognition."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from PIL import Image, ImageDraw

from bot.analyzers.rekognition import (
    LABEL_FEATURES_WITH_PROPERTIES,
    RekognitionAnalyzer,
    create,
    properties_from,
)
from bot.aws import make_client
from bot.config import Settings
from bot.core.types import StoredObject
from bot.core.visual import image_properties
from bot.errors import AnalyzerError
from bot.ratelimit import RateLimiter
from tests.fakes.rekognition import FakeRekognition
from tests.test_rekognition_analyzer import _instant_retries, aws, fake, prepared  # noqa: F401  (fixtures)


def png(left: tuple[int, int, int] = (220, 30, 30), right: tuple[int, int, int] | None = None,
        size: tuple[int, int] = (200, 120)) -> bytes:
    """A PNG in ``left``, its right half in ``right`` when given."""
    image = Image.new("RGB", size, left)
    if right is not None:
        ImageDraw.Draw(image).rectangle((size[0] // 2, 0, size[0] - 1, size[1] - 1), fill=right)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def build(*, image_properties: bool) -> RekognitionAnalyzer:
    client = make_client("rekognition", Settings(aws_max_attempts=2), retry_mode="standard")
    return RekognitionAnalyzer(client, faces=False, image_properties=image_properties, limiter=RateLimiter(10_000))


@pytest.fixture
def client(aws: None) -> Any:
    return make_client("rekognition", Settings(aws_max_attempts=0), retry_mode="standard")


def labels_request(fake: FakeRekognition) -> dict[str, Any]:
    [call] = [call for call in fake.requests if call.operation == "DetectLabels"]
    return call.params


# -- the analyser ---------------------------------------------------------------------------------


def test_off_by_default_the_request_has_no_features_and_there_are_no_properties(
    fake: FakeRekognition, aws: None
) -> None:
    assert Settings().rekognition_image_properties is False
    with create(Settings(analyzer="rekognition")) as analyzer:
        assert analyzer.image_properties is False
        analysis = analyzer.analyze(prepared(png()))

    params = labels_request(fake)
    assert set(params) == {"Image", "MinConfidence"}
    assert analysis.properties is None
    assert "ImageProperties" not in analysis.raw["DetectLabels"]
    assert [label.name for label in analysis.labels] == ["Red"]


def test_on_detect_labels_asks_for_image_properties_and_they_are_mapped(fake: FakeRekognition, aws: None) -> None:
    data = png((220, 30, 30), (30, 60, 210))
    settings = Settings(analyzer="rekognition", rekognition_image_properties=True, store_min_confidence=60)
    with create(settings) as analyzer:
        assert analyzer.image_properties is True
        analysis = analyzer.analyze(prepared(data))

    params = labels_request(fake)
    assert params["Features"] == ["GENERAL_LABELS", "IMAGE_PROPERTIES"] == LABEL_FEATURES_WITH_PROPERTIES
    assert params["MinConfidence"] == 60
    assert "Settings" not in params  # Rekognition's default: 10 dominant colours
    for other in ("DetectText", "DetectModerationLabels"):
        [call] = [call for call in fake.requests if call.operation == other]
        assert "Features" not in call.params

    properties = analysis.properties
    assert properties is not None
    assert properties.source == "rekognition"
    # The fake computes them with bot.core.visual: the analyser got exactly those, through the JSON.
    assert properties == replace(image_properties(Image.open(io.BytesIO(data))), source="rekognition")
    assert sorted((c.simplified_color, round(c.pixel_percent)) for c in properties.dominant_colors) == [
        ("blue", 50), ("red", 50)]
    for colour in properties.dominant_colors:
        assert colour.hex_code == f"#{colour.red:02x}{colour.green:02x}{colour.blue:02x}"
    # Labels still come back, and the raw response keeps the whole block (foreground and background too).
    assert analysis.labels
    raw = analysis.raw["DetectLabels"]["ImageProperties"]
    assert set(raw) == {"Quality", "DominantColors", "Foreground", "Background"}
    assert set(raw["Foreground"]["Quality"]) == {"Brightness", "Sharpness"}


def test_rekognition_colours_keep_their_order_and_are_normalised(fake: FakeRekognition, aws: None) -> None:
    data = png()
    fake.script(data, image_properties={
        "Quality": {"Brightness": 59.91, "Sharpness": 81.02, "Contrast": 80.38},
        "DominantColors": [
            {"Red": 47, "Green": 79, "Blue": 79, "HexCode": "#2F4F4F", "CSSColor": "DarkSlateGrey",
             "SimplifiedColor": "Gray", "PixelPercent": 25.4},
            {"Red": 0, "Green": 0, "Blue": 0, "HexCode": "000000", "CSSColor": "black",
             "SimplifiedColor": "black", "PixelPercent": 22.3},
            {"Red": 173, "Green": 216, "Blue": 230, "CSSColor": "lightblue", "SimplifiedColor": "Light Blue",
             "PixelPercent": 40.0},  # no HexCode: made from the RGB values; bigger, but stays third
        ],
        "Foreground": {"Quality": {"Brightness": 44.6, "Sharpness": 81.9}, "DominantColors": []},
        "Background": {"Quality": {"Brightness": 63.7, "Sharpness": 80.8}, "DominantColors": []},
    })
    with build(image_properties=True) as analyzer:
        analysis = analyzer.analyze(prepared(data))

    properties = analysis.properties
    assert properties is not None
    assert (properties.brightness, properties.sharpness, properties.contrast) == (59.91, 81.02, 80.38)
    assert [(c.hex_code, c.css_color, c.simplified_color, c.pixel_percent) for c in properties.dominant_colors] == [
        ("#2f4f4f", "darkslategrey", "grey", 25.4),
        ("#000000", "black", "black", 22.3),
        ("#add8e6", "lightblue", "light blue", 40.0),
    ]
    assert analysis.raw["DetectLabels"]["ImageProperties"]["DominantColors"][0]["HexCode"] == "#2F4F4F"


def test_an_s3_image_the_fake_cannot_read_still_gets_properties(fake: FakeRekognition, aws: None) -> None:
    data = png()
    stored = StoredObject(uri="s3://bucket/prefix/a.png", key="a.png", bucket="bucket")
    with build(image_properties=True) as analyzer:
        analysis = analyzer.analyze(prepared(data, stored=stored))

    assert "S3Object" in labels_request(fake)["Image"]
    assert analysis.properties is not None
    assert [c.simplified_color for c in analysis.properties.dominant_colors] == ["grey"]


def test_an_invalid_features_value_is_a_permanent_error(fake: FakeRekognition, aws: None) -> None:
    with build(image_properties=True) as analyzer:
        analyzer_calls = analyzer.requests(prepared(png()))
        analyzer_calls["DetectLabels"]["Features"] = ["GENERAL_LABELS", "COLOURS"]
        with pytest.raises(AnalyzerError) as caught:
            analyzer.call("DetectLabels", analyzer_calls["DetectLabels"])
    assert caught.value.retryable is False
    assert "InvalidParameter" in str(caught.value)


def test_properties_from_a_response_without_them_is_none() -> None:
    assert properties_from({"Labels": [], "LabelModelVersion": "3.0"}) is None
    mapped = properties_from({"ImageProperties": {"Quality": {"Brightness": 10.0}}})
    assert mapped is not None
    assert (mapped.brightness, mapped.sharpness, mapped.contrast, mapped.dominant_colors) == (10.0, 0.0, 0.0, ())


# -- the fake honours Features like the real API ------------------------------------------------


def test_fake_without_features_answers_as_before(fake: FakeRekognition, client: Any) -> None:
    response = client.detect_labels(Image={"Bytes": png()})
    assert "ImageProperties" not in response
    assert [label["Name"] for label in response["Labels"]] == ["Red"]


def test_fake_image_properties_only_returns_no_labels(fake: FakeRekognition, client: Any) -> None:
    response = client.detect_labels(Image={"Bytes": png((255, 165, 0))}, Features=["IMAGE_PROPERTIES"])
    assert response["Labels"] == []
    [colour] = response["ImageProperties"]["DominantColors"]
    assert colour == {"Red": 255, "Green": 165, "Blue": 0, "HexCode": "#ffa500", "CSSColor": "orange",
                      "SimplifiedColor": "orange", "PixelPercent": 100.0}
    quality = response["ImageProperties"]["Quality"]
    assert quality["Contrast"] == 0.0 and quality["Sharpness"] == 0.0


def test_fake_general_labels_only_returns_no_image_properties(fake: FakeRekognition, client: Any) -> None:
    response = client.detect_labels(Image={"Bytes": png()}, Features=["GENERAL_LABELS"])
    assert "ImageProperties" not in response
    assert response["Labels"]


def test_fake_foreground_is_the_middle_and_background_the_rest(fake: FakeRekognition, client: Any) -> None:
    image = Image.new("RGB", (200, 200), (255, 255, 255))
    ImageDraw.Draw(image).rectangle((50, 50, 149, 149), fill=(0, 0, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    block = client.detect_labels(Image={"Bytes": out.getvalue()}, Features=["IMAGE_PROPERTIES"])["ImageProperties"]
    assert [c["SimplifiedColor"] for c in block["Foreground"]["DominantColors"]] == ["blue"]
    assert [c["SimplifiedColor"] for c in block["Background"]["DominantColors"]] == ["white"]
    assert {c["SimplifiedColor"] for c in block["DominantColors"]} == {"white", "blue"}


def test_fake_honours_max_dominant_colors(fake: FakeRekognition, client: Any) -> None:
    data = png((220, 30, 30), (30, 60, 210))
    response = client.detect_labels(Image={"Bytes": data}, Features=["IMAGE_PROPERTIES"],
                                    Settings={"ImageProperties": {"MaxDominantColors": 1}})
    assert len(response["ImageProperties"]["DominantColors"]) == 1


@pytest.mark.parametrize("kwargs", [
    {"Features": ["GENERAL_LABELS", "COLOURS"]},
    {"Features": ["GENERAL_LABELS", "IMAGE_PROPERTIES", "GENERAL_LABELS"]},
    {"Features": ["IMAGE_PROPERTIES"], "Settings": {"ImageProperties": {"MaxDominantColors": 21}}},
])
def test_fake_refuses_invalid_parameters(fake: FakeRekognition, client: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as caught:
        client.detect_labels(Image={"Bytes": png()}, **kwargs)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    [call] = fake.requests
    assert (call.status, call.error) == (400, "InvalidParameterException")
