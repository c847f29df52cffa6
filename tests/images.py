"""Images made on the fly for tests: every call returns different bytes unless asked not to."""

from __future__ import annotations

import io
import itertools

from PIL import Image, ImageDraw

_counter = itertools.count(1)


def make_image(
    fmt: str = "PNG",
    size: tuple[int, int] = (160, 120),
    colour: tuple[int, int, int] | None = None,
    *,
    exif_orientation: int | None = None,
) -> bytes:
    """A small image of ``fmt``; a unique stripe makes each call's bytes unique."""
    n = next(_counter)
    base = colour or (200, 40, 40)
    image = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size[0] - 1, 3), fill=(n % 256, (n // 256) % 256, (n * 7) % 256))
    buffer = io.BytesIO()
    options: dict[str, object] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        options["exif"] = exif
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    save_format = {"JPG": "JPEG"}.get(fmt, fmt)
    if save_format == "GIF":
        frames = [image, Image.new("RGB", size, (0, 0, 255))]
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    else:
        image.save(buffer, save_format, **options)
    return buffer.getvalue()
