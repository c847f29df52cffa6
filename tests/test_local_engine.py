"""The offline engine, through the same ``build_analyzer`` → ``analyze(PreparedImage)`` path the pipeline uses.

Fast tests cover the pure mappings (label map, moderation taxonomy, word splitting, the
factory); tests marked ``slow`` load the real models that ship in the ``local`` extra's
packages and run them on the bundled samples (no network needed).
"""

from __future__ import annotations

import io
import json
import threading
import unicodedata
from pathlib import Path

import pytest

from bot.analyzers import available_analyzers, build_analyzer
from bot.analyzers.local import LocalAnalyzer
from bot.analyzers.local.labels import LabelMap
from bot.analyzers.local.moderation import ModerationScores, taxonomy
from bot.analyzers.local.ocr import read_lines, split_words
from bot.config import Settings
from bot.core.intake import prepare_image
from bot.core.ports import Analyzer
from bot.core.types import Analysis, PreparedImage
from bot.errors import AnalyzerError
from bot.samples import sample_paths, samples

pytest.importorskip("onnxruntime", reason="the local extra is not installed: pip install 'imgbot[local]'")

SAMPLES = {s.path.name: s for s in samples()}


def prepared(path: Path) -> PreparedImage:
    return prepare_image(path.read_bytes(), max_bytes=50_000_000, max_pixels=50_000_000)


# --- fast: mappings and wiring ---------------------------------------------------------


class TestLabelMap:
    def test_a_cat_breed_maps_to_general_labels_with_parents(self) -> None:
        label_map = LabelMap.load()
        tabby = label_map.class_labels[label_map.class_names.index("tabby")]
        assert set(tabby) == {"Cat", "Mammal", "Pet", "Animal"}
        assert label_map.info("Cat").parents == ("Mammal", "Pet", "Animal")

    def test_every_parent_is_itself_a_label_of_the_same_classes(self) -> None:
        label_map = LabelMap.load()
        for labels in label_map.class_labels:
            for name in labels:
                assert set(label_map.info(name).parents) <= set(labels), name

    def test_dog_breeds_do_not_leak_raw_imagenet_names(self) -> None:
        label_map = LabelMap.load()
        everything = set(label_map.names)
        assert "Dog" in everything
        assert not {"Chihuahua", "Tabby", "Egyptian Cat", "Tench", "Loggerhead"} & everything

    def test_people_classes_count_as_person(self) -> None:
        label_map = LabelMap.load()
        diver = label_map.class_labels[label_map.class_names.index("scuba diver")]
        assert "Person" in diver


class TestModerationTaxonomy:
    def scores(self, **values: object) -> ModerationScores:
        base = dict(nsfw=0.0, female_swimwear=0.0, male_swimwear=0.0, alcohol=0.0, weapons=0.0, gambling=0.0)
        return ModerationScores(**{**base, **values})  # type: ignore[arg-type]

    def test_a_high_nsfw_score_is_level_one_explicit(self) -> None:
        labels = taxonomy(self.scores(nsfw=0.93), floor=50)
        assert [(m.name, m.taxonomy_level, m.parent_name) for m in labels] == [("Explicit", 1, None)]
        assert labels[0].confidence == pytest.approx(93.0)

    def test_swimwear_is_not_called_explicit(self) -> None:
        labels = {m.name: m for m in taxonomy(self.scores(nsfw=0.7, female_swimwear=0.85), floor=50)}
        assert "Explicit" not in labels
        assert labels["Swimwear or Underwear"].taxonomy_level == 1
        assert labels["Female Swimwear or Underwear"].parent_name == "Swimwear or Underwear"

    def test_parents_are_at_least_as_confident_as_children(self) -> None:
        labels = {m.name: m for m in taxonomy(self.scores(alcohol=0.8, weapons=0.6), floor=50)}
        assert labels["Alcohol"].confidence >= labels["Alcoholic Beverages"].confidence
        assert labels["Violence"].confidence >= labels["Weapons"].confidence

    def test_nudenet_regions_fill_levels_two_and_three(self) -> None:
        regions = (("FEMALE_BREAST_EXPOSED", 0.9), ("MALE_BREAST_EXPOSED", 0.7))
        labels = {(m.name, m.taxonomy_level, m.parent_name) for m in taxonomy(self.scores(regions=regions), floor=50)}
        assert labels == {
            ("Explicit", 1, None),
            ("Explicit Nudity", 2, "Explicit"),
            ("Exposed Female Nipple", 3, "Explicit Nudity"),
            ("Non-Explicit Nudity of Intimate parts and Kissing", 1, None),
            ("Non-Explicit Nudity", 2, "Non-Explicit Nudity of Intimate parts and Kissing"),
            ("Exposed Male Nipple", 3, "Non-Explicit Nudity"),
        }

    def test_nothing_below_the_floor_is_returned(self) -> None:
        assert taxonomy(self.scores(nsfw=0.2, alcohol=0.3), floor=50) == ()


