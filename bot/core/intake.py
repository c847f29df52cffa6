"""Turn uploaded bytes into a checked ``PreparedImage``, or refuse them with a reason.

Phones send HEIC, WebP and MPO; designers send TIFF and BMP; Rekognition takes
only JPEG or PNG, at most 5 MB as bytes, 80–10,000 px a side. So every image
gets an *analysis copy* that fits those limits (EXIF-oriented, flattened,
re-encoded, resized), while the original is kept untouched. When the original
already fits, it is its own analysis copy, which lets an S3-backed analyser
read the stored object instead of uploading bytes again.

Size checks happen on the header, before any pixel is decoded, so a
decompression bomb is refused without allocating its memory.
"""

from __future__ import annotations

import hashlib
import io
import logging

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from bot.core.types import PreparedImage
from bot.errors import ImageTooLarge, UnsupportedImage

log = logging.getLogger("imgbot.intake")

try:  # HEIC/HEIF from phones
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a dependency; this only guards odd installs
    log.warning("pillow-heif is not installed: HEIC/HEIF images will be refused")

# imgbot does its own pixel-limit check (IMGBOT_MAX_PIXELS) on the header; Pillow's
# global check would otherwise warn or raise with a different, fixed limit.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Pillow format name → (stored format name, MIME type).
ACCEPTED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("JPEG", "image/jpeg"),
    "MPO": ("JPEG", "image/jpeg"),  # multi-picture JPEG from cameras and iPhones
    "PNG": ("PNG", "image/png"),
    "WEBP": ("WEBP", "image/webp"),
    "GIF": ("GIF", "image/gif"),
    "TIFF": ("TIFF", "image/tiff"),
    "BMP": ("BMP", "image/bmp"),
    "HEIF": ("HEIF", "image/heic"),
    "AVIF": ("AVIF", "image/avif"),
}

REKOGNITION_MAX_BYTES = 5 * 1024 * 1024
MIN_SIDE = 80
MAX_SIDE = 10_000
#: Long side of a re-encoded analysis copy: enough for small text, far below the 5 MB cap.
ANALYSIS_LONG_SIDE = 4096
_MAX_ASPECT = MAX_SIDE / MIN_SIDE


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare_image(data: bytes, *, max_bytes: int, max_pixels: int, sha256: str | None = None) -> PreparedImage:
    """Check and decode ``data``; raise ``UnsupportedImage`` or ``ImageTooLarge`` with a readable reason."""
    digest = sha256 or sha256_of(data)
    if not data:
        raise UnsupportedImage("The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"The file is {_megabytes(len(data))}, over the {_megabytes(max_bytes)} limit (IMGBOT_MAX_BYTES)."
        )
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedImage(_not_an_image_reason(data)) from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise UnsupportedImage(f"The image is damaged or incomplete ({_short(exc)}).") from exc

    pillow_format = image.format or "unknown"
    if pillow_format not in ACCEPTED_FORMATS:
        raise UnsupportedImage(
            f"{pillow_format} images are not supported. Use JPEG, PNG, WebP, GIF, TIFF, BMP or HEIC."
        )
    stored_format, mime_type = ACCEPTED_FORMATS[pillow_format]
    width, height = image.size
    if width <= 0 or height <= 0:
        raise UnsupportedImage("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}×{height} ({width * height / 1e6:.0f} megapixels), over the "
            f"{max_pixels / 1e6:.0f}-megapixel limit (IMGBOT_MAX_PIXELS)."
        )
    if max(width, height) / min(width, height) > _MAX_ASPECT:
        raise UnsupportedImage(
            f"The image is {width}×{height}: too long and thin to analyse (at most {_MAX_ASPECT:.0f}:1)."
        )

    orientation = _exif_orientation(image)
    try:
        image.seek(0)  # animated GIF/WebP/TIFF: the first frame
        image.load()
    except Exception as exc:  # truncated or corrupt pixel data
        raise UnsupportedImage(f"The image is damaged or incomplete ({_short(exc)}).") from exc

    oriented = ImageOps.exif_transpose(image) if orientation not in (None, 1) else image
    oriented_width, oriented_height = oriented.size

    if _fits_rekognition_as_is(pillow_format, image, len(data), orientation):
        analysis_bytes, analysis_format = data, ("PNG" if pillow_format == "PNG" else "JPEG")
        analysis_size, is_original = (oriented_width, oriented_height), True
    else:
        analysis_bytes, analysis_format, analysis_size = _analysis_copy(oriented)
        is_original = False

    return PreparedImage(
        sha256=digest,
        data=data,
        format=stored_format,
        mime_type=mime_type,
        width=oriented_width,
        height=oriented_height,
        analysis_bytes=analysis_bytes,
        analysis_format=analysis_format,  # type: ignore[arg-type]
        analysis_width=analysis_size[0],
        analysis_height=analysis_size[1],
        analysis_is_original=is_original,
    )


def _fits_rekognition_as_is(pillow_format: str, image: Image.Image, size: int, orientation: int | None) -> bool:
    width, height = image.size
    return (
        pillow_format in ("JPEG", "PNG")
        and size <= REKOGNITION_MAX_BYTES
        and orientation in (None, 1)
        and MIN_SIDE <= min(width, height)
        and max(width, height) <= ANALYSIS_LONG_SIDE
        and image.mode in ("RGB", "L", "RGBA", "LA", "P")
        and not getattr(image, "is_animated", False)
    )


def _analysis_copy(image: Image.Image) -> tuple[bytes, str, tuple[int, int]]:
    """Flatten to RGB, fit the long side and the minimum side, encode JPEG under 5 MB."""
    rgb = _to_rgb(image)
    width, height = rgb.size
    scale = min(1.0, ANALYSIS_LONG_SIDE / max(width, height))
    if min(width, height) * scale < MIN_SIDE:
        scale = MIN_SIDE / min(width, height)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    for quality in (90, 80, 70, 60):
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=quality, optimize=True)
        if buffer.tell() <= REKOGNITION_MAX_BYTES:
            return buffer.getvalue(), "JPEG", rgb.size
    rgb = rgb.resize((rgb.width // 2, rgb.height // 2), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=80)
    return buffer.getvalue(), "JPEG", rgb.size


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value / 256).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def _exif_orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(0x0112)
    except Exception:  # malformed EXIF must not sink an otherwise good image
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def _not_an_image_reason(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "The file is a web page (HTML), not an image."
    if head.startswith(b"%pdf"):
        return "The file is a PDF document, not an image."
    try:
        data[:2048].decode("utf-8")
        return "The file is text, not an image (its name may end in .jpg, but its content is not a picture)."
    except UnicodeDecodeError:
        return "The file is not an image imgbot can read (unknown or damaged format)."


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "…"
