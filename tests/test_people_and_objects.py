"""People and objects with boxes: the offline engine's YOLOX-Nano detector, the people count kept per
image, ``people>3`` / ``people:0`` in the query language, and people in reports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.analyzers.local import LocalAnalyzer
from bot.analyzers.local.objects import COCO_CLASSES, INPUT_SIDE, ObjectDetector, decode, detection_confidence
from bot.config import Settings
from bot.core.intake import prepare_image
from bot.core.report import render_report
from bot.core.search import PeopleFilter, parse_query
from bot.core.types import Analysis
from bot.errors import QuerySyntaxError
from bot.wiring import Core
from tests.fakes.analyzer import FakeAnalyzer
from tests.test_looks import found, ingest

SAMPLES = Path(__file__).parent.parent / "bot" / "samples"


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def engine() -> LocalAnalyzer:
    return LocalAnalyzer(Settings(analyzer="local"))


def analyse(engine: LocalAnalyzer, data: bytes) -> Analysis:
    return engine.analyze(prepare_image(data, max_bytes=50_000_000, max_pixels=50_000_000))


# -- decoding --------------------------------------------------------------------------------


def raw_row(cell: int, cls: int, objectness: float, probability: float, offset: tuple[float, float] = (0.5, 0.5),
            log_size: tuple[float, float] = (1.0, 1.0)) -> tuple[int, np.ndarray]:
    row = np.zeros(85, dtype=np.float32)
    row[:2], row[2:4], row[4], row[5 + cls] = offset, log_size, objectness, probability
    return cell, row


def test_rows_decode_to_boxes_on_the_grid_with_overlaps_of_one_class_merged() -> None:
    grid = ObjectDetector().grid
    rows = np.zeros((len(grid[0]), 85), dtype=np.float32)
    side = INPUT_SIDE // 8
    for cell, row in (raw_row(10 * side + 10, 0, 0.9, 0.95),  # a person centred at (84, 84), 8·e ≈ 21.7 px wide
                      raw_row(10 * side + 11, 0, 0.8, 0.9),  # the same person seen by the next cell: merged
                      raw_row(10 * side + 11, 41, 0.9, 0.9),  # a cup there: another class, kept
                      raw_row(30 * side + 30, 2, 0.2, 0.9)):  # a car below the threshold: dropped
        rows[cell] = row
    objects = decode(rows, grid, INPUT_SIDE, INPUT_SIDE)
    assert [o.name for o in objects] == ["Person", "Cup"]
    person = objects[0]
    assert person.score == pytest.approx(0.855, abs=1e-3)
    assert person.box.left == pytest.approx((84 - 8 * np.e / 2) / INPUT_SIDE, abs=1e-3)
    assert person.box.width == pytest.approx(8 * np.e / INPUT_SIDE, abs=1e-3)


def test_the_eighty_coco_classes_each_have_a_label_and_confidences_rise_with_the_score() -> None:
    assert len(COCO_CLASSES) == 80 and len({name for name, _, _ in COCO_CLASSES}) == 80
    assert 50 < detection_confidence(0.3) < 60 < detection_confidence(0.6) < detection_confidence(0.9) < 100


# -- the engine ------------------------------------------------------------------------------


def test_people_get_a_person_label_with_a_box_each(engine: LocalAnalyzer) -> None:
    person = Image.open(SAMPLES / "cameraman.jpg").convert("RGB").resize((256, 256))
    group = Image.new("RGB", (1200, 500), (200, 210, 190))
    for i in range(4):
        group.paste(person, (20 + i * 290, 120))
    analysis = analyse(engine, jpeg(group))

    labels = {label.name: label for label in analysis.labels}
    assert len(labels["Person"].instances) == 4 and analysis.people == 4
    lefts = sorted(instance.box.left for instance in labels["Person"].instances)
    assert all(abs(left - (20 + i * 290) / 1200) < 0.05 for i, left in enumerate(lefts))


def test_objects_become_labels_with_boxes_and_their_parents_are_labels_too(engine: LocalAnalyzer) -> None:
    analysis = analyse(engine, (SAMPLES / "coffee.jpg").read_bytes())
    labels = {label.name: label for label in analysis.labels}
    cup = labels["Cup"]
    assert cup.instances and cup.confidence > 80 and "Tableware" in cup.parents and "Tableware" in labels
    assert 0.2 < cup.instances[0].box.left + cup.instances[0].box.width / 2 < 0.8
    assert analysis.people == 0 and "Person" not in labels
    assert "yolox-nano" in analysis.model_versions["labels"]
    assert analysis.raw["objects"][0][0] == "Cup"


def test_a_photo_without_people_or_known_objects_has_no_boxes(engine: LocalAnalyzer) -> None:
    analysis = analyse(engine, (SAMPLES / "banner-summer-sale.png").read_bytes())
    assert all(not label.instances for label in analysis.labels) and analysis.people == 0


# -- the query language ----------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ("people>3", PeopleFilter(4)), ("people>=2", PeopleFilter(2)), ("people:0", PeopleFilter(0, 0)),
    ("people:2", PeopleFilter(2, 2)), ("people<3", PeopleFilter(0, 2)), ("people<=1", PeopleFilter(0, 1)),
])
def test_people_terms_parse_to_an_inclusive_range(query: str, expected: PeopleFilter) -> None:
    assert parse_query(query).where == expected


@pytest.mark.parametrize("query", ["people:many", "people<0", "people>", "people:"])
def test_a_malformed_people_term_says_how_to_write_it(query: str) -> None:
    with pytest.raises(QuerySyntaxError, match="people"):
        parse_query(query)


def test_people_terms_find_images_by_head_count_within_the_callers_channels(
        core: Core, fake_analyzer: FakeAnalyzer) -> None:
    images = {}
    for count in (0, 1, 4, 6):
        data = jpeg(Image.new("RGB", (640, 480), (10 * count, 90, 120)))
        fake_analyzer.script(data, labels=[("Outdoors", 90.0)], people=count)
        images[count] = ingest(core, data, f"crowd-{count}.jpg")
    hidden = jpeg(Image.new("RGB", (640, 480), (250, 1, 1)))
    fake_analyzer.script(hidden, people=5)
    secret = ingest(core, hidden, "hidden.jpg", channel="C0PRIVATE1")

    assert found(core, "people>3") == {images[4], images[6], secret}
    assert found(core, "people>3", channels=["C0PUBLIC01"]) == {images[4], images[6]}
    assert found(core, "people:0") == {images[0]}
    assert found(core, "people:1 outdoors") == {images[1]}
    assert found(core, "people<=4 -people:0") == {images[1], images[4]}
    assert found(core, "people:0 OR people>5") == {images[0], images[6]}
    assert core.show(images[4]).people == 4 and core.show(images[4]).to_json()["people"] == 4


def test_reports_count_people(core: Core, fake_analyzer: FakeAnalyzer) -> None:
    for count in (0, 2, 3):
        data = jpeg(Image.new("RGB", (640, 480), (30 * count, 200, 10)))
        fake_analyzer.script(data, labels=[("Outdoors", 90.0)], people=count)
        ingest(core, data, f"team-{count}.jpg")

    data = core.report("people>0 OR people:0", title="Team photos")
    assert data.counts.with_people == 2 and data.counts.people == 5
    assert "- With people: 2 (5 people in all)" in render_report(data, "md")
    assert json.loads(render_report(data, "json"))["totals"]["people"] == 5

    narrow = core.report("", full_records=False)  # what Markdown and CSV reports load: labels without boxes
    rows = render_report(narrow, "csv").splitlines()
    people = rows[0].split(",").index("people")
    assert sorted(row.split(",")[people] for row in rows[1:]) == ["0", "2", "3"]

    in_channels = core.report("", channels=["C0PUBLIC01"], full_records=False)  # /imgreport's kept counts
    assert in_channels.counts.people is None  # not counted there, so not claimed over every match
    assert "- With people: 2 of the 3 listed analysed images (5 people)" in render_report(in_channels, "md")


def test_migration_0010_counts_the_people_of_images_analysed_before_it(empty_database) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from db.migrate import upgrade
    from tests.old_rows import insert_analysed_image

    upgrade(empty_database.engine, "0009")
    box = {"box": {"Left": 0.1, "Top": 0.1, "Width": 0.2, "Height": 0.5}, "confidence": 90.0}
    with empty_database.engine.begin() as connection:
        for image_id in (1, 2, 3, 4):
            insert_analysed_image(connection, image_id, label_count=1)
        for image_id, name, instances in ((1, "Person", [box] * 3), (2, "Person", []), (3, "Cat", [box]),
                                          (4, "Person", []), (4, "Face", [box] * 2)):
            connection.execute(text(
                "INSERT INTO labels (image_id, name, confidence, parents, aliases, categories, instances) "
                "VALUES (:id, :name, 90, '[]', '[]', '[]', :instances)"),
                {"id": image_id, "name": name, "instances": json.dumps(instances)})

    upgrade(empty_database.engine)

    with empty_database.engine.connect() as connection:
        counts = {row[0]: row[1] for row in connection.execute(text("SELECT id, person_count FROM images"))}
    assert counts == {1: 3, 2: 1, 3: 0, 4: 2}  # 4: the offline engine boxed only faces before


def test_a_face_with_no_body_around_it_counts_only_when_the_detector_is_sure(engine: LocalAnalyzer) -> None:
    from bot.analyzers.local.faces import DetectedFace, FaceResult
    from bot.analyzers.local.labels import Classification
    from bot.analyzers.local.objects import DetectedObject, ObjectResult
    from bot.analyzers.local.ocr import TextResult
    from bot.core.types import BoundingBox

    engine.labeler.load()
    nothing = Classification(np.zeros(1000, dtype=np.float32), {}, {}, (), {})
    face_box = BoundingBox(0.4, 0.2, 0.1, 0.1)

    def labels(face_confidence: float, body: bool) -> dict[str, int]:
        face = DetectedFace(face_box, face_confidence, (), np.zeros(15))
        bodies = (DetectedObject("Person", BoundingBox(0.3, 0.1, 0.3, 0.8), 0.8),) if body else ()
        found = engine._labels(nothing, ObjectResult(bodies), FaceResult((face,), 1024), TextResult(()), (), 50.0)
        return {label.name: len(label.instances) for label in found}

    assert labels(80.0, body=False) == {}  # a pattern that looks like a face: nothing
    assert labels(95.0, body=False) == {"Person": 1, "Face": 1, "Head": 0}  # a close-up portrait
    assert labels(80.0, body=True) == {"Person": 1, "Face": 1, "Head": 0}  # the body box holds the face


def test_people_are_only_ever_counted_from_boxes_and_object_parents_keep_their_own_parents(
        engine: LocalAnalyzer) -> None:
    from bot.analyzers.local.faces import FaceResult
    from bot.analyzers.local.labels import Classification
    from bot.analyzers.local.objects import DetectedObject, ObjectResult
    from bot.analyzers.local.ocr import TextResult
    from bot.core.types import BoundingBox

    engine.labeler.load()
    groom = Classification(np.zeros(1000, dtype=np.float32), {"Person": 0.9}, {"Person": 90.0}, (), {})
    cat = ObjectResult((DetectedObject("Cat", BoundingBox(0.1, 0.1, 0.5, 0.5), 0.9),))
    found = {label.name: label for label in
             engine._labels(groom, cat, FaceResult((), 1024), TextResult(()), (), 50.0)}

    assert "Person" not in found  # a classifier's "groom" with no box is no one to count
    assert found["Cat"].parents[:3] == ("Mammal", "Pet", "Animal")
    assert "Pet" not in found["Mammal"].parents  # Cat's list of parents is not a chain
