"""Fit the offline engine's label calibration: summed class probability → how often a label is right.

    python scripts/fit_label_calibration.py [--views 40] [--seed 11]

What it is fitted on — only images this project makes or ships, never a test set:

* **Views of the bundled demo photos** (``bot/samples``: a cat, an espresso, an astronaut,
  a rocket on its pad, a cameraman; all from scikit-image, public domain or CC0): ``--views``
  random views of each — crops of 45–100 % of the area, mirror images, rotations up to 8°,
  sizes from 300 to 1,400 px, blur, brightness and colour changes, JPEG quality 40–95.
* **Banners this project renders** (``bench/quality.py``'s generator, flat and gradient
  backgrounds) and **plain textures** (noise, gradients, flat colours): nothing a photo
  classifier says about them is right except text-like labels.

Every label the classifier gives a view (summed probability ≥ 1 %) is one example, right
when it names something in that picture (``RIGHT`` below, judged by a person looking at the
photo). A logistic curve on the log-odds of the probability, two parameters, is fitted to
those examples by Newton's method; the script prints the parameters for
``bot/analyzers/local/labels.py`` and a reliability table.

Result (seed 11, 40 views, Dec 2026): see ``CALIBRATION_SLOPE`` / ``CALIBRATION_OFFSET`` and
the table in ``bot/analyzers/local/README.md``.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quality import render_case  # noqa: E402
from bot.analyzers.local.labels import ImageNetLabeler  # noqa: E402
from bot.analyzers.local.models import Decoded  # noqa: E402
from bot.samples.banners import fonts  # noqa: E402

#: What is really in each demo photo, in the label map's names.
RIGHT: dict[str, set[str]] = {
    "cat-chelsea.jpg": {"Cat", "Mammal", "Pet", "Animal"},
    "coffee.jpg": {"Coffee", "Espresso", "Beverage", "Cup", "Coffee Cup", "Tableware", "Saucer", "Food"},
    "astronaut.jpg": {"Person", "Clothing", "Flag", "Astronaut", "Spacesuit"},
    "rocket.jpg": {"Rocket", "Vehicle", "Transportation", "Spacecraft", "Space Shuttle", "Architecture", "Tower"},
    "cameraman.jpg": {"Person", "Tripod", "Camera", "Electronics", "Clothing", "Coat", "Overcoat"},
}
#: What may be said of a rendered banner or a texture.
TEXT_LIKE = {"Text", "Webpage", "Menu", "Poster", "Sign", "Road Sign"}
MIN_PROBABILITY = 0.01


def photo_view(rng: random.Random, photo: Image.Image) -> Image.Image:
    width, height = photo.size
    share = rng.uniform(0.45, 1.0)
    aspect = rng.uniform(0.75, 1.33)
    w = min(width, int(width * (share * aspect) ** 0.5))
    h = min(height, int(height * (share / aspect) ** 0.5))
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    view = photo.crop((left, top, left + w, top + h))
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.4:
        view = view.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC, expand=False)
    side = rng.randint(300, 1400)
    view = view.resize((side, max(1, int(side * view.height / view.width))), Image.Resampling.LANCZOS)
    if rng.random() < 0.3:
        view = view.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.7, 1.3))
    view = ImageEnhance.Color(view).enhance(rng.uniform(0.7, 1.3))
    return view


def texture(rng: random.Random) -> Image.Image:
    size = (rng.randint(300, 1200), rng.randint(300, 1200))
    kind = rng.random()
    if kind < 0.33:
        noise = np.random.default_rng(rng.randint(0, 10**6)).integers(0, 256, (size[1] // 8, size[0] // 8, 3))
        return Image.fromarray(noise.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    if kind < 0.66:
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        return Image.new("RGB", size, colour)
    gradient = Image.linear_gradient("L").resize(size).convert("RGB")
    return ImageEnhance.Color(gradient).enhance(0)


def jpeg(rng: random.Random, image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=rng.randint(40, 95))
    return buffer.getvalue()


def examples(views: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = random.Random(seed)
    labeler = ImageNetLabeler()
    probabilities: list[float] = []
    right: list[float] = []
    where: list[str] = []

    def add(data: bytes, allowed: set[str], source: str) -> None:
        result = labeler.predict(Decoded.from_bytes(data))
        for name, p in result.label_probability.items():
            if p >= MIN_PROBABILITY:
                probabilities.append(p)
                right.append(1.0 if name in allowed else 0.0)
                where.append(f"{source}:{name}")

    for file, allowed in RIGHT.items():
        photo = Image.open(ROOT / "bot" / "samples" / file).convert("RGB")
        for _ in range(views):
            add(jpeg(rng, photo_view(rng, photo)), allowed, file)
    font_files = fonts()
    plain = Image.new("RGB", (1200, 1200), (128, 128, 128))  # the generator's "photo" background: flat
    for _ in range(views):
        data, _truth = render_case(rng, [plain], font_files)
        add(data, TEXT_LIKE, "banner")
    for _ in range(views):
        add(jpeg(rng, texture(rng)), set(), "texture")
    return np.array(probabilities), np.array(right), where


def fit(probability: np.ndarray, right: np.ndarray) -> tuple[float, float]:
    """Logistic regression of ``right`` on logit(probability): (slope, offset)."""
    p = np.clip(probability, 1e-6, 1 - 1e-6)
    x = np.stack((np.log(p / (1 - p)), np.ones_like(p)), axis=1)
    w = np.array([1.0, 0.0])
    for _ in range(50):
        q = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (q - right)
        hessian = (x * (q * (1 - q))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    probability, right, _where = examples(args.views, args.seed)
    slope, offset = fit(probability, right)
    print(f"{len(right)} labelled examples, {int(right.sum())} right")
    print(f"CALIBRATION_SLOPE = {slope:.3f}\nCALIBRATION_OFFSET = {offset:.3f}")
    p = np.clip(probability, 1e-6, 1 - 1e-6)
    confidence = 100 / (1 + np.exp(-(slope * np.log(p / (1 - p)) + offset)))
    print("\nconfidence   examples   right   (raw probability in that band)")
    for low in range(0, 100, 10):
        band = (confidence >= low) & (confidence < low + 10)
        if band.any():
            print(f"{low:3d}-{low + 10:<3d}     {band.sum():6d}   {100 * right[band].mean():5.1f} %"
                  f"   ({probability[band].min():.3f}-{probability[band].max():.3f})")
    for q in (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 0.95):
        print(f"probability {q:.2f} -> confidence {100 / (1 + np.exp(-(slope * np.log(q / (1 - q)) + offset))):.0f}")


if __name__ == "__main__":
    main()
