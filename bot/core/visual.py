"""Colours and quality of an image, computed from its pixels, in Rekognition's ``ImageProperties`` shape.

Cheap enough to run on every image (about 10 ms for a 1024 px photo, 18 ms for a 12 MP
one, on one core): the image is first box-reduced to a working copy no larger than twice
``SHARPNESS_SIDE``; colours are read from a copy of at most ``COLOR_SIDE`` px, quality
from a grayscale copy of at most ``SHARPNESS_SIDE`` px. Images are never scaled up.

**Dominant colours.** Pillow's median cut splits the pixels (seen with ``QUANTIZE_BITS`` per
channel, for speed) into ``QUANTIZE_COLORS`` boxes (deterministic: the same image gives the
same palette). Each box becomes the mean of its own pixels; boxes closer than
``MERGE_DELTA_E`` (CIE76 ΔE, in CIELAB) to a bigger one are merged into it; colours under
``MIN_PERCENT`` of the pixels are dropped and at most ``MAX_COLORS`` are kept, by share,
largest first. Fully transparent pixels
(alpha under 128) are not counted. ``pixel_percent`` is the share of all counted pixels,
so the kept colours may sum to a little under 100.

Each colour gets the nearest CSS colour name (CSS3's named colours as ``webcolors``
lists them, smallest ΔE in CIELAB, one name per hex value: ``gray`` rather than
``grey``) and one of Rekognition's simplified colour names by the rules in
``simplified_color_name``.

Rekognition's API reference says only that ``SimplifiedColor`` is "one of 12 simplified
color names" (DominantColor, and botocore's service model says the same) without listing
them. A response published in an SDK's test data shows lower-case names (``grey``,
``green``, ``black``), CSS names in either spelling (``darkslategrey``, ``dimgrey``,
``gray``) and ``HexCode`` as ``#2f4f4f``. imgbot uses the 13
names of ``SIMPLIFIED_COLORS`` (the project's list: "light blue" and "teal" both appear in
it, so one of them may be absent from Rekognition's 12), always spelled ``grey``.

**Quality**, each 0-100 like Rekognition's ``Quality`` (formulas in ``image_properties``).
"""

from __future__ import annotations

import colorsys
import functools
import re
from typing import Any

import numpy as np
import numpy.typing as npt
import webcolors
from PIL import Image, ImageOps

from bot.core.types import DominantColor, ImageProperties

#: Colours are read from a copy whose longest side is at most this many pixels.
COLOR_SIDE = 128
#: Sharpness, brightness and contrast are read from a grayscale copy at most this large.
SHARPNESS_SIDE = 512
#: Median-cut boxes before merging (more than ``MAX_COLORS``, so merging has room to work).
QUANTIZE_COLORS = 16
#: Bits per channel median cut sees (the colours themselves are the means of the full pixels): 8× faster.
QUANTIZE_BITS = 5
#: Clusters closer than this CIE76 ΔE are one colour (2.3 is a just-noticeable difference).
MERGE_DELTA_E = 10.0
#: Colours covering less than this share of the pixels (percent) are dropped.
MIN_PERCENT = 1.0
#: At most this many dominant colours (Rekognition's default ``MaxDominantColors``).
MAX_COLORS = 10
#: Laplacian variance at which sharpness reaches 63 (1 - 1/e of 100); see ``image_properties``.
SHARPNESS_SCALE = 250.0

#: ``quality_flags``: sharpness under this is "blurry".
BLURRY_BELOW = 25.0
#: ``quality_flags``: brightness under this is "dark".
DARK_BELOW = 25.0
#: ``quality_flags``: an image whose longest side is under this many pixels is "small".
SMALL_BELOW_PX = 1024
#: ``quality_flags``: an image with less contrast than this is featureless, never "blurry".
FLAT_BELOW = 5.0

#: Rekognition's simplified colour names as imgbot spells them (lower case, ``grey``).
SIMPLIFIED_COLORS = (
    "red", "pink", "purple", "blue", "light blue", "green", "teal", "yellow", "orange", "brown",
    "black", "white", "grey",
)

# Thresholds of ``simplified_color_name`` (CIELAB L* 0-100, chroma C*, HSV hue in degrees).
_BLACK_L = 12.0  # darker than this is black whatever its hue
_DARK_L = 22.0  # achromatic and darker than this: black
_WHITE_L = 90.0  # achromatic and lighter than this: white
_GREY_CHROMA = 13.0  # less chroma than this is achromatic (Rekognition calls #2f4f4f, C* 12.3, grey)…
_PALE_CHROMA = 20.0  # …and so is this little, when very dark or very light

