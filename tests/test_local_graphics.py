"""What kind of made picture an image is (``bot/analyzers/local/graphics.py``).

The fast tests render banners, pages, app windows, slides and logos with Pillow and hand the
function the text lines where they were drawn, so they need no model. The tests marked
``slow`` read the same kinds of image, and the bundled samples, with the engine's real OCR
and classifier, as the pipeline will.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from bot.analyzers.local.graphics import features, graphic_labels, labels_from
from bot.core.types import BoundingBox, Label, TextDetection
from bot.samples import samples
from bot.samples.banners import font, fonts, render_banner

Color = tuple[int, int, int]

FONTS = fonts()
BOLD = FONTS[0]
REGULAR = next((f for f in FONTS if f and f.endswith("DejaVuSans.ttf")), BOLD)
SERIF = next((f for f in FONTS if f and f.endswith("DejaVuSerif.ttf")), REGULAR)
PHOTOS = [s.path for s in samples() if s.kind == "photo"]
BANNERS = [s.path for s in samples() if s.kind == "banner"]
GRAPHIC_KINDS = {"Poster", "Advertisement", "Document", "Slide", "Screenshot", "Logo", "Symbol", "Graphics"}
WORDS = (
    "the of report quarterly revenue growth team market customer product review data plan budget analysis "
    "results meeting project design update status section figure table summary notes region support"
).split()


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


class Canvas:
    """A Pillow canvas that remembers where each line of text went, as OCR would report it."""

    def __init__(self, size: tuple[int, int] | Image.Image, background: Color = (255, 255, 255)) -> None:
        self.image = size.convert("RGB") if isinstance(size, Image.Image) else Image.new("RGB", size, background)
        self.draw = ImageDraw.Draw(self.image)
        self.lines: list[TextDetection] = []

    def text(self, xy: tuple[float, float], text: str, px: int, fill: Color, font_path: str | None = REGULAR) -> None:
        face = font(font_path, px)
        self.draw.text(xy, text, font=face, fill=fill)
        left, top, right, bottom = self.draw.textbbox(xy, text, font=face)
        width, height = self.image.size
        box = BoundingBox(left / width, top / height, (right - left) / width, (bottom - top) / height)
        self.lines.append(TextDetection(len(self.lines), "LINE", text, 99.0, box))

    def rect(self, box: tuple[float, float, float, float], fill: Color) -> None:
        self.draw.rectangle(box, fill=fill)


def ink_lines(image: Image.Image, texts: Sequence[str], ink: Color) -> list[TextDetection]:
    """Lines of a flat-background banner found from its ink: each band of inked rows is one line."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    inked = np.abs(pixels - np.array(ink)).sum(axis=2) < 90
    rows = inked.any(axis=1)
    starts = np.flatnonzero(np.diff(rows.astype(np.int8), prepend=0) == 1)
    ends = np.flatnonzero(np.diff(rows.astype(np.int8), append=0) == -1) + 1
    assert len(starts) == len(texts), "one band of ink per line"
    height, width = rows.size, image.width
    lines = []
    for i, (top, bottom, text) in enumerate(zip(starts, ends, texts, strict=True)):
        cols = np.flatnonzero(inked[top:bottom].any(axis=0))
        box = BoundingBox(cols[0] / width, top / height, (cols[-1] + 1 - cols[0]) / width, (bottom - top) / height)
        lines.append(TextDetection(i, "LINE", text, 99.0, box))
    return lines


def names(labels: Sequence[Label], floor: float = 50.0) -> set[str]:
    """What the store keeps: labels at or above its floor (50 by default)."""
    return {label.name for label in labels if label.confidence >= floor}


def confidence(labels: Sequence[Label], name: str) -> float:
    return next((label.confidence for label in labels if label.name == name), 0.0)


# --- images of each kind ------------------------------------------------------------------


def sale_banner() -> tuple[Image.Image, list[TextDetection]]:
    texts = [("SUMMER SALE", 120), ("50% OFF", 96), ("this weekend only", 44)]
    image = render_banner(texts, background=(230, 57, 70), font_path=BOLD)
    return image, ink_lines(image, [t for t, _ in texts], (255, 255, 255))


