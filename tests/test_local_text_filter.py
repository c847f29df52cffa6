"""Text only where there is text: the offline engine keeps only the OCR lines that are plausible text.

Fast tests feed ``plausible.judge`` lines shaped like what RapidOCR returned on real cases
(the junk ones were all seen on the bundled photos, flipped, rotated, scaled or cropped);
tests marked ``slow`` run the real engine on the bundled photos, with and without text
drawn onto them.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from bot.analyzers.local import LocalAnalyzer
from bot.analyzers.local.ocr import read_lines
from bot.analyzers.local.plausible import CandidateLine, Point, judge, keep_plausible, weight
from bot.config import Settings
from bot.core.intake import prepare_image
from bot.core.types import Analysis
from bot.samples import samples
from bot.samples.banners import font

#: A Latin character is about half as wide as the box is thick (rendered banners: 0.27-0.85).
LETTER = 0.5


def line(
    text: str,
    score: float,
    *,
    at: Point = (0.0, 0.0),
    thickness: float = 40.0,
    length: float | None = None,
    chars: tuple[float, ...] = (),
    mirrored: tuple[str, float] | None = None,
) -> CandidateLine:
    """A horizontal line as RapidOCR reports it, its box as long as its text needs unless told."""
    x, y = at
    long = length if length is not None else thickness * LETTER * len(text) + thickness * 0.6
    quad = [(x, y), (x + long, y), (x + long, y + thickness), (x, y + thickness)]
    return CandidateLine(text, score, quad, chars, mirrored)


def stacked(*lines: tuple[str, float], thickness: float = 40.0) -> list[CandidateLine]:
    """Lines one under the other, as on a banner or a sign."""
    return [
        line(text, score, at=(0.0, i * thickness * 1.5), thickness=thickness) for i, (text, score) in enumerate(lines)
    ]


class TestJunkIsDropped:
    def test_a_lone_digit_is_dropped_however_confidently_it_is_read(self) -> None:
        assert keep_plausible([line("8", 0.995, thickness=400)]) == [False]

    def test_repeated_digits_count_as_one_and_are_dropped(self) -> None:
        assert weight("0000") == 1
        assert keep_plausible([line("0000", 0.99)]) == [False]

    def test_a_misread_mirrored_name_tag_is_dropped(self) -> None:
        (verdict,) = judge([line("R3990H OM0O", 0.97)])
        assert not verdict.kept
        assert "mixed" in verdict.doubts

    def test_a_name_tag_the_recogniser_reads_better_flipped_is_dropped(self) -> None:
        (verdict,) = judge([line("HETTO", 0.944, mirrored=("HELLO", 1.0))])
        assert not verdict.kept
        assert "mirrored" in verdict.doubts

    def test_a_word_that_reads_the_same_backwards_is_not_taken_for_a_mirror(self) -> None:
        assert keep_plausible([line("EXIT", 0.84, mirrored=("TIX3", 0.999))]) == [True]
        assert keep_plausible([line("BOB", 0.96, mirrored=("BOB", 1.0))]) == [True]

    def test_a_lone_cjk_glyph_is_dropped_on_a_photo_and_beside_latin_text(self) -> None:
        assert keep_plausible([line("寺", 0.99)]) == [False]
        beside = [line("SUMMER SALE", 0.99), line("寺", 0.98, at=(260.0, 0.0))]
        assert keep_plausible(beside) == [True, False]

    def test_a_short_line_needs_a_very_high_score(self) -> None:
        assert keep_plausible([line("CO", 0.91)]) == [False]
        assert keep_plausible([line("OK", 0.97)]) == [True]

    def test_a_line_by_itself_needs_the_confidence_the_text_label_asks_for(self) -> None:
        assert keep_plausible([line("UCO VIBUN", 0.66)]) == [False]
        assert keep_plausible([line("Corner Shop", 0.85)]) == [True]

    def test_a_box_far_longer_than_the_text_read_in_it_is_dropped(self) -> None:
        (verdict,) = judge([line("HOE", 0.88, length=180.0)])
        assert not verdict.kept
        assert "sparse" in verdict.doubts

    def test_a_guessed_character_counts_against_a_line_by_itself(self) -> None:
        guessed = line("Golee026", 0.86, chars=(0.9, 0.3, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9))
        assert keep_plausible([guessed]) == [False]
        assert keep_plausible([line("Golee026", 0.86)]) == [True]


class TestTextIsKept:
    def test_banner_lines_keep_rapidocrs_default_threshold(self) -> None:
        banner = stacked(("SUMMER SALE", 0.99), ("50% OFF", 0.97), ("Terms and conditions apply", 0.62))
        assert keep_plausible(banner) == [True, True, True]

    def test_a_number_beside_words_is_kept(self) -> None:
        sign = [line("50%", 0.97), line("OFF", 0.99, at=(100.0, 0.0))]
        assert keep_plausible(sign) == [True, True]

    def test_a_number_alone_needs_more_than_a_number_beside_words(self) -> None:
        assert keep_plausible([line("50%", 0.97)]) == [False]

    @pytest.mark.parametrize("text", ["SAVE20", "Use code SAVE20", "Call 555-1234", "www.example.com", "Gate B12"])
    def test_codes_phone_numbers_and_addresses_are_kept(self, text: str) -> None:
        assert keep_plausible([line(text, 0.98)]) == [True]

    def test_a_two_word_shop_sign_read_at_0_9_is_kept(self) -> None:
        assert keep_plausible([line("Corner Bakery", 0.9)]) == [True]

    def test_a_name_tag_read_at_0_95_is_kept(self) -> None:
        assert keep_plausible([line("ANNA", 0.95)]) == [True]

    def test_a_chinese_banner_is_kept(self) -> None:
        banner = stacked(("夏季大促销", 0.97), ("全场五折", 0.96), ("仅限本周末", 0.93))
        assert keep_plausible(banner) == [True, True, True]

    def test_a_japanese_banner_with_a_date_and_a_latin_word_is_kept(self) -> None:
        banner = stacked(("夏のセール", 0.98), ("3月15日まで", 0.95), ("SALE", 0.96))
        assert [v.doubts for v in judge(banner)][:2] == [(), ()]
        assert keep_plausible(banner) == [True, True, True]

    def test_a_long_confident_line_in_another_script_is_kept(self) -> None:
        assert keep_plausible(stacked(("SUMMER SALE", 0.99), ("夏季大促销", 0.96))) == [True, True]


class TestReadLines:
    @staticmethod
    def box(x: float, y: float, length: float, thickness: float) -> list[list[float]]:
        return [[x, y], [x + length, y], [x + length, y + thickness], [x, y + thickness]]

    def test_dropped_lines_become_neither_lines_nor_words_and_ids_stay_contiguous(self) -> None:
        boxes = [
            self.box(0, 0, 600, 400),
            self.box(50, 50, 240, 40),
            self.box(50, 300, 90, 16),
            self.box(50, 110, 300, 40),
        ]
        result = read_lines(
            boxes, ["8", "OPEN DAILY", "0000", "Mon-Fri 7am-6pm"], [0.99, 0.99, 0.85, 0.98], [()] * 4, 600, 400
        )
        lines = [d for d in result.detections if d.kind == "LINE"]
        words = [d for d in result.detections if d.kind == "WORD"]
        assert [d.text for d in lines] == ["OPEN DAILY", "Mon-Fri 7am-6pm"]
        assert [d.id for d in result.detections] == list(range(len(result.detections)))
        assert [d.id for d in lines] == [0, 1]
        assert [w.text for w in words] == ["OPEN", "DAILY", "Mon-Fri", "7am-6pm"]
        assert [w.parent_id for w in words] == [0, 0, 1, 1]
        assert result.dropped == 2

    def test_a_line_that_is_part_of_a_secret_is_kept_however_doubtful(self) -> None:
        """A random-looking key is the filter's favourite doubt; dropping one half would leave the
        other half, too short to be recognised, stored in clear."""
        boxes = [self.box(0, 0, 300, 40), self.box(0, 60, 300, 40), self.box(0, 120, 300, 40)]
        texts = ["aws_secret_access_key =", "wJalrXUtnFEMI/K7MDENG", "/bPxRfiCY3XAMPLEK3Y"]
        doubtful = judge([CandidateLine(t, s, [(0.0, 0.0), (9.0, 0.0), (9.0, 1.0), (0.0, 1.0)], ())
                          for t, s in zip(texts, [0.99, 0.97, 0.94], strict=True)])
        assert not all(v.kept for v in doubtful)  # without the rule, part of the key would go

        result = read_lines(boxes, texts, [0.99, 0.97, 0.94], [()] * 3, 600, 400)
        assert [d.text for d in result.lines] == texts and result.dropped == 0

    def test_a_failing_mirrored_re_read_leaves_the_first_verdicts(self) -> None:
        def read_flipped(quads: list[list[Point]]) -> list[tuple[str, float]]:
            raise RuntimeError("recogniser failed")

        boxes = [self.box(0, 0, 300, 40), self.box(0, 300, 200, 40)]
        result = read_lines(
            boxes, ["Corner Bakery", "HOFCEB"], [0.99, 0.9], [(), ()], 600, 400, read_flipped=read_flipped
        )
        assert [d.text for d in result.lines][0] == "Corner Bakery"

    def test_only_doubtful_lines_are_read_again_flipped(self) -> None:
        asked: list[int] = []

        def read_flipped(quads: list[list[Point]]) -> list[tuple[str, float]]:
            asked.append(len(quads))
            return [("HOLGER", 1.0)] * len(quads)

        boxes = [self.box(0, 0, 300, 40), self.box(0, 300, 200, 40)]
        result = read_lines(
            boxes, ["Corner Bakery", "HOFCEB"], [0.99, 0.9], [(), ()], 600, 400, read_flipped=read_flipped
        )
        assert [d.text for d in result.lines] == ["Corner Bakery"]
        assert asked == [1] and result.dropped == 1


# --- slow: the real engine on the bundled photos ------------------------------------------

PHOTOS = {s.path.name: s.path for s in samples() if s.kind == "photo"}


@pytest.fixture(scope="module")
def engine() -> LocalAnalyzer:
    pytest.importorskip("onnxruntime", reason="the local extra is not installed: pip install 'imgbot[local]'")
    return LocalAnalyzer(Settings(analyzer="local"))


def analyse(engine: LocalAnalyzer, image: Image.Image) -> Analysis:
    data = io.BytesIO()
    image.convert("RGB").save(data, format="JPEG", quality=90)
    return engine.analyze(prepare_image(data.getvalue(), max_bytes=50_000_000, max_pixels=50_000_000))


def photo(name: str) -> Image.Image:
    return Image.open(PHOTOS[name]).convert("RGB")


def with_card(name: str, text: str, px: int, at: tuple[float, float], *, mirrored: bool = False) -> Image.Image:
    """The photo with a white card of black text on it (Pillow's own font, so every machine draws the same)."""
    image = photo(name)
    face = font(None, px)
    left, top, right, bottom = ImageDraw.Draw(image).textbbox((0, 0), text, font=face)
    margin = px // 2
    card = Image.new("RGB", (int(right - left) + 2 * margin, int(bottom - top) + 2 * margin), "white")
    ImageDraw.Draw(card).text((margin - left, margin - top), text, font=face, fill="black")
    image.paste(ImageOps.mirror(card) if mirrored else card, (int(image.width * at[0]), int(image.height * at[1])))
    return image


def upscaled(name: str) -> Image.Image:
    image = photo(name)
    return image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)


