"""Draw what the analysis found onto a copy of the original: label and text-line boxes; secrets blurred.

Pure Pillow, no Slack or storage knowledge. Boxes are ratios of the *oriented* image
(Rekognition's convention), so the original is EXIF-oriented before drawing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from bot.core.records import ImageRecord
from bot.core.types import BoundingBox

LABEL_COLOUR = (255, 196, 0)
TEXT_COLOUR = (0, 200, 255)
MAX_SIDE = 2048


@dataclass(frozen=True)
class Annotated:
    data: bytes
    format: str  # "JPEG" or "PNG"
    width: int
    height: int

    @property
    def extension(self) -> str:
        return "png" if self.format == "PNG" else "jpg"

    @property
    def mime_type(self) -> str:
        return "image/png" if self.format == "PNG" else "image/jpeg"


def has_findings(record: ImageRecord, min_confidence: float = 0.0) -> bool:
    """True when there is anything to draw: a label at or above ``min_confidence``, a line of text, a finding."""
    return (any(label.confidence >= min_confidence for label in record.labels) or bool(record.lines)
            or bool(record.sensitive))


def annotate(original: bytes, record: ImageRecord, *, min_confidence: float = 0.0,
             max_side: int = MAX_SIDE) -> Annotated:
    """Return a JPEG (PNG for PNG/GIF originals) with label instance boxes and text LINE boxes drawn,
    and the top labels written in a strip along the bottom edge."""
    with Image.open(io.BytesIO(original)) as opened:
        opened.seek(0)
        image = ImageOps.exif_transpose(opened)
        source_format = (opened.format or "").upper()
        image = image.convert("RGB")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    width, height = image.size
    draw = ImageDraw.Draw(image)
    stroke = max(2, round(max(width, height) / 400))
    font = _font(max(12, round(max(width, height) / 60)))

    for label in record.labels:
        if label.confidence < min_confidence:
            continue
        for instance in label.instances:
            _box(draw, instance.box, width, height, LABEL_COLOUR, stroke,
                 f"{label.name} {instance.confidence:.0f}%", font)
    for line in record.lines:
        _box(draw, line.box, width, height, TEXT_COLOUR, stroke, None, font)
    for finding in record.sensitive:  # last, over the boxes: nothing of it stays readable
        for box in finding.boxes:
            _obscure(image, box, width, height)
    top = record.top_labels(min_confidence, 5)
    if top:
        _caption(draw, " · ".join(f"{label.name} {label.confidence:.0f}%" for label in top), width, height,
                 stroke, font)

    out = io.BytesIO()
    fmt = "PNG" if source_format in {"PNG", "GIF"} else "JPEG"
    if fmt == "PNG":
        image.save(out, format="PNG", optimize=True)
    else:
        image.save(out, format="JPEG", quality=85)
    return Annotated(out.getvalue(), fmt, width, height)


def _obscure(image: Image.Image, box: BoundingBox, width: int, height: int) -> None:
    """Pixelate, then blur, a finding's box and a margin around it, so no character can be read back."""
    margin = max(box.height * height * 0.3, 2.0)
    left = max(0, int(box.left * width - margin))
    top = max(0, int(box.top * height - margin))
    right = min(width, int((box.left + box.width) * width + margin) + 1)
    bottom = min(height, int((box.top + box.height) * height + margin) + 1)
    if right <= left or bottom <= top:
        return
    region = image.crop((left, top, right, bottom))
    cell = max(4, round((bottom - top) / 3))
    small = region.resize((max(1, (right - left) // cell), max(1, (bottom - top) // cell)), Image.Resampling.BOX)
    region = small.resize(region.size, Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(cell / 2))
    image.paste(region, (left, top))


def _pixels(box: BoundingBox, width: int, height: int) -> tuple[int, int, int, int]:
    left = max(0.0, min(1.0, box.left)) * width
    top = max(0.0, min(1.0, box.top)) * height
    right = max(0.0, min(1.0, box.left + box.width)) * width
    bottom = max(0.0, min(1.0, box.top + box.height)) * height
    return round(left), round(top), round(max(right, left + 1)), round(max(bottom, top + 1))


def _box(draw: ImageDraw.ImageDraw, box: BoundingBox, width: int, height: int, colour: Sequence[int],
         stroke: int, caption: str | None, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> None:
    left, top, right, bottom = _pixels(box, width, height)
    draw.rectangle((left, top, right, bottom), outline=tuple(colour), width=stroke)
    if caption:
        text_box = draw.textbbox((0, 0), caption, font=font)
        text_w, text_h = text_box[2] - text_box[0], text_box[3] - text_box[1]
        y = top - text_h - 2 * stroke if top - text_h - 2 * stroke >= 0 else top
        draw.rectangle((left, y, left + text_w + 2 * stroke, y + text_h + 2 * stroke), fill=tuple(colour))
        draw.text((left + stroke, y + stroke - text_box[1]), caption, fill=(0, 0, 0), font=font)


def _caption(draw: ImageDraw.ImageDraw, text: str, width: int, height: int, pad: int,
             font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> None:
    while len(text) > 1 and draw.textlength(text, font=font) > width - 2 * pad:
        text = text[:-2] + "…"
    box = draw.textbbox((0, 0), text, font=font)
    strip = box[3] - box[1] + 2 * pad
    draw.rectangle((0, height - strip, width, height), fill=(0, 0, 0))
    draw.text((pad, height - strip + pad - box[1]), text, fill=LABEL_COLOUR, font=font)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()
