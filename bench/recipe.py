"""What the benchmarks share: synthetic product shots and the AWS recipe's sequential loop."""

from __future__ import annotations

import io
import time

import boto3
from PIL import Image, ImageDraw


def make_images(count: int, size: tuple[int, int] = (640, 480), quality: int = 85) -> list[bytes]:
    """``count`` distinct JPEGs with a line of text, like a product shot with a caption."""
    images = []
    for n in range(count):
        image = Image.new("RGB", size, ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256))
        ImageDraw.Draw(image).text((10, 10), f"SALE {n}% OFF", fill=(255, 255, 255))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        images.append(buffer.getvalue())
    return images


def recipe(images: list[bytes], endpoint: str) -> float:
    """The recipe's loop: one image at a time, three calls one after another, a 0.1 s pause; images/s."""
    client = boto3.client("rekognition", endpoint_url=endpoint)
    started = time.perf_counter()
    for data in images:
        client.detect_labels(Image={"Bytes": data}, MaxLabels=10, MinConfidence=75)
        client.detect_text(Image={"Bytes": data})
        client.detect_moderation_labels(Image={"Bytes": data}, MinConfidence=60)
        time.sleep(0.1)
    return len(images) / (time.perf_counter() - started)
