"""Colours and quality computed from the pixels (bot/core/visual.py), on synthetic images and the samples."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from bot.core.types import ImageProperties
from bot.core.visual import (
    BLURRY_BELOW,
    DARK_BELOW,
    MAX_COLORS,
    SIMPLIFIED_COLORS,
    SMALL_BELOW_PX,
    color_matches,
    css_color_name,
    image_properties,
    normalize_simplified,
    quality_flags,
    rgb_to_lab,
    simplified_color_name,
)

SAMPLES = Path(__file__).resolve().parent.parent / "bot" / "samples"
PHOTOS = sorted(SAMPLES.glob("*.jpg"))


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> Image.Image:
    return Image.new("RGB", size, colour)


def split(left: tuple[int, int, int], right: tuple[int, int, int], share: float,
          size: tuple[int, int] = (400, 200)) -> Image.Image:
    """``left`` over the first ``share`` of the width, ``right`` over the rest."""
    image = solid(right, size)
    ImageDraw.Draw(image).rectangle((0, 0, round(size[0] * share) - 1, size[1] - 1), fill=left)
    return image


def photo_like(size: int = 512) -> Image.Image:
    """Noise over a checkerboard: edges and texture everywhere, like a detailed photo."""
    rng = np.random.default_rng(7)
    board = (np.indices((size, size)).sum(axis=0) // 16 % 2 * 120 + 60).astype(np.int16)
    noisy = board[..., None] + rng.integers(-40, 41, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def darken(image: Image.Image, factor: float = 0.25) -> Image.Image:
    return Image.eval(image, lambda value: int(value * factor))


def hex_rgb(code: str) -> tuple[int, int, int]:
    return int(code[1:3], 16), int(code[3:5], 16), int(code[5:7], 16)


# -- colour names -------------------------------------------------------------------------------


def test_lab_conversion_matches_reference_values() -> None:
    assert rgb_to_lab((255, 255, 255)) == pytest.approx([100.0, 0.0, 0.0], abs=0.01)
    assert rgb_to_lab((0, 0, 0)) == pytest.approx([0.0, 0.0, 0.0], abs=0.01)
    assert rgb_to_lab((128, 128, 128)) == pytest.approx([53.585, 0.0, 0.0], abs=0.01)
    assert rgb_to_lab((255, 0, 0)) == pytest.approx([53.24, 80.09, 67.20], abs=0.05)
    assert rgb_to_lab((0, 0, 255)) == pytest.approx([32.30, 79.19, -107.86], abs=0.05)


@pytest.mark.parametrize(("code", "simplified"), [
    ("#808080", "grey"), ("#000000", "black"), ("#ffffff", "white"), ("#008080", "teal"),
    ("#ffa500", "orange"), ("#8b4513", "brown"), ("#ff0000", "red"), ("#0000ff", "blue"),
    ("#000080", "blue"), ("#add8e6", "light blue"), ("#87ceeb", "light blue"), ("#00ff00", "green"),
    ("#556b2f", "green"), ("#ffff00", "yellow"), ("#ffd700", "yellow"), ("#800080", "purple"),
    ("#8a2be2", "purple"), ("#ffc0cb", "pink"), ("#ff69b4", "pink"), ("#d3d3d3", "grey"),
    ("#2f4f4f", "grey"), ("#f5f5f5", "white"), ("#1a1a1a", "black"), ("#d2b48c", "brown"),
])
def test_simplified_colour_names(code: str, simplified: str) -> None:
    assert simplified_color_name(hex_rgb(code)) == simplified


@pytest.mark.parametrize(("rgb", "css"), [
    ((128, 128, 128), "gray"), ((0, 128, 128), "teal"), ((255, 165, 0), "orange"),
    ((139, 69, 19), "saddlebrown"), ((255, 250, 250), "snow"), ((250, 250, 250), "white"), ((2, 3, 1), "black"),
    ((30, 144, 250), "dodgerblue"), ((47, 79, 80), "darkslategray"),
])
def test_nearest_css_colour_by_delta_e(rgb: tuple[int, int, int], css: str) -> None:
    assert css_color_name(rgb) == css


def test_every_simplified_name_is_reachable() -> None:
    rng = np.random.default_rng(3)
    seen = {simplified_color_name((int(r), int(g), int(b))) for r, g, b in rng.integers(0, 256, (4000, 3))}
    assert seen == set(SIMPLIFIED_COLORS)


# -- dominant colours ---------------------------------------------------------------------------


def test_a_solid_picture_is_one_colour() -> None:
    properties = image_properties(solid((0, 128, 128)))
    [colour] = properties.dominant_colors
    assert (colour.red, colour.green, colour.blue, colour.hex_code) == (0, 128, 128, "#008080")
    assert (colour.css_color, colour.simplified_color) == ("teal", "teal")
    assert colour.pixel_percent == pytest.approx(100.0)
    assert properties.source == "pixels"


@pytest.mark.parametrize("share", [0.5, 0.3, 0.8])
def test_two_colour_halves_have_their_shares(share: float) -> None:
    properties = image_properties(split((220, 20, 20), (20, 40, 200), share))
    assert len(properties.dominant_colors) == 2
    by_name = {colour.simplified_color: colour for colour in properties.dominant_colors}
    assert set(by_name) == {"red", "blue"}
    assert by_name["red"].pixel_percent == pytest.approx(share * 100, abs=1.0)
    assert by_name["blue"].pixel_percent == pytest.approx((1 - share) * 100, abs=1.0)
    percents = [colour.pixel_percent for colour in properties.dominant_colors]
    assert percents == sorted(percents, reverse=True)


def test_near_identical_shades_are_merged_and_specks_dropped() -> None:
    image = split((200, 30, 30), (204, 33, 31), 0.5)  # ΔE ≈ 2: one colour
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 3, 3), fill=(0, 200, 0))  # 16 px of 80,000: under 1 %
    [colour] = image_properties(image).dominant_colors
    assert colour.simplified_color == "red"
    assert colour.pixel_percent == pytest.approx(100.0, abs=0.1)


def test_many_colours_are_capped_and_sorted() -> None:
    stripes = Image.new("RGB", (1400, 100))
    draw = ImageDraw.Draw(stripes)
    palette = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff", "#000000",
               "#ffffff", "#808080", "#ffa500", "#8b4513", "#800080", "#008000", "#000080"]
    for index, code in enumerate(palette):
        draw.rectangle((index * 100, 0, index * 100 + 99 - index * 3, 99), fill=code)
    colours = image_properties(stripes).dominant_colors
    assert len(colours) == MAX_COLORS
    assert [c.pixel_percent for c in colours] == sorted((c.pixel_percent for c in colours), reverse=True)
    assert len(image_properties(stripes, max_colors=3).dominant_colors) == 3
    assert image_properties(stripes, max_colors=0).dominant_colors == ()


def test_transparent_pixels_are_not_colours() -> None:
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((0, 0, 99, 199), fill=(255, 165, 0, 255))
    [colour] = image_properties(image).dominant_colors
    assert colour.simplified_color == "orange"
    assert colour.pixel_percent == pytest.approx(100.0, abs=1.0)
    assert image_properties(Image.new("RGBA", (100, 100), (0, 0, 0, 0))).dominant_colors == ()


def test_a_palette_png_with_a_transparent_colour() -> None:
    image = Image.new("P", (1200, 600), 0)
    image.putpalette([255, 255, 255, 0, 128, 128])
    ImageDraw.Draw(image).rectangle((0, 0, 399, 599), fill=1)
    image.info["transparency"] = 0  # white is transparent: only the teal third is coloured
    properties = image_properties(image)
    [colour] = properties.dominant_colors
    assert (colour.hex_code, colour.pixel_percent) == ("#008080", 100.0)
    assert properties.brightness > 70  # transparent parts count as white for quality


def test_scores_are_plain_floats() -> None:
    properties = image_properties(photo_like())
    for value in (properties.brightness, properties.contrast, properties.sharpness,
                  *(c.pixel_percent for c in properties.dominant_colors)):
        assert type(value) is float


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK", "LA", "I;16", "I"])
def test_other_modes(mode: str) -> None:
    image = split((255, 255, 255), (0, 0, 0), 0.5)
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    elif mode == "I":
        converted = Image.fromarray(np.asarray(image.convert("L"), dtype=np.int32) * 257)
    else:
        converted = image.convert(mode)
    assert converted.mode == mode
    properties = image_properties(converted)
    assert {c.simplified_color for c in properties.dominant_colors} == {"black", "white"}
    assert properties.brightness == pytest.approx(50.0, abs=1.0)
    assert properties.contrast == pytest.approx(100.0, abs=1.0)


# -- quality ------------------------------------------------------------------------------------


def test_solid_colours_have_no_contrast_or_sharpness() -> None:
    black, white, grey = (image_properties(solid(c)) for c in ((0, 0, 0), (255, 255, 255), (128, 128, 128)))
    assert (black.brightness, black.contrast, black.sharpness) == (0.0, 0.0, 0.0)
    assert (white.brightness, white.contrast, white.sharpness) == (100.0, 0.0, 0.0)
    assert grey.brightness == pytest.approx(50.2, abs=0.1)


def test_half_black_half_white_has_full_contrast() -> None:
    properties = image_properties(split((0, 0, 0), (255, 255, 255), 0.5))
    assert properties.contrast == pytest.approx(100.0)
    assert properties.brightness == pytest.approx(50.0, abs=0.5)


def test_a_detailed_picture_scores_sharp_its_blurred_copy_blurry_its_dark_copy_dark() -> None:
    picture = photo_like()
    sharp = image_properties(picture)
    blurred = image_properties(picture.filter(ImageFilter.GaussianBlur(4)))
    dark = image_properties(darken(picture))
    assert sharp.sharpness > 90
    assert blurred.sharpness < 25 < sharp.sharpness - 50
    assert dark.brightness < DARK_BELOW < sharp.brightness - 15
    assert dark.contrast < sharp.contrast
    assert quality_flags(sharp, 2000, 1500) == ()
    assert quality_flags(blurred, 2000, 1500) == ("blurry",)
    assert "dark" in quality_flags(dark, 2000, 1500)


@pytest.mark.parametrize("path", PHOTOS, ids=lambda path: path.name)
def test_sample_photos_are_sharp_and_their_blurred_copies_are_not(path: Path) -> None:
    photo = Image.open(path)
    photo.load()
    sharp = image_properties(photo)
    blurred = image_properties(photo.filter(ImageFilter.GaussianBlur(4)))
    darker = image_properties(darken(photo, 0.3))
    assert sharp.sharpness > 60
    assert blurred.sharpness < 25
    assert darker.brightness < sharp.brightness * 0.4
    assert 0 < sharp.contrast <= 100 and 0 <= sharp.brightness <= 100
    assert 1 <= len(sharp.dominant_colors) <= MAX_COLORS
    assert sum(c.pixel_percent for c in sharp.dominant_colors) == pytest.approx(100.0, abs=10.0)
    for colour in sharp.dominant_colors:
        assert colour.hex_code == f"#{colour.red:02x}{colour.green:02x}{colour.blue:02x}"
        assert colour.simplified_color in SIMPLIFIED_COLORS
        assert colour.pixel_percent >= 1.0


def test_grayscale_sample_has_only_achromatic_colours() -> None:
    properties = image_properties(Image.open(SAMPLES / "cameraman.jpg"))
    assert {c.simplified_color for c in properties.dominant_colors} <= {"black", "grey", "white"}


def test_cheap_on_a_large_photo() -> None:
    photo = Image.open(PHOTOS[0]).convert("RGB").resize((4000, 3000), Image.Resampling.BILINEAR)
    image_properties(photo)
    started = time.perf_counter()
    image_properties(photo)
    assert time.perf_counter() - started < 1.0  # ~20 ms on one core; generous for a busy machine


# -- flags --------------------------------------------------------------------------------------


def props(brightness: float = 60.0, sharpness: float = 80.0, contrast: float = 50.0) -> ImageProperties:
    return ImageProperties(brightness=brightness, sharpness=sharpness, contrast=contrast)


def test_quality_flags_thresholds() -> None:
    assert quality_flags(props(), 1024, 100) == ()
    assert quality_flags(props(sharpness=BLURRY_BELOW - 0.1), 2000, 2000) == ("blurry",)
    assert quality_flags(props(sharpness=BLURRY_BELOW), 2000, 2000) == ()
    assert quality_flags(props(brightness=DARK_BELOW - 0.1), 2000, 2000) == ("dark",)
    assert quality_flags(props(), SMALL_BELOW_PX - 1, SMALL_BELOW_PX - 1) == ("small",)
    assert quality_flags(props(brightness=10, sharpness=10), 640, 480) == ("blurry", "dark", "small")
    # A solid colour has nothing to be sharp: not blurry.
    assert quality_flags(image_properties(solid((200, 30, 30))), 2000, 2000) == ()


# -- search keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "keys"), [
    ("teal", {"teal"}),
    ("Teal", {"teal"}),
    ("light blue", {"light blue", "lightblue"}),
    ("light-blue", {"light blue", "lightblue"}),
    ("lightblue", {"lightblue"}),
    ("grey", {"grey", "gray"}),
    ("gray", {"grey", "gray"}),
    ("darkslategray", {"darkslategray", "darkslategrey"}),
    ("DarkSlateGrey", {"darkslategray", "darkslategrey"}),
    ("chartreuse", {"chartreuse"}),
    ("brown", {"brown"}),
    ("notacolour", set()),
    ("", set()),
])
def test_color_matches(query: str, keys: set[str]) -> None:
    assert color_matches(query) == keys


def test_stored_colours_are_found_by_their_own_names() -> None:
    for colour in image_properties(Image.open(SAMPLES / "coffee.jpg")).dominant_colors:
        assert colour.simplified_color in color_matches(colour.simplified_color)
        assert colour.css_color in color_matches(colour.css_color)


def test_normalize_simplified() -> None:
    assert normalize_simplified(" Gray ") == "grey"
    assert normalize_simplified("LIGHT_BLUE") == "light blue"