class TestWords:
    def test_a_line_is_cut_into_words_along_its_slant(self) -> None:
        quad = [(0.0, 10.0), (100.0, 0.0), (100.0, 20.0), (0.0, 30.0)]
        words = split_words("SUMMER SALE", quad, (), 0.9)
        assert [w for w, _, _ in words] == ["SUMMER", "SALE"]
        first, second = words[0][2], words[1][2]
        assert first[0] == (0.0, 10.0)
        assert second[1] == (100.0, 0.0)
        assert first[1][0] < second[0][0]

    def test_lines_come_first_and_words_point_at_their_line(self) -> None:
        quad = [[10, 10], [90, 10], [90, 30], [10, 30]]
        found = read_lines([quad], ["50% OFF"], [0.97], [()], 100, 100).detections
        lines = [d for d in found if d.kind == "LINE"]
        words = [d for d in found if d.kind == "WORD"]
        assert [line.text for line in lines] == ["50% OFF"]
        assert [w.text for w in words] == ["50%", "OFF"]
        assert {w.parent_id for w in words} == {lines[0].id}
        assert lines[0].box.left == pytest.approx(0.1) and lines[0].box.width == pytest.approx(0.8)
        assert lines[0].confidence == pytest.approx(97.0)


class TestWiring:
    def test_local_is_a_registered_analyser(self) -> None:
        assert "local" in available_analyzers()

    def test_building_it_loads_no_model(self) -> None:
        analyzer = build_analyzer(Settings(analyzer="local"))
        assert isinstance(analyzer, LocalAnalyzer)
        assert isinstance(analyzer, Analyzer)
        assert analyzer.name == "local"
        assert analyzer.face_embedder is None  # faces are off by default

    def test_every_sample_listed_exists_with_a_licence_entry(self) -> None:
        licences = (Path(sample_paths()[0]).parent / "LICENSES.md").read_text()
        for path in sample_paths():
            assert path.exists()
            assert path.name in licences


# --- slow: the real models on the bundled samples ---------------------------------------


@pytest.fixture(scope="module")
def engine() -> LocalAnalyzer:
    analyzer = build_analyzer(Settings(analyzer="local", faces=True))
    assert isinstance(analyzer, LocalAnalyzer)
    return analyzer


@pytest.fixture(scope="module")
def results(engine: LocalAnalyzer) -> dict[str, Analysis]:
    return {path.name: engine.analyze(prepared(path)) for path in sample_paths()}


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