def event_poster() -> tuple[Image.Image, list[TextDetection]]:
    texts = [("JAZZ NIGHT", 130), ("Live at the park", 60), ("Friday 8 pm", 50)]
    image = render_banner(texts, size=(1000, 1400), background=(20, 20, 20), color=(255, 214, 10), font_path=BOLD,
                          align="center")
    return image, ink_lines(image, [t for t, _ in texts], (255, 214, 10))


def document_page(seed: int = 1, lines: int = 25) -> Canvas:
    rng = random.Random(seed)
    page = Canvas((850, 1100))
    page.text((85, 80), "Quarterly report", 26, (0, 0, 0), SERIF)
    for i in range(lines):
        page.text((85, 140 + i * 34), sentence(rng, rng.randint(5, 9)), 16, (20, 20, 20), SERIF)
    return page


def app_screenshot(seed: int = 2, dark: bool = False) -> Canvas:
    rng = random.Random(seed)
    background, panel, bar, ink = (
        ((32, 33, 36), (45, 46, 50), (60, 64, 67), (230, 230, 230))
        if dark
        else ((250, 250, 250), (236, 238, 241), (222, 225, 230), (33, 33, 33))
    )
    accent = (26, 115, 232)
    shot = Canvas((1440, 900), background)
    shot.rect((0, 0, 1440, 36), bar)
    shot.text((660, 10), "Project Tracker", 14, ink)
    shot.rect((0, 36, 288, 900), panel)
    for i, item in enumerate(["Dashboard", "Projects", "Issues", "Reports", "Team", "Settings"]):
        if i == 1:
            shot.rect((0, 60 + i * 36, 288, 90 + i * 36), accent)
        shot.text((24, 66 + i * 36), item, 14, (255, 255, 255) if i == 1 else ink)
    shot.text((312, 52), "Open issues", 20, ink, BOLD)
    for i, label in enumerate(["New issue", "Filter", "Export"]):
        x = 1440 - 140 * (3 - i) - 20
        shot.draw.rounded_rectangle((x, 48, x + 120, 80), 6, fill=accent if i == 0 else panel)
        shot.text((x + 16, 56), label, 14, (255, 255, 255) if i == 0 else ink)
    for y in range(110, 860, 36):
        shot.text((312, y), f"#{rng.randint(100, 999)}", 14, (120, 120, 120))
        shot.text((378, y), sentence(rng, rng.randint(3, 7)), 14, ink)
        shot.draw.line((300, y + 26, 1424, y + 26), fill=panel, width=1)
    return shot


def slide() -> Canvas:
    rng = random.Random(3)
    deck = Canvas((1920, 1080))
    deck.rect((0, 0, 1920, 200), (29, 53, 87))
    deck.text((100, 60), "Roadmap for 2026", 80, (255, 255, 255))
    for i in range(4):
        y = 300 + i * 130
        deck.draw.ellipse((110, y + 18, 130, y + 38), fill=(29, 53, 87))
        deck.text((160, y), sentence(rng, rng.randint(3, 6)), 48, (30, 30, 30))
    return deck


def logo(text: str = "ACME") -> Canvas:
    mark = Canvas((600, 600))
    mark.draw.ellipse((150, 102, 450, 402), fill=(220, 40, 60))
    mark.draw.ellipse((225, 177, 375, 327), fill=(255, 255, 255))
    if text:
        mark.text((230, 440), text, 60, (220, 40, 60), BOLD)
    return mark


