"""Marketing-style banners with text on them, rendered by imgbot itself (no outside artwork).

``render_banner`` is used by ``scripts/render_sample_banners.py`` (the committed sample
banners) and by ``bench/quality.py`` (the OCR character-error benchmark). Fonts are the
DejaVu family when installed (Debian's fonts-dejavu-core) and Pillow's built-in font
otherwise, so rendering never needs the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONT_FILES = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSans.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif-Italic.ttf",
)

Color = tuple[int, int, int]


def fonts() -> list[str | None]:
    """Available TrueType files; ``None`` stands for Pillow's built-in scalable font."""
    found: list[str | None] = []
    for name in FONT_FILES:
        for folder in FONT_DIRS:
            if (folder / name).exists():
                found.append(str(folder / name))
                break
    found.append(None)
    return found


def font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(path, size)


def render_banner(
    lines: Sequence[tuple[str, int]],
    *,
    size: tuple[int, int] = (1200, 628),
    background: Color | Image.Image = (230, 57, 70),
    color: Color = (255, 255, 255),
    font_path: str | None = None,
    align: str = "left",
    margin: int = 80,
    line_gap: float = 0.35,
    band: Color | None = None,
) -> Image.Image:
    """Text lines (``(text, pixel size)``) stacked and vertically centred on a background."""
    if isinstance(background, Image.Image):
        canvas = background.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    else:
        canvas = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(canvas)
    faces = [font(font_path, px) for _, px in lines]
    boxes = [draw.textbbox((0, 0), text, font=f) for (text, _), f in zip(lines, faces, strict=True)]
    heights = [b[3] - b[1] for b in boxes]
    total = sum(heights) + sum(int(px * line_gap) for _, px in lines[:-1])
    y = (size[1] - total) // 2
    if band is not None:
        draw.rectangle((0, y - margin // 2, size[0], y + total + margin // 2), fill=band)
    for (text, px), f, box, h in zip(lines, faces, boxes, heights, strict=True):
        width = box[2] - box[0]
        x = margin if align == "left" else (size[0] - width) // 2
        draw.text((x - box[0], y - box[1]), text, font=f, fill=color)
        y += h + int(px * line_gap)
    return canvas
