"""What kind of made picture an image is: poster, advertisement, document, slide, screenshot, logo.

ImageNet has no class for a banner or a page, so the classifier alone gives a marketing
banner nothing but "Text". This module looks at what a designer leaves behind instead:
large perfectly flat areas in a handful of colours (photos have texture and noise
everywhere), straight full-width edges (app chrome), and the text layout OCR found (one
big headline over a few short lines is a poster; many small left-aligned lines on a
light page is a document). Words such as "SALE", "% OFF", "$19" or "shop now" turn a
poster into an advertisement.

It is pure and cheap (numpy on a copy at most ``WORK_SIDE`` pixels long, about a
millisecond or two), so it runs after the classifier and OCR, on their results:

    graphic_labels(decoded.fit(512), text.lines, photo_score(classification))

Names, parents and categories follow Amazon Rekognition's, so search and reports do not
care which engine labelled an image. Confidences are rough: a clear case scores 80-95,
an unclear one below 50, which the default store floor drops.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from bot.core.types import Label, TextDetection

if TYPE_CHECKING:
    from bot.analyzers.local.labels import Classification

__all__ = [
    "GraphicFeatures",
    "MADE_PICTURE_CLASSES",
    "features",
    "graphic_labels",
    "labels_from",
    "photo_score",
]

#: Pixel statistics are taken on a copy at most this long (nearest-neighbour, so flat colours stay exact).
WORK_SIDE = 192
#: Grey levels between the two tones of a panel's edge; JPEG blocks next to text shift the page by less.
RULE_STEP = 10
#: Colours of a flat area this close (levels a channel) are one colour: JPEG and scanner noise spread it.
SAME_COLOUR = 8
#: Labels below this confidence are not returned at all (the store floor, 50 by default, drops more).
MIN_CONFIDENCE = 40.0
#: OCR lines count only when read this confidently (0-100) with two letters or digits. PP-OCR now and
#: then reads fur or foliage as a short word in a huge box, so a line taller than ``TALL_LINE`` of the
#: image needs ``TALL_LINE_CHARACTERS`` letters or digits, and one taller than ``MAX_LINE_HEIGHT`` never counts.
MIN_LINE_CONFIDENCE = 70.0
MAX_LINE_HEIGHT = 0.9
TALL_LINE = 0.3
TALL_LINE_CHARACTERS = 4
#: ImageNet classes that are themselves made pictures; the classifier's belief in them is no photo evidence.
MADE_PICTURE_CLASSES = (
    "web site", "menu", "book jacket", "comic book", "crossword puzzle", "envelope", "binder", "packet",
    "carton", "digital clock", "scoreboard", "street sign", "jigsaw puzzle", "monitor", "screen",
    "television", "notebook", "laptop", "desktop computer",
)

TEXT_AND_DOCUMENTS = ("Text and Documents",)
#: name → (parents, categories), parents nearest first, as Rekognition lists them.
TAXONOMY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Text": ((), TEXT_AND_DOCUMENTS),
    "Poster": ((), TEXT_AND_DOCUMENTS),
    "Advertisement": (("Poster",), TEXT_AND_DOCUMENTS),
    "Document": (("Text",), TEXT_AND_DOCUMENTS),
    "Slide": (("Text",), TEXT_AND_DOCUMENTS),
    "Screenshot": ((), ("Technology and Computing",)),
    "Logo": (("Symbol",), ("Symbols and Flags",)),
    "Symbol": ((), ("Symbols and Flags",)),
    "Graphics": ((), ("Colors and Visual Composition",)),
}

#: What a marketing image says to sell: each strong match counts 0.5, each weak one 0.25 (1 is plenty).
_SELLING_STRONG = re.compile(
    r"\b(?:sale|discount|deals?|coupon|promo|clearance|bogo|buy|shop|orders?|book now|save\d*|"
    r"free shipping|use code|subscribe)\b|[$€£¥]\s?\d|\d(?:[.,]\d{2})?\s?[$€£¥]|\d\s?%|%\s?off\b",
    re.IGNORECASE,
)
_SELLING_WEAK = re.compile(
    r"\b(?:off|free|offers?|specials?|limited|code|book|tickets?|new|now|today|only|call|visit|register|"
    r"download|join|www\.\S+|\S+\.com)\b",
    re.IGNORECASE,
)
#: Kinds decided from the text layout, so they imply "Text".
TEXT_KINDS = frozenset({"Poster", "Advertisement", "Document", "Slide", "Screenshot"})
#: Screen and slide shapes (width / height): 16:9, 16:10, 4:3, 3:2, 21:9 and the phone shapes.
_SCREEN_ASPECTS = (16 / 9, 16 / 10, 4 / 3, 3 / 2, 21 / 9, 9 / 16, 10 / 16, 3 / 4, 9 / 19.5, 9 / 19, 9 / 20, 9 / 21)
_SLIDE_ASPECTS = (16 / 9, 16 / 10, 4 / 3)


@dataclass(frozen=True)
class GraphicFeatures:
    """What the labels are decided from; worth keeping in ``Analysis.raw`` to explain a label."""

    aspect: float  # width / height
    flat: float  # share of the pixels outside text that are flat (neighbours within 2 levels)
    texture: float  # share outside text with a small, non-flat gradient: photos are mostly this
    background: float  # share of the most common colour (6 bits a channel)
    palette: float  # share of the 8 most common colours
    flat_colours: int  # colours of flat areas covering 2 % of the image each (page, panels, bars; not ink)
    page: float  # share of near-white, unsaturated pixels
    saturation: float  # mean HSV saturation, 0-1
    rules: int  # straight step edges across at least a third of the image (window chrome, bands)
    content: float  # share of the non-text area that is not the background colour
    photo_area: float  # share of the image in cells that are mostly texture: a photo inside a flat frame
    centred: float  # 1 when that content sits in the middle of the image, 0 at an edge
    lines: int  # OCR lines that count (see MIN_LINE_CONFIDENCE)
    characters: int  # letters and digits in them
    coverage: float  # area of their boxes / image area
    largest: float  # tallest line's height / the image's shorter side (a tall poster's headline is big too)
    median: float  # median line height / image height
    aligned: float  # share of lines starting at one of the two most common left edges
    selling: float  # 0-1: prices, percentages and selling words in the text
    title_on_top: bool  # the tallest line is the first line and sits in the top third

    @property
    def made(self) -> float:
        """0-1: how much the pixels outside the text look drawn rather than photographed."""
        return _ramp(self.flat, 0.45, 0.8) * (1.0 - _ramp(self.texture, 0.2, 0.4))


def photo_score(classification: Classification) -> float:
    """0-1: the classifier's largest probability on a class that is a real thing, not a made picture.

    ImageNet has no "banner" class, so on a graphic its probabilities are low and spread, or sit
    on "web site", "menu", "book jacket"; a confident "tabby" or "espresso" is photo evidence."""
    made = {i for name in MADE_PICTURE_CLASSES for i in classification.class_index.get(name, ())}
    probabilities = classification.probabilities
    keep = np.ones(probabilities.shape[0], dtype=bool)
    keep[list(made)] = False
    return float(probabilities[keep].max()) if keep.any() else 0.0


def graphic_labels(
    image: Image.Image, lines: Sequence[TextDetection], photo_score: float = 0.0
) -> tuple[Label, ...]:
    """Labels for a made picture, most confident first; an empty tuple for a photo.

    ``image`` is the analysis copy in RGB (any size; ``Decoded.fit(512)`` is plenty), ``lines``
    the OCR LINE detections on it (words are ignored), ``photo_score`` the classifier's belief
    that this is a photo of a real thing (``photo_score(classification)``; 0 when unknown)."""
    return labels_from(features(image, lines), photo_score)


def labels_from(f: GraphicFeatures, photo: float = 0.0) -> tuple[Label, ...]:
    """The decision, apart from the pixel work so it can be read (and tested) on its own."""
    made = f.made
    # A confident real-object class counts against a graphic only when the pixels agree.
    doubt = 1.0 - 0.3 * _ramp(photo, 0.5, 0.9) * (1.0 - made)
    scores: dict[str, float] = {}

    small_text = 1.0 - _ramp(f.median, 0.035, 0.06)
    many_lines = _ramp(f.lines, 5, 12)

    # Window chrome: straight full-width edges, and flat bars and panels in several tones.
    chrome, panels = _ramp(f.rules, 1, 3), _ramp(f.flat_colours, 1, 3)
    ui = 0.65 * max(chrome, panels) + 0.35 * min(chrome, panels)
    document = (
        many_lines
        * small_text
        * _ramp(f.page, 0.45, 0.75)
        * _ramp(f.aligned, 0.5, 0.8)
        * _ramp(made, 0.4, 0.8)
        * (1.0 - ui)
        * (1.0 - _ramp(f.saturation, 0.15, 0.35))
        * (0.85 + 0.15 * _ramp(1.0 / max(f.aspect, 1e-3), 1.1, 1.3))  # pages are portrait
    )
    screenshot = (
        many_lines
        * small_text
        * _ramp(made, 0.4, 0.8)
        * ui
        * (0.8 + 0.2 * _near(f.aspect, _SCREEN_ASPECTS, 0.04))
    )
    body_lines = f.lines - 1
    slide = (
        _near(f.aspect, _SLIDE_ASPECTS, 0.03)
        * _ramp(body_lines, 1, 3)
        * (1.0 - _ramp(f.lines, 12, 18))
        * (1.0 if f.title_on_top else 0.5)
        # A slide's title is a tenth of the height at most and its bullets are smaller; a 16:9 banner shouts.
        * _ramp(f.largest, 0.045, 0.07)
        * (1.0 - _ramp(f.largest, 0.11, 0.16))
        * (1.0 - _ramp(f.median, 0.07, 0.1))
        * _ramp(f.aligned, 0.5, 0.75)
        * _ramp(made, 0.5, 0.85)
    )
    logo = (
        _ramp(made, 0.8, 0.95)
        * _ramp(f.palette, 0.9, 0.97)
        * (1.0 - _ramp(f.characters, 12, 20))
        * (1.0 - _ramp(f.lines, 2, 3))
        * _ramp(f.content, 0.04, 0.08)
        * (1.0 - _ramp(f.content, 0.5, 0.7))
        * f.centred
        * (1.0 - _ramp(f.rules, 4, 7))
        * (1.0 - _ramp(f.photo_area, 0.03, 0.1))
    )
    big_text = _ramp(f.largest, 0.05, 0.09) * _ramp(f.coverage, 0.03, 0.07) * _ramp(f.characters, 5, 10)
    poster = (
        big_text
        * (1.0 - _ramp(f.lines, 10, 16))
        # On a photo, only text that dominates the picture makes a poster.
        * max(_ramp(made, 0.3, 0.7), _ramp(f.coverage, 0.06, 0.12) * _ramp(f.largest, 0.08, 0.12))
        * (1.0 - max(document, screenshot, slide, logo))
    )
    advert = poster * _ramp(f.selling, 0.2, 0.6)
    graphics = (
        _ramp(made, 0.75, 0.95)
        * _ramp(f.palette, 0.8, 0.95)  # a product shot on white is flat too, but shaded
        * _ramp(f.content, 0.01, 0.03)  # a blank canvas is not a graphic
        * (1.0 - _ramp(f.coverage, 0.03, 0.08))
        * (1.0 - many_lines)
        * (1.0 - _ramp(f.photo_area, 0.03, 0.1))
    )

    scores["Document"] = document
    scores["Screenshot"] = screenshot
    scores["Slide"] = slide
    scores["Poster"] = poster
    scores["Advertisement"] = advert
    scores["Logo"] = 0.6 * logo  # a guess from shape and colour alone: never more than moderate
    scores["Graphics"] = 0.9 * graphics

    confidence = {name: _confidence(score * doubt) for name, score in scores.items()}
    # Parents are labels too, at least as confident as their children (as in Rekognition); and every
    # kind here but Logo and Graphics is decided from the text read, so it brings "Text" along.
    for name in list(confidence):
        for parent in TAXONOMY[name][0]:
            confidence[parent] = max(confidence.get(parent, 0.0), confidence[name])
        if f.lines and name in TEXT_KINDS:
            confidence["Text"] = max(confidence.get("Text", 0.0), confidence[name])
    labels = [
        Label(name, round(conf, 1), parents=TAXONOMY[name][0], categories=TAXONOMY[name][1])
        for name, conf in confidence.items()
        if conf >= MIN_CONFIDENCE
    ]
    labels.sort(key=lambda label: (-label.confidence, label.name))
    return tuple(labels)


def features(image: Image.Image, lines: Sequence[TextDetection]) -> GraphicFeatures:
    """Colour, flatness, edge and text-layout statistics of one image."""
    small = image.convert("RGB")
    if max(small.size) > WORK_SIDE:
        scale = WORK_SIDE / max(small.size)
        size = (max(1, round(small.width * scale)), max(1, round(small.height * scale)))
        small = small.resize(size, Image.Resampling.NEAREST)
    rgb = np.asarray(small, dtype=np.int16)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    height, width = red.shape
    layout = _layout(_counted(lines), image.width / max(1, image.height))

    text_mask = np.zeros((height, width), dtype=bool)
    for line in layout.counted:
        box = line.box
        x0, y0 = int(box.left * width) - 1, int(box.top * height) - 1
        x1, y1 = int(np.ceil((box.left + box.width) * width)) + 1, int(np.ceil((box.top + box.height) * height)) + 1
        text_mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    outside = ~text_mask
    n_outside = max(1, int(np.count_nonzero(outside)))

    # Flatness and texture from the largest channel difference to the right and below.
    gradient = np.zeros((height, width), dtype=np.int16)
    for channel in (red, green, blue):
        np.maximum(gradient[:, :-1], np.abs(np.diff(channel, axis=1)), out=gradient[:, :-1])
        np.maximum(gradient[:-1, :], np.abs(np.diff(channel, axis=0)), out=gradient[:-1, :])
    flat = np.count_nonzero((gradient <= 2) & outside) / n_outside
    textured = (gradient > 2) & (gradient < 40) & outside
    texture = np.count_nonzero(textured) / n_outside

    six = (rgb >> 2).astype(np.int32)  # 6 bits a channel: greys of a photo still spread over 64 levels
    code = (six[..., 0] << 12) | (six[..., 1] << 6) | six[..., 2]
    counts = np.bincount(code.ravel(), minlength=1 << 18)
    top = -np.sort(-counts[counts > 0])
    n = float(code.size)
    background_code = int(counts.argmax())

    high = np.maximum(np.maximum(red, green), blue)
    low = np.minimum(np.minimum(red, green), blue)
    page = np.count_nonzero((low >= 225) & (high - low <= 20)) / n
    saturation = float(((high - low) / np.maximum(high, 1)).mean())

    content_mask = (code != background_code) & outside
    content = np.count_nonzero(content_mask) / n_outside

    return GraphicFeatures(
        aspect=image.width / max(1, image.height),
        flat=float(flat),
        texture=float(texture),
        background=float(top[0]) / n,
        palette=float(top[:8].sum()) / n,
        flat_colours=_flat_colours(np.bincount(code[(gradient <= 2) & outside], minlength=1 << 18), n),
        page=float(page),
        saturation=saturation,
        rules=_rules((red + green + blue) / 3.0),
        content=float(content),
        photo_area=_photo_area(textured),
        centred=_centredness(content_mask),
        lines=layout.lines,
        characters=layout.characters,
        coverage=layout.coverage,
        largest=layout.largest,
        median=layout.median,
        aligned=layout.aligned,
        selling=layout.selling,
        title_on_top=layout.title_on_top,
    )


def _counted(lines: Sequence[TextDetection]) -> list[TextDetection]:
    return [
        line
        for line in lines
        if line.kind == "LINE"
        and line.confidence >= MIN_LINE_CONFIDENCE
        and line.box.height <= MAX_LINE_HEIGHT
        and _characters(line.text) >= (TALL_LINE_CHARACTERS if line.box.height > TALL_LINE else 2)
    ]


def _characters(text: str) -> int:
    return sum(c.isalnum() for c in text)


@dataclass(frozen=True)
class _Layout:
    counted: tuple[TextDetection, ...] = ()
    lines: int = 0
    characters: int = 0
    coverage: float = 0.0
    largest: float = 0.0
    median: float = 0.0
    aligned: float = 0.0
    selling: float = 0.0
    title_on_top: bool = False


def _layout(lines: list[TextDetection], aspect: float) -> _Layout:
    if not lines:
        return _Layout()
    heights = np.array([line.box.height for line in lines])
    coverage = float(sum(min(1.0, line.box.width) * line.box.height for line in lines))
    lefts = np.round(np.array([line.box.left for line in lines]) / 0.02).astype(int)
    values, counts = np.unique(lefts, return_counts=True)
    common = values[np.argsort(-counts)[:2]]
    aligned = float((np.abs(lefts[:, None] - common[None, :]) <= 1).any(axis=1).mean())
    text = " ".join(line.text for line in lines)
    strong = len(_SELLING_STRONG.findall(text))
    weak = len(_SELLING_WEAK.findall(_SELLING_STRONG.sub(" ", text)))
    selling = min(1.0, 0.5 * strong + 0.25 * weak)
    first = min(lines, key=lambda line: line.box.top)
    tallest = max(lines, key=lambda line: line.box.height)
    return _Layout(
        counted=tuple(lines),
        lines=len(lines),
        characters=_characters(text),
        coverage=min(1.0, coverage),
        largest=float(heights.max()) / min(1.0, aspect),  # of the shorter side
        median=float(np.median(heights)),
        aligned=aligned,
        selling=selling,
        title_on_top=first is tallest and first.box.top < 0.33 and len(lines) > 1,
    )


def _rules(gray: np.ndarray) -> int:
    """Straight edges between two flat tones (bars, panels, bands) across a third of the image or more.

    The tone on one side must be at least two pixels thick and flat, so letters and textures do not
    count, and a ruled table counts less than a panel: a page with a table is still a page."""

    def count(g: np.ndarray) -> int:
        if g.shape[0] < 5:
            return 0
        near = np.abs(np.diff(g, axis=0))  # rows y and y+1
        step = np.abs(g[2:] - g[:-2])  # rows y and y+2: a resized edge is often blurred over a pixel
        # A step next to a flat tone; one side is enough, as text often runs close to a panel's edge.
        edges = (step[1:-1] >= RULE_STEP) & ((near[:-3] <= 2) | (near[3:] <= 2))
        rows = _longest_runs(edges) >= max(3, g.shape[1] / 3)
        return int((np.diff(rows.astype(np.int8), prepend=0) == 1).sum())

    return count(gray) + count(gray.T)


def _longest_runs(mask: np.ndarray) -> np.ndarray:
    """Length of the longest run of True in each row."""
    if mask.size == 0:
        return np.zeros(mask.shape[0])
    index = np.arange(1, mask.shape[1] + 1)
    last_false = np.maximum.accumulate(np.where(mask, 0, index), axis=1)
    return (index - last_false).max(axis=1)  # type: ignore[no-any-return]


def _flat_colours(counts: np.ndarray, n: float, share: float = 0.02) -> int:
    """Distinct colours covering ``share`` of the image each, a colour's near neighbours counted as it."""
    used = np.flatnonzero(counts)  # sorting only the colours present keeps this well under a millisecond
    order = used[np.argsort(-counts[used])[:16]]
    levels = np.stack(((order >> 12) & 63, (order >> 6) & 63, order & 63), axis=1) * 4
    centres: list[np.ndarray] = []
    totals: list[float] = []
    for level, count in zip(levels, counts[order], strict=True):
        home = next((i for i, c in enumerate(centres) if np.abs(c - level).max() <= SAME_COLOUR), None)
        if home is None:
            centres.append(level)
            totals.append(float(count))
        else:
            totals[home] += float(count)
    return sum(total >= share * n for total in totals)


