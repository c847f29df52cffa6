"""The annotated copy: boxes drawn where the analysis found things, on the upright image."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from PIL import Image

from bot.core.annotate import annotate, has_findings
from bot.core.records import ImageRecord
from bot.core.types import BoundingBox, Label, LabelInstance, TextDetection
from tests.images import make_image

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(*, labels: tuple[Label, ...] = (), text: tuple[TextDetection, ...] = ()) -> ImageRecord:
    return ImageRecord(id=1, sha256="a" * 64, status="done", byte_size=1, format="JPEG", width=1, height=1,
                       storage_key=None, storage_uri=None, created_at=NOW, labels=labels, text=text)


def test_label_and_text_boxes_are_drawn_on_a_copy_of_the_same_size() -> None:
    original = make_image("JPEG", size=(400, 300), colour=(250, 250, 250))
    found = record(labels=(Label("Dog", 95.0, instances=(LabelInstance(BoundingBox(0.1, 0.2, 0.5, 0.5), 95.0),)),),
                   text=(TextDetection(0, "LINE", "SALE", 99.0, BoundingBox(0.6, 0.8, 0.3, 0.1)),))

    annotated = annotate(original, found)

    with Image.open(io.BytesIO(annotated.data)) as image:
        assert image.format == "JPEG" and image.size == (400, 300)
        pixels = image.convert("RGB")
        assert pixels.getpixel((40, 200)) != (250, 250, 250)  # the left edge of the dog's box
        assert pixels.getpixel((240, 271)) != (250, 250, 250)  # the text line's box
        inside = pixels.getpixel((120, 150))  # inside the box: untouched
        assert max(abs(a - b) for a, b in zip(inside, (250, 250, 250), strict=True)) < 12


def test_boxes_are_placed_on_the_exif_oriented_image() -> None:
    sideways = make_image("JPEG", size=(300, 200), exif_orientation=6)  # shown rotated: 200 wide, 300 high
    found = record(text=(TextDetection(0, "LINE", "x", 99.0, BoundingBox(0.0, 0.0, 1.0, 0.5)),))
    with Image.open(io.BytesIO(annotate(sideways, found).data)) as image:
        assert image.size == (200, 300)


def test_png_stays_png_and_large_images_are_scaled_down() -> None:
    found = record(text=(TextDetection(0, "LINE", "x", 99.0, BoundingBox(0.1, 0.1, 0.2, 0.2)),))
    annotated = annotate(make_image("PNG", size=(3000, 1000)), found)
    assert annotated.format == "PNG" and annotated.extension == "png" and max(annotated.width, annotated.height) == 2048


def test_the_top_labels_are_written_along_the_bottom() -> None:
    original = make_image("PNG", size=(400, 300), colour=(250, 250, 250))
    annotated = annotate(original, record(labels=(Label("Sky", 99.0), Label("Cloud", 80.0))), min_confidence=75)
    with Image.open(io.BytesIO(annotated.data)) as image:
        assert image.convert("RGB").getpixel((399, 299)) == (0, 0, 0)  # the caption strip
        assert image.convert("RGB").getpixel((200, 100)) == (250, 250, 250)


def test_nothing_to_draw_is_known_in_advance() -> None:
    assert not has_findings(record(labels=(Label("Blurry", 40.0),)), min_confidence=75)
    assert has_findings(record(labels=(Label("Sky", 99.0),)), min_confidence=75)
    assert has_findings(record(text=(TextDetection(0, "LINE", "x", 99.0, BoundingBox(0, 0, 1, 1)),)))


def test_a_findings_boxes_are_blurred_past_reading_and_the_rest_is_left_sharp() -> None:
    from dataclasses import replace

    from PIL import ImageDraw, ImageStat

    from bot.core.types import Finding

    original = Image.new("RGB", (400, 200), (255, 255, 255))
    draw = ImageDraw.Draw(original)
    for x in range(0, 400, 4):  # fine black-and-white stripes: as sharp as small text
        draw.line((x, 0, x, 200), fill=(0, 0, 0), width=2)
    buffer = io.BytesIO()
    original.save(buffer, "PNG")
    secret_box = BoundingBox(0.1, 0.1, 0.4, 0.2)
    shown = replace(record(text=(TextDetection(0, "LINE", "AKIA…MPLE", 99.0, secret_box),)),
                    sensitive=(Finding("secret", "aws-access-key", "AKIA…MPLE", ((0, 0, 0),), (secret_box,)),))

    copy = Image.open(io.BytesIO(annotate(buffer.getvalue(), shown).data)).convert("L")

    inside = ImageStat.Stat(copy.crop((60, 35, 190, 55))).stddev[0]
    outside = ImageStat.Stat(copy.crop((260, 120, 390, 190))).stddev[0]
    assert inside < 10 < outside