@pytest.mark.slow
class TestOnSamples:
    @pytest.mark.parametrize("name", [n for n, s in SAMPLES.items() if s.expect.get("labels")])
    def test_sample_has_its_expected_labels(self, results: dict[str, Analysis], name: str) -> None:
        names = {label.name for label in results[name].labels}
        assert set(SAMPLES[name].expect["labels"]) <= names, sorted(names)

    def test_the_cat_photo_is_an_animal(self, results: dict[str, Analysis]) -> None:
        labels = {label.name: label for label in results["cat-chelsea.jpg"].labels}
        assert labels["Animal"].confidence >= 75
        assert labels["Cat"].parents == ("Mammal", "Pet", "Animal")

    @pytest.mark.parametrize("name", [n for n, s in SAMPLES.items() if s.kind == "banner"])
    def test_a_banners_text_is_read(self, results: dict[str, Analysis], name: str) -> None:
        read = normalise(" ".join(line.text for line in results[name].lines))
        for expected in SAMPLES[name].expect["text"]:
            assert normalise(expected) in read

    def test_words_belong_to_lines(self, results: dict[str, Analysis]) -> None:
        analysis = results["banner-summer-sale.png"]
        line_ids = {line.id for line in analysis.lines}
        assert analysis.words and all(word.parent_id in line_ids for word in analysis.words)
        assert "SUMMER" in {word.text for word in analysis.words}

    @pytest.mark.parametrize("name", [n for n, s in SAMPLES.items() if s.neutral])
    def test_nothing_neutral_is_flagged(self, results: dict[str, Analysis], name: str) -> None:
        flagged = [m for m in results[name].moderation if m.confidence >= Settings().moderation_min_confidence]
        assert flagged == []
        assert results[name].raw["moderation_scores"]["open_nsfw"] < 0.2

    def test_parents_are_labels_too(self, results: dict[str, Analysis]) -> None:
        for analysis in results.values():
            names = {label.name for label in analysis.labels}
            for label in analysis.labels:
                assert set(label.parents) <= names, (label.name, label.parents)

    def test_faces_have_boxes_landmarks_and_embeddings(self, results: dict[str, Analysis]) -> None:
        analysis = results["astronaut.jpg"]
        assert analysis.faces_requested
        (face,) = analysis.faces
        assert 0 < face.box.width < 1 and 0 < face.box.height < 1
        assert {mark.type for mark in face.landmarks} == {"eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"}
        assert face.embedding is not None and len(face.embedding) == 128
        face_label = next(label for label in analysis.labels if label.name == "Face")
        assert face_label.instances and face_label.instances[0].box == face.box

    def test_the_same_face_matches_and_a_different_one_does_not(self, engine: LocalAnalyzer) -> None:
        from PIL import Image, ImageOps

        from bot.analyzers.local.faces import cosine

        path = SAMPLES["astronaut.jpg"].path
        mirrored = ImageOps.mirror(Image.open(path))
        data = io.BytesIO()
        mirrored.save(data, format="JPEG", quality=92)
        again = engine.analyze(prepare_image(data.getvalue(), max_bytes=50_000_000, max_pixels=50_000_000))
        original = engine.analyze(prepared(path))
        other = engine.analyze(prepared(SAMPLES["cameraman.jpg"].path))
        same = cosine(original.faces[0].embedding or (), again.faces[0].embedding or ())
        different = cosine(original.faces[0].embedding or (), other.faces[0].embedding or ())
        assert same > 0.6 > 0.363 > different

    def test_faces_are_not_returned_unless_asked_but_person_still_is(self) -> None:
        analyzer = build_analyzer(Settings(analyzer="local", faces=False))
        analysis = analyzer.analyze(prepared(SAMPLES["astronaut.jpg"].path))
        assert analysis.faces == () and analysis.faces_requested is False
        assert {"Person", "Face"} <= {label.name for label in analysis.labels}

    def test_results_are_provider_neutral_and_small(self, results: dict[str, Analysis]) -> None:
        analysis = results["banner-coffee-week.jpg"]
        assert analysis.provider == "local"
        assert set(analysis.model_versions) == {"labels", "text", "moderation", "faces"}
        assert all(0 <= label.confidence <= 100 for label in analysis.labels)
        assert len(json.dumps(analysis.raw)) < 4000

    def test_concurrent_calls_give_the_same_answer(self, engine: LocalAnalyzer) -> None:
        image = prepared(SAMPLES["banner-summer-sale.png"].path)
        answers: list[tuple[object, ...]] = []
        lock = threading.Lock()

        def run() -> None:
            analysis = engine.analyze(image)
            key = (
                tuple((lbl.name, round(lbl.confidence, 2)) for lbl in analysis.labels),
                tuple(t.text for t in analysis.text),
            )
            with lock:
                answers.append(key)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(answers) == 4 and len(set(answers)) == 1

    @pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "L", "CMYK"])
    def test_any_pillow_mode_is_read_with_transparency_shown_on_white(self, engine: LocalAnalyzer, mode: str) -> None:
        from PIL import Image

        from bot.samples.banners import render_banner

        logo = render_banner([("SUMMER SALE", 96)], size=(900, 300), color=(10, 10, 10), background=(0, 0, 0))
        alpha = logo.convert("L").point(lambda v: 255 if v > 5 else 0)  # text opaque, background transparent
        rgba = Image.new("RGBA", logo.size, (200, 30, 30, 0))
        rgba.paste((20, 20, 20, 255), mask=alpha)
        converted = rgba if mode == "RGBA" else rgba.convert(mode)
        data = io.BytesIO()
        converted.save(data, format="JPEG" if mode == "CMYK" else "PNG")
        analysis = engine.analyze(prepare_image(data.getvalue(), max_bytes=50_000_000, max_pixels=50_000_000))
        assert "SUMMERSALE" in "".join(line.text for line in analysis.lines).replace(" ", "")

    def test_undecodable_bytes_raise_a_readable_analyzer_error(self, engine: LocalAnalyzer) -> None:
        good = prepared(SAMPLES["cat-chelsea.jpg"].path)
        broken = PreparedImage(**{**good.__dict__, "analysis_bytes": b"\xff\xd8\xff not really a jpeg"})
        with pytest.raises(AnalyzerError) as caught:
            engine.analyze(broken)
        assert "could not read this image" in caught.value.user_message