def noisy(name: str) -> Image.Image:
    pixels = np.asarray(photo(name), dtype=np.float32)
    pixels += np.random.default_rng(1).normal(0, 20, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def texts(analysis: Analysis) -> list[str]:
    return [line.text for line in analysis.lines]


def has_text_label(analysis: Analysis) -> bool:
    return "Text" in {label.name for label in analysis.labels}


@pytest.mark.slow
class TestOnPhotos:
    @pytest.mark.parametrize("name", sorted(PHOTOS))
    def test_a_bundled_photo_without_text_gets_no_text(self, engine: LocalAnalyzer, name: str) -> None:
        analysis = analyse(engine, photo(name))
        assert texts(analysis) == [] and analysis.words == ()
        assert not has_text_label(analysis)

    @pytest.mark.parametrize(
        ("case", "make"),
        [
            ("cup mirrored, read as 8", lambda: ImageOps.mirror(photo("coffee.jpg"))),
            ("cup tilted, read as 8", lambda: photo("coffee.jpg").rotate(7, expand=True, fillcolor=(128, 128, 128))),
            ("cup on its side, read as CO", lambda: photo("coffee.jpg").rotate(270, expand=True)),
            ("camera mirrored, read as 0000", lambda: ImageOps.mirror(photo("cameraman.jpg"))),
            ("camera enlarged, read as G and 5000", lambda: upscaled("cameraman.jpg")),
            ("cat in sensor noise, read as O and 9", lambda: noisy("cat-chelsea.jpg")),
        ],
    )
    def test_shapes_once_read_as_text_give_none(
        self, engine: LocalAnalyzer, case: str, make: Callable[[], Image.Image]
    ) -> None:
        analysis = analyse(engine, make())
        assert texts(analysis) == [], case
        assert not has_text_label(analysis)

    def test_a_sign_on_the_cafe_photo_is_still_read(self, engine: LocalAnalyzer) -> None:
        analysis = analyse(engine, with_card("coffee.jpg", "OPEN DAILY", 32, at=(0.3, 0.4)))
        assert texts(analysis) == ["OPEN DAILY"]  # and not the cup's "8" beside it
        assert [w.text for w in analysis.words] == ["OPEN", "DAILY"]
        assert has_text_label(analysis)

    def test_a_small_name_tag_that_reads_is_still_read(self, engine: LocalAnalyzer) -> None:
        analysis = analyse(engine, with_card("cat-chelsea.jpg", "ANNA", 14, at=(0.1, 0.7)))
        assert texts(analysis) == ["ANNA"]
        assert has_text_label(analysis)

    @pytest.mark.parametrize(
        ("name", "tag", "px"),
        [  # once read as HOCEB WOOB at 0.76, HOFCEB at 0.92, HETTO at 0.95, CBECOB at 0.96
            ("coffee.jpg", "HOLGER MOOR", 28),
            ("cameraman.jpg", "HOLGER", 22),
            ("coffee.jpg", "HELLO", 22),
            ("cat-chelsea.jpg", "GREGOR", 28),
        ],
    )
    def test_a_mirrored_name_tag_gives_no_text(self, engine: LocalAnalyzer, name: str, tag: str, px: int) -> None:
        analysis = analyse(engine, with_card(name, tag, px, at=(0.2, 0.5), mirrored=True))
        assert texts(analysis) == []
        assert not has_text_label(analysis)


def test_the_photos_the_slow_tests_use_are_bundled() -> None:
    assert {"cat-chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg", "cameraman.jpg"} <= set(PHOTOS)
    assert all(Path(path).exists() for path in PHOTOS.values())