def photo(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


def photo_banner(name: str, texts: list[str]) -> Canvas:
    """Two lines of white text on a blurred bundled photo, 1200 x 628."""
    background = photo(next(p for p in PHOTOS if p.name == name)).filter(ImageFilter.GaussianBlur(3))
    banner = Canvas(background.resize((1200, 628)))
    banner.text((120, 200), texts[0], 110, (255, 255, 255), BOLD)
    banner.text((120, 350), texts[1], 56, (255, 255, 255), BOLD)
    return banner


# --- fast: rendered images with their lines ------------------------------------------------


class TestKinds:
    def test_a_sale_banner_is_a_poster_and_an_advertisement_with_text(self) -> None:
        labels = graphic_labels(*sale_banner())
        assert {"Poster", "Advertisement", "Text"} <= names(labels)
        assert confidence(labels, "Advertisement") >= 80
        assert not names(labels) & {"Document", "Screenshot", "Slide", "Logo"}

    def test_a_poster_that_sells_nothing_is_a_poster_but_not_an_advertisement(self) -> None:
        labels = graphic_labels(*event_poster())
        assert "Poster" in names(labels)
        assert "Advertisement" not in names(labels)

    def test_a_white_page_of_small_left_aligned_lines_is_a_document_and_no_advertisement(self) -> None:
        page = document_page()
        labels = graphic_labels(page.image, page.lines)
        assert {"Document", "Text"} <= names(labels)
        assert confidence(labels, "Document") >= 80
        assert not names(labels) & {"Advertisement", "Poster", "Screenshot", "Slide"}

    @pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
    def test_an_app_window_with_bars_panels_and_small_text_is_a_screenshot_not_a_page(self, dark: bool) -> None:
        shot = app_screenshot(dark=dark)
        labels = graphic_labels(shot.image, shot.lines)
        assert "Screenshot" in names(labels)
        assert confidence(labels, "Screenshot") >= 75
        assert not names(labels) & {"Document", "Poster", "Advertisement"}

    def test_a_wide_slide_with_a_title_and_four_bullets_is_a_slide(self) -> None:
        deck = slide()
        labels = graphic_labels(deck.image, deck.lines)
        assert {"Slide", "Text"} <= names(labels)
        assert not names(labels) & {"Document", "Screenshot", "Advertisement"}

    @pytest.mark.parametrize("text", ["ACME", ""], ids=["with-name", "mark-only"])
    def test_a_flat_two_colour_mark_on_a_plain_background_is_a_moderately_sure_logo(self, text: str) -> None:
        mark = logo(text)
        labels = graphic_labels(mark.image, mark.lines)
        assert {"Logo", "Symbol"} <= names(labels)
        assert 55 <= confidence(labels, "Logo") <= 80
        assert not names(labels) & {"Poster", "Advertisement", "Document"}

    def test_a_bar_chart_is_graphics_at_most(self) -> None:
        chart = Canvas((1200, 800))
        chart.draw.line((100, 80, 100, 700), fill=(60, 60, 60), width=3)
        chart.draw.line((100, 700, 1140, 700), fill=(60, 60, 60), width=3)
        for i, height in enumerate((300, 420, 250, 510, 380, 460)):
            chart.rect((160 + i * 160, 700 - height, 260 + i * 160, 700), (66, 133, 244))
            chart.text((180 + i * 160, 715), f"Q{i + 1}", 28, (60, 60, 60))
        assert names(graphic_labels(chart.image, chart.lines)) <= {"Graphics"}


class TestPhotos:
    @pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
    def test_a_bundled_photo_gets_no_graphic_label_at_all(self, path: Path) -> None:
        assert graphic_labels(photo(path), [], photo_score=0.0) == ()

    @pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
    def test_a_photo_with_a_shop_sign_is_not_a_poster(self, path: Path) -> None:
        canvas = Canvas(photo(path))
        width, height = canvas.image.size
        canvas.rect((int(width * 0.55) - 8, int(height * 0.1) - 6, int(width * 0.9), int(height * 0.19)), (30, 30, 30))
        canvas.text((width * 0.55, height * 0.1), "OPEN 24H", int(height * 0.06), (255, 230, 80), BOLD)
        assert graphic_labels(canvas.image, canvas.lines) == ()

    def test_a_photo_framed_on_white_is_not_a_logo_or_a_graphic(self) -> None:
        frame = Image.new("RGB", (1000, 1000), (255, 255, 255))
        cat = photo(next(p for p in PHOTOS if p.name == "cat-chelsea.jpg"))
        cat.thumbnail((600, 600))
        frame.paste(cat, (200, 300))
        assert graphic_labels(frame, []) == ()

    def test_big_words_over_a_blurred_photo_still_make_a_poster(self) -> None:
        banner = photo_banner("cat-chelsea.jpg", ["NEW ARRIVALS", "Shop the collection"])
        assert {"Poster", "Advertisement"} <= names(graphic_labels(banner.image, banner.lines, photo_score=0.4))


class TestConfidences:
    def test_a_blank_canvas_is_not_a_graphic(self) -> None:
        assert graphic_labels(Image.new("RGB", (800, 600), (240, 240, 240)), []) == ()

    def test_parents_come_along_at_least_as_sure_as_their_children(self) -> None:
        for labels in (graphic_labels(*sale_banner()), graphic_labels(logo().image, logo().lines)):
            by_name = {label.name: label for label in labels}
            for label in labels:
                for parent in label.parents:
                    assert by_name[parent].confidence >= label.confidence

    def test_text_over_a_photo_that_does_not_dominate_it_stays_under_the_store_floor(self) -> None:
        page = features(*sale_banner())
        # Photo pixels, a line 9 % of the height covering 7 % of the picture: neither clearly a poster nor not.
        unsure = replace(page, flat=0.2, texture=0.7, photo_area=0.9, coverage=0.07, largest=0.09, median=0.09,
                         lines=1, characters=12)
        assert "Poster" not in names(labels_from(unsure))

    def test_a_confident_photo_class_only_lowers_a_graphic(self) -> None:
        banner = photo_banner("coffee.jpg", ["COFFEE WEEK", "Buy one, get one free"])
        unsure = confidence(graphic_labels(banner.image, banner.lines, photo_score=0.95), "Poster")
        sure = confidence(graphic_labels(banner.image, banner.lines, photo_score=0.0), "Poster")
        assert 50 <= unsure <= sure

    def test_ocr_noise_in_a_huge_box_does_not_count_as_a_line(self) -> None:
        noise = TextDetection(0, "LINE", "do", 97.0, BoundingBox(0.1, 0.2, 0.8, 0.6))
        unsure = TextDetection(1, "LINE", "Grand opening", 40.0, BoundingBox(0.1, 0.1, 0.5, 0.1))
        word = TextDetection(2, "WORD", "Grand", 99.0, BoundingBox(0.1, 0.1, 0.2, 0.1), parent_id=1)
        cat = photo(next(p for p in PHOTOS if p.name == "cat-chelsea.jpg"))
        assert features(cat, [noise, unsure, word]).lines == 0


# --- slow: the engine's own OCR and classifier ---------------------------------------------


Read = Callable[[bytes], tuple[Label, ...]]


@pytest.fixture(scope="module")
def read() -> Read:
    """Labels for image bytes as the engine would give them: intake, decode, OCR, classifier, graphics."""
    pytest.importorskip("onnxruntime", reason="the local extra is not installed: pip install 'imgbot[local]'")
    from bot.analyzers.local.graphics import photo_score
    from bot.analyzers.local.labels import ImageNetLabeler
    from bot.analyzers.local.models import Decoded, shared
    from bot.analyzers.local.ocr import TextReader
    from bot.core.intake import prepare_image

    reader, labeler = shared(TextReader), shared(ImageNetLabeler)

    def run(data: bytes) -> tuple[Label, ...]:
        prepared = prepare_image(data, max_bytes=50_000_000, max_pixels=50_000_000)
        decoded = Decoded.from_bytes(prepared.analysis_bytes)
        lines = reader.predict(decoded).lines
        return graphic_labels(decoded.fit(512), lines, photo_score(labeler.predict(decoded)))

    return run


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow
class TestWithTheRealEngine:
    @pytest.mark.parametrize("path", BANNERS, ids=lambda p: p.name)
    def test_a_bundled_banner_is_a_poster_and_an_advertisement(self, read: Read, path: Path) -> None:
        assert {"Poster", "Advertisement", "Text"} <= names(read(path.read_bytes()))

    @pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
    def test_a_bundled_photo_gets_no_graphic_label(self, read: Read, path: Path) -> None:
        assert not {label.name for label in read(path.read_bytes())} & GRAPHIC_KINDS

    @pytest.mark.parametrize(
        ("make", "kind"),
        [
            (lambda: sale_banner()[0], "Advertisement"),
            (lambda: event_poster()[0], "Poster"),
            (lambda: document_page().image, "Document"),
            (lambda: app_screenshot().image, "Screenshot"),
            (lambda: app_screenshot(dark=True).image, "Screenshot"),
            (lambda: slide().image, "Slide"),
            (lambda: logo().image, "Logo"),
        ],
        ids=["sale-banner", "event-poster", "document", "screenshot", "dark-screenshot", "slide", "logo"],
    )
    def test_a_rendered_image_read_by_the_real_ocr_gets_its_kind(
        self, read: Read, make: Callable[[], Image.Image], kind: str
    ) -> None:
        labels = read(png(make()))
        assert kind in names(labels)
        others = {"Advertisement", "Document", "Screenshot", "Slide", "Logo"} - {kind}
        assert not names(labels) & others