def _photo_area(textured: np.ndarray, cell: int = 12) -> float:
    """Share of ``cell``-pixel squares that are at least 40 % texture: photo pixels, wherever they are."""
    rows, cols = textured.shape[0] // cell, textured.shape[1] // cell
    if rows == 0 or cols == 0:
        return float(textured.mean()) if textured.size else 0.0
    cells = textured[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell).mean(axis=(1, 3))
    return float((cells >= 0.4).mean())


def _centredness(mask: np.ndarray) -> float:
    """1 when the mask's bounding box is centred in the image, falling to 0 at a quarter off centre."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0.0
    cy = (rows[0] + rows[-1] + 1) / 2 / mask.shape[0]
    cx = (cols[0] + cols[-1] + 1) / 2 / mask.shape[1]
    off = max(abs(cx - 0.5), abs(cy - 0.5))
    return 1.0 - _ramp(off, 0.1, 0.25)


def _ramp(value: float, low: float, high: float) -> float:
    """0 at or below ``low``, 1 at or above ``high``, linear between."""
    return float(min(1.0, max(0.0, (value - low) / (high - low))))


def _near(aspect: float, targets: Sequence[float], tolerance: float) -> float:
    """1 when the aspect ratio is within ``tolerance`` (relative) of a target, 0 beyond twice that."""
    off = min(abs(aspect / t - 1.0) for t in targets)
    return 1.0 - _ramp(off, tolerance, 2 * tolerance)


def _confidence(score: float) -> float:
    """A 0-1 score as a Rekognition-like confidence: a clear case lands between 80 and 95."""
    return 0.0 if score <= 0.0 else min(95.0, 35.0 + 60.0 * score)