_Float = npt.NDArray[np.float64]


# -- colour spaces ----------------------------------------------------------------------------

# sRGB (D65) → CIE XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: Any) -> _Float:
    """CIELAB (D65) of sRGB values 0-255: an array ``(..., 3)`` in, ``(..., 3)`` of L*, a*, b* out."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE_D65
    epsilon, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > epsilon, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab: _Float = np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1
    )
    return lab


@functools.cache
def _css_palette() -> tuple[tuple[str, ...], _Float]:
    """CSS3's named colours, one name per value (webcolors' own choice: ``gray``), and their Lab."""
    names: list[str] = []
    rgbs: list[tuple[int, int, int]] = []
    for hex_value in sorted({webcolors.name_to_hex(name) for name in webcolors.names(webcolors.CSS3)}):
        names.append(webcolors.hex_to_name(hex_value, spec=webcolors.CSS3))
        rgb = webcolors.hex_to_rgb(hex_value)
        rgbs.append((rgb.red, rgb.green, rgb.blue))
    return tuple(names), rgb_to_lab(np.array(rgbs, dtype=np.float64))


@functools.cache
def _css_names() -> frozenset[str]:
    return frozenset(webcolors.names(webcolors.CSS3))


def css_color_name(rgb: tuple[int, int, int]) -> str:
    """The CSS3 colour name nearest to ``rgb`` by CIE76 ΔE (Euclidean distance in CIELAB)."""
    names, labs = _css_palette()
    distances = np.sum((labs - rgb_to_lab(np.array(rgb, dtype=np.float64))) ** 2, axis=1)
    return names[int(np.argmin(distances))]


def simplified_color_name(rgb: tuple[int, int, int]) -> str:
    """One of ``SIMPLIFIED_COLORS`` for ``rgb``, by lightness, chroma and hue rules (not nearest anchors).

    Rules, chosen so that the boundaries are predictable and greys come out right:

    * lightness L* and chroma C* (CIELAB) decide the achromatic colours: L* < 12 is
      black whatever the hue; C* < 13 (or C* < 20 when L* < 22 or L* > 90) is black
      (L* < 22), white (L* > 90) or grey;
    * otherwise the HSV hue decides (Lab's hue angle bunches blue and purple together):
      under 12° or from 345° red (pink when light, L* ≥ 65; brown when dark and dull),
      12-45° orange (brown when L* < 50, or dull, S < 0.5, and L* < 80), 45-65° yellow
      (brown when L* < 50), 65-165° green, 165-195° teal (light blue when pale:
      L* ≥ 80 and S < 0.4), 195-255° blue (light blue when L* ≥ 65), 255-320° purple,
      320-345° pink.

    So ``#808080`` is grey, ``#000000`` black, ``#ffffff`` white, ``#008080`` teal,
    ``#ffa500`` orange and ``#8b4513`` (saddlebrown) brown.
    """
    lightness, a, b = (float(v) for v in rgb_to_lab(np.array(rgb, dtype=np.float64)))
    chroma = float(np.hypot(a, b))
    if lightness < _BLACK_L:
        return "black"
    pale = lightness < _DARK_L or lightness > _WHITE_L
    if chroma < _GREY_CHROMA or (pale and chroma < _PALE_CHROMA):
        if lightness < _DARK_L:
            return "black"
        return "white" if lightness > _WHITE_L else "grey"
    hue, saturation, _ = colorsys.rgb_to_hsv(*(channel / 255.0 for channel in rgb))
    degrees = hue * 360.0
    if degrees < 12 or degrees >= 345:
        if lightness >= 65:
            return "pink"
        return "brown" if lightness < 40 and saturation < 0.5 else "red"
    if degrees < 45:
        return "brown" if lightness < 50 or (saturation < 0.5 and lightness < 80) else "orange"
    if degrees < 65:
        return "brown" if lightness < 50 else "yellow"
    if degrees < 165:
        return "green"
    if degrees < 195:
        return "light blue" if lightness >= 80 and saturation < 0.4 else "teal"
    if degrees < 255:
        return "light blue" if lightness >= 65 else "blue"
    if degrees < 320:
        return "purple"
    return "pink"


# -- the image ---------------------------------------------------------------------------------


def _fit(image: Image.Image, side: int) -> Image.Image:
    """``image`` box-downscaled so that its longest side is at most ``side`` (never scaled up)."""
    longest = max(image.size)
    if longest <= side:
        return image
    scale = side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _working_copy(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """An RGB copy no larger than about twice ``SHARPNESS_SIDE``, and its alpha band (``None``: opaque)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if has_alpha and image.mode not in ("RGBA", "LA"):
        image = image.convert("RGBA")  # P or RGB with a transparent colour, PA, La, RGBa…
    elif not has_alpha and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # P, 1, CMYK, YCbCr…
    factor = max(image.size) // SHARPNESS_SIDE
    if factor >= 2:
        image = image.reduce(factor)  # a fast box average over factor × factor blocks
    if has_alpha:
        rgba = image.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    return image.convert("RGB"), None


def _quality(gray: Image.Image) -> tuple[float, float, float]:
    """(brightness, contrast, sharpness), 0-100, of a grayscale image."""
    pixels = np.asarray(gray, dtype=np.uint8)
    histogram = np.bincount(pixels.ravel(), minlength=256)
    total = int(histogram.sum())
    brightness = float(np.dot(histogram, np.arange(256))) / total / 255.0 * 100.0
    levels = np.arange(256, dtype=np.float64)
    variance_luma = float(np.dot(histogram, (levels - brightness / 100.0 * 255.0) ** 2)) / total
    contrast = min(100.0, 200.0 * float(np.sqrt(variance_luma)) / 255.0)
    if min(pixels.shape) < 3:
        return brightness, contrast, 0.0
    values = pixels.astype(np.float32)
    laplacian = (values[1:-1, :-2] + values[1:-1, 2:] + values[:-2, 1:-1] + values[2:, 1:-1]
                 - 4.0 * values[1:-1, 1:-1])
    variance = float(laplacian.var(dtype=np.float64))
    sharpness = 100.0 * (1.0 - float(np.exp(-variance / SHARPNESS_SCALE)))
    return brightness, contrast, sharpness


def _dominant_colors(rgb: Image.Image, alpha: Image.Image | None, max_colors: int) -> tuple[DominantColor, ...]:
    small = _fit(rgb, COLOR_SIDE)
    pixels = np.asarray(small, dtype=np.uint8).reshape(-1, 3)
    # Median cut's cost grows with the distinct colours: it sees QUANTIZE_BITS per channel.
    quantized = ImageOps.posterize(small, QUANTIZE_BITS).quantize(colors=QUANTIZE_COLORS,
                                                                  method=Image.Quantize.MEDIANCUT)
    indices = np.asarray(quantized, dtype=np.uint8).ravel()
    if alpha is not None:
        levels = np.asarray(_fit(alpha, COLOR_SIDE), dtype=np.uint8).ravel()
        # Pixels as opaque as the image gets: an edge pixel that mixes a colour with transparency
        # (the downscale averages them) would count as a darker colour of its own.
        opaque = (levels >= 128) & (levels >= min(250, int(levels.max(initial=0))))
        if not opaque.any():
            return ()
        pixels, indices = pixels[opaque], indices[opaque]
    total = len(indices)
    counts = np.bincount(indices, minlength=256).astype(np.float64)
    sums = np.stack([np.bincount(indices, weights=pixels[:, channel], minlength=256) for channel in range(3)],
                    axis=1)
    # Biggest first; each cluster joins the nearest kept one within MERGE_DELTA_E, or is kept.
    order = sorted(np.flatnonzero(counts), key=lambda i: (-counts[i], int(i)))
    cluster_labs = rgb_to_lab(sums[order] / counts[order][:, None])  # every cluster at once
    kept_counts: list[float] = []
    kept_sums: list[_Float] = []
    kept_labs = np.empty((len(order), 3))  # the Lab of each kept cluster's mean, updated as it grows
    for position, index in enumerate(order):
        lab = cluster_labs[position]
        if kept_counts:
            distances = np.sqrt(np.sum((kept_labs[: len(kept_counts)] - lab) ** 2, axis=1))
            nearest = int(np.argmin(distances))
            if distances[nearest] < MERGE_DELTA_E:
                kept_counts[nearest] += float(counts[index])
                kept_sums[nearest] = kept_sums[nearest] + sums[index]
                kept_labs[nearest] = rgb_to_lab(kept_sums[nearest] / kept_counts[nearest])
                continue
        kept_labs[len(kept_counts)] = lab
        kept_counts.append(float(counts[index]))
        kept_sums.append(sums[index].copy())
    colors: list[DominantColor] = []
    for count, total_rgb in zip(kept_counts, kept_sums, strict=True):
        percent = float(count) / total * 100.0
        if percent < MIN_PERCENT:
            continue
        red, green, blue = (int(round(float(v))) for v in total_rgb / count)
        colors.append(DominantColor(
            red=red, green=green, blue=blue, hex_code=f"#{red:02x}{green:02x}{blue:02x}",
            css_color=css_color_name((red, green, blue)),
            simplified_color=simplified_color_name((red, green, blue)),
            pixel_percent=round(percent, 3),
        ))
    colors.sort(key=lambda color: (-color.pixel_percent, color.hex_code))
    return tuple(colors[:max_colors])


def image_properties(image: Image.Image, *, max_colors: int = MAX_COLORS) -> ImageProperties:
    """Dominant colours and quality of ``image``, computed from its pixels (``source="pixels"``).

    Quality is read from a grayscale copy (ITU-R 601 luma, transparent parts over white)
    whose longest side is at most ``SHARPNESS_SIDE`` px:

    * brightness = mean luma / 255 × 100;
    * contrast = RMS contrast: 2 × standard deviation of luma / 255 × 100 (at most 100,
      reached by an image half black, half white; the sample photos score 24-59, a solid colour 0).
      Unlike a percentile spread, it still sees text that covers a few percent of a flat
      banner;
    * sharpness = 100 × (1 − exp(−V / ``SHARPNESS_SCALE``)) where V is the variance of the
      4-neighbour Laplacian. Sharp photos have V in the hundreds or thousands (the bundled
      samples 400-1,700: 80-99), the same photos blurred with a Gaussian of radius 4 under
      45 (under 17). V grows with contrast squared, so a dark, flat copy of a photo scores
      lower too; a featureless image scores 0.

    Colours: see the module's docstring. ``max_colors`` caps their number (0-20, as
    Rekognition's ``MaxDominantColors``).
    """
    rgb, alpha = _working_copy(image)
    if alpha is not None:
        white = Image.new("RGB", rgb.size, (255, 255, 255))
        gray_source = Image.composite(rgb, white, alpha)
    else:
        gray_source = rgb
    brightness, contrast, sharpness = _quality(_fit(gray_source.convert("L"), SHARPNESS_SIDE))
    return ImageProperties(
        brightness=round(brightness, 2),
        sharpness=round(sharpness, 2),
        contrast=round(contrast, 2),
        dominant_colors=_dominant_colors(rgb, alpha, max_colors) if max_colors > 0 else (),
        source="pixels",
    )


def quality_flags(properties: ImageProperties, width: int, height: int) -> tuple[str, ...]:
    """What is wrong with an image, in this order: ``blurry``, ``dark``, ``small``.

    * ``blurry``: sharpness under ``BLURRY_BELOW`` (25), unless the image is featureless
      (contrast under ``FLAT_BELOW``, 5: a solid colour has nothing to be sharp);
    * ``dark``: brightness under ``DARK_BELOW`` (25);
    * ``small``: the longest side (of the original, ``width`` × ``height``) is under
      ``SMALL_BELOW_PX`` (1024) pixels.
    """
    flags: list[str] = []
    if properties.sharpness < BLURRY_BELOW and properties.contrast >= FLAT_BELOW:
        flags.append("blurry")
    if properties.brightness < DARK_BELOW:
        flags.append("dark")
    if max(width, height) < SMALL_BELOW_PX:
        flags.append("small")
    return tuple(flags)


def normalize_simplified(name: str) -> str:
    """A simplified colour name as stored: lower case, single spaces, ``gray`` spelled ``grey``."""
    words = " ".join(re.split(r"[\s_-]+", name.strip().lower())).strip()
    return "grey" if words == "gray" else words


def color_matches(name: str) -> set[str]:
    """The lower-case keys a query word ``color:NAME`` matches; empty when ``NAME`` is no colour.

    A stored ``DominantColor`` matches when its ``simplified_color`` or its ``css_color``
    (both lower case) is one of the keys. ``NAME`` may be

    * a simplified name, any case, spaces, ``-`` or ``_`` between words: ``teal``,
      ``Light-Blue``, ``gray`` (→ ``grey``, and the CSS ``gray``/``grey`` too);
    * a CSS3 name: ``darkslategray``. Names spelled with ``gray`` or ``grey`` match
      both spellings, as Rekognition's ``CSSColor`` may use either.

    Spaces, ``-`` and ``_`` are dropped to look up CSS names (``dark slate gray``), so
    ``light blue`` matches the simplified colour and the CSS ``lightblue`` (#add8e6, itself
    a light blue); ``lightblue``, one word, matches the CSS colour only.
    """
    simplified = normalize_simplified(name)
    keys: set[str] = set()
    if simplified in SIMPLIFIED_COLORS:
        keys.add(simplified)
    compact = simplified.replace(" ", "")
    if compact in _css_names():
        keys.add(compact)
        for variant in (compact.replace("gray", "grey"), compact.replace("grey", "gray")):
            if variant in _css_names():
                keys.add(variant)
    return keys
