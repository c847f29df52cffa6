"""Quality of the offline engine: OCR character error rate, labels and moderation on the samples.

    python bench/quality.py [--strings 60] [--seed 7]

1. OCR: ``--strings`` marketing-style strings rendered with varied fonts, sizes, colours and
   backgrounds (flat, gradient, blurred sample photos), rotated slightly and JPEG-compressed,
   each read through the same ``analyze`` call the pipeline makes. Prints the character
   error rate (edit distance / characters, whitespace-normalised, case-sensitive); target <= 5 %.
2. Labels: the top five labels (with confidence) for each bundled sample, every box (people and
   objects), the people count, and any text read on a photo (there should be none).
3. Moderation: the raw scores and any moderation label for every neutral sample, and
   whether any reaches the default flagging threshold (60).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from pathlib import Path

from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.analyzers import build_analyzer  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.core.intake import prepare_image  # noqa: E402
from bot.samples import samples  # noqa: E402
from bot.samples.banners import fonts, render_banner  # noqa: E402

HEADLINES = [
    "SUMMER SALE", "NEW ARRIVALS", "FREE SHIPPING", "LIMITED OFFER", "BLACK FRIDAY", "FLASH DEAL",
    "Back to School", "Grand Opening", "Holiday Specials", "Spring Collection", "Members Only", "Last Chance",
    "Book your table", "Join the club", "Weekend Market", "Coffee Week", "Winter Clearance", "Cyber Monday",
]
DETAILS = [
    "{p}% OFF everything", "Save up to {p}%", "Orders over ${d}", "Only ${d}.99 today", "Ends {m} {n}",
    "Use code SAVE{p}", "Buy 2, get 1 free", "Call 555-{k:04d}", "www.example.com/deals", "Open daily 9am-{h}pm",
    "Starting at ${d}", "{p}% off selected items", "Free gift with every order", "Register by {m} {n}",
]
SMALL_PRINT = [
    "Terms and conditions apply", "While stocks last", "Online and in stores", "See website for details",
    "Not valid with other offers", "Free returns within 30 days",
]
MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"]
PALETTE = [
    ((230, 57, 70), (255, 255, 255)), ((29, 53, 87), (241, 250, 238)), ((255, 209, 102), (20, 20, 20)),
    ((42, 157, 143), (255, 255, 255)), ((244, 162, 97), (38, 70, 83)), ((255, 255, 255), (0, 0, 0)),
    ((20, 20, 20), (255, 214, 10)), ((131, 56, 236), (255, 255, 255)), ((240, 240, 235), (200, 30, 30)),
]


def phrase(rng: random.Random) -> tuple[str, str]:
    detail = rng.choice(DETAILS).format(
        p=rng.choice([10, 15, 20, 25, 30, 40, 50, 60, 70]), d=rng.randint(5, 199), m=rng.choice(MONTHS),
        n=rng.randint(1, 31), k=rng.randint(0, 9999), h=rng.randint(5, 11),
    )
    return rng.choice(HEADLINES), detail


def background(
    rng: random.Random, size: tuple[int, int], photos: list[Image.Image]
) -> tuple[object, tuple[int, int, int], bool]:
    """(background, ink, is_photo): flat colour, a gradient towards a lighter shade, or a blurred photo."""
    kind = rng.random()
    colour, ink = rng.choice(PALETTE)
    if kind < 0.5:
        return colour, ink, False
    if kind < 0.75:  # vertical gradient from the colour to a shade of it, so the ink keeps its contrast
        shade = tuple(int(c * 0.6 + (255 if sum(colour) > 380 else 0) * 0.4) for c in colour)
        gradient = Image.linear_gradient("L").resize(size)
        return Image.composite(Image.new("RGB", size, colour), Image.new("RGB", size, shade), gradient), ink, False
    photo = rng.choice(photos).filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 4)))
    return photo, (255, 255, 255) if rng.random() < 0.7 else (255, 230, 0), True


def render_case(rng: random.Random, photos: list[Image.Image], font_files: list[str | None]) -> tuple[bytes, str]:
    size = rng.choice([(1200, 628), (1080, 1080), (800, 418), (1024, 512), (640, 640)])
    head, detail = phrase(rng)
    head_px = int(size[0] * rng.uniform(0.04, 0.09))
    detail_px = int(head_px * rng.uniform(0.35, 0.7))
    lines = [(head, head_px), (detail, max(14, detail_px))]
    if rng.random() < 0.5:  # small print, 2-3 % of the width
        lines.append((rng.choice(SMALL_PRINT), max(13, int(size[0] * rng.uniform(0.02, 0.03)))))
    bg, ink, is_photo = background(rng, size, photos)
    band = (0, 0, 0) if is_photo and rng.random() < 0.5 else None  # a dark strip behind text on photos
    image = render_banner(
        lines, size=size, background=bg, color=ink,  # type: ignore[arg-type]
        font_path=rng.choice(font_files), align=rng.choice(["left", "center"]),
        margin=int(size[0] * 0.06), band=band,
    )
    angle = rng.uniform(-5, 5)
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=image.getpixel((2, 2)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=rng.randint(45, 90))
    return buffer.getvalue(), " ".join(text for text, _ in lines)


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalise(text: str) -> str:
    return " ".join(text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show-errors", action="store_true", help="print every misread string")
    args = parser.parse_args()

    analyzer = build_analyzer(Settings(analyzer="local"))
    started = time.perf_counter()
    analyzer.warm_up()  # type: ignore[attr-defined]
    print(f"models loaded in {time.perf_counter() - started:.1f} s")

    sample_list = samples()
    photos = [Image.open(s.path).convert("RGB") for s in sample_list if s.kind == "photo"]
    rng = random.Random(args.seed)
    font_files = fonts()

    # 1. OCR character error rate
    errors = chars = exact = 0
    worst: list[tuple[float, str, str]] = []
    t0 = time.perf_counter()
    for _ in range(args.strings):
        data, truth = render_case(rng, photos, font_files)
        image = prepare_image(data, max_bytes=50_000_000, max_pixels=50_000_000)
        analysis = analyzer.analyze(image)
        lines = sorted(analysis.lines, key=lambda line: (line.box.top, line.box.left))
        read = normalise(" ".join(line.text for line in lines))
        distance = edit_distance(read, normalise(truth))
        errors += distance
        chars += len(normalise(truth))
        exact += distance == 0
        worst.append((distance / max(1, len(truth)), truth, read))
    seconds = time.perf_counter() - t0
    print(f"\nOCR: {args.strings} rendered strings, {chars} characters, {exact} read exactly")
    print(f"OCR character error rate: {100 * errors / max(1, chars):.2f} %  (target <= 5 %)   [{seconds:.1f} s]")
    worst.sort(reverse=True)
    for rate, truth, read in worst[: (len(worst) if args.show_errors else 5)]:
        if rate > 0:
            print(f"  {100 * rate:5.1f} %  expected {truth!r}  read {read!r}")

    # 2. labels and 3. moderation on the bundled samples
    print("\nTop-5 labels per sample (confidence), boxes, people, and text read on photos:")
    threshold = Settings().moderation_min_confidence
    flagged_neutral = 0
    moderation_rows = []
    for sample in sample_list:
        image = prepare_image(sample.path.read_bytes(), max_bytes=50_000_000, max_pixels=50_000_000)
        analysis = analyzer.analyze(image)
        top = ", ".join(f"{label.name} {label.confidence:.0f}" for label in analysis.labels[:5])
        print(f"  {sample.path.name:26s} {top or '(none above the floor)'}")
        for label in analysis.labels:
            for instance in label.instances:
                b = instance.box
                print(f"  {'':26s}   box {label.name} {instance.confidence:.0f}: left {b.left:.2f} top {b.top:.2f} "
                      f"width {b.width:.2f} height {b.height:.2f}")
        if analysis.people:
            print(f"  {'':26s}   people: {analysis.people}")
        if sample.kind == "photo" and analysis.lines:
            print(f"  {'':26s}   text: " + " / ".join(repr(line.text) for line in analysis.lines))
        if sample.neutral:
            flagged = [m for m in analysis.moderation if m.confidence >= threshold]
            flagged_neutral += bool(flagged)
            labels = ", ".join(f"{m.name} {m.confidence:.1f}" for m in analysis.moderation) or "-"
            moderation_rows.append((sample.path.name, analysis.raw["moderation_scores"], labels))
    print(f"\nModeration on neutral samples (flagged at >= {threshold:.0f}):")
    for name, raw, labels in moderation_rows:
        print(f"  {name:26s} open_nsfw={raw['open_nsfw']:.4f}  labels: {labels}")
    print(f"neutral samples flagged: {flagged_neutral} of {len(moderation_rows)}")


if __name__ == "__main__":
    main()
