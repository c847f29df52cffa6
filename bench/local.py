"""End-to-end throughput and peak memory of the offline engine on 1-2 MP photos.

    python bench/local.py [--images 40] [--callers 4] [--faces]

Builds 1-2 megapixel JPEGs from the bundled samples (resized photos and banners, some
with text over them), prepares each with the same intake the pipeline uses, then calls
``analyze`` from ``--callers`` threads at once (labels + text + moderation + face
detection; embeddings too with ``--faces``). The engine bounds its own CPU work to the
cores, so more callers than cores only queue. Prints images/s (target >= 2 on 2 cores),
per-task median times and the process's peak RSS (target < 1.5 GiB).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.analyzers import build_analyzer  # noqa: E402
from bot.analyzers.local.models import available_cores  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.core.intake import prepare_image  # noqa: E402
from bot.core.types import PreparedImage  # noqa: E402
from bot.samples import sample_paths  # noqa: E402
from bot.samples.banners import fonts  # noqa: E402

SIZES = [(1600, 1200), (1280, 960), (1920, 1080), (1200, 1200), (1500, 1000)]  # 1.2-2.1 MP


def photos(count: int) -> list[bytes]:
    sources = [Image.open(p).convert("RGB") for p in sample_paths()]
    font_file = fonts()[0]
    out = []
    for i in range(count):
        image = sources[i % len(sources)].resize(SIZES[i % len(SIZES)], Image.Resampling.BICUBIC)
        if i % 3 == 0 and font_file:  # a caption, as marketing photos often have
            from PIL import ImageFont

            draw = ImageDraw.Draw(image)
            draw.text((60, image.height - 160), f"Offer {i}: 20% off today", font=ImageFont.truetype(font_file, 72),
                      fill=(255, 255, 255), stroke_width=3, stroke_fill=(0, 0, 0))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=88)
        out.append(buffer.getvalue())
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--faces", action="store_true", help="also compute face embeddings (IMGBOT_FACES=1)")
    args = parser.parse_args()

    print(f"cores available: {available_cores()} (os.cpu_count={os.cpu_count()}), callers: {args.callers}")
    data = photos(args.images)
    prepared: list[PreparedImage] = [prepare_image(d, max_bytes=50_000_000, max_pixels=50_000_000) for d in data]
    megapixels = statistics.mean(p.width * p.height / 1e6 for p in prepared)
    print(f"{len(prepared)} JPEG photos, mean {megapixels:.2f} MP, mean {statistics.mean(map(len, data)) / 1e6:.2f} MB")

    analyzer = build_analyzer(Settings(analyzer="local", faces=args.faces))
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    first = analyzer.analyze(prepared[0])  # pays for loading the models this configuration uses
    print(f"first image (loads models): {time.perf_counter() - started:.2f} s")

    timings: list[dict[str, float]] = []
    lock = threading.Lock()
    queue = list(prepared)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                image = queue.pop()
            analysis = analyzer.analyze(image)
            with lock:
                timings.append(analysis.raw["timings_ms"])

    cpu_started = time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_per_image = (time.process_time() - cpu_started) / len(prepared)

    print(f"\nthroughput: {len(prepared) / elapsed:.2f} images/s ({len(prepared)} images in {elapsed:.1f} s)  "
          f"(target >= 2 images/s on 2 cores)")
    load = os.getloadavg()[0]
    print(f"CPU time per image: {cpu_per_image:.3f} core-seconds -> at most {available_cores() / cpu_per_image:.1f} "
          f"images/s if {available_cores()} cores were free (1-min load average now {load:.1f}: other processes "
          "on this machine compete for the same cores)")
    for task in sorted(timings[0]):
        values = [t[task] for t in timings if task in t]
        p90 = sorted(values)[int(0.9 * len(values))]
        print(f"  {task:12s} median {statistics.median(values):6.1f} ms   p90 {p90:6.1f} ms")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (before models {rss_before:.0f} MiB)  (target < 1536 MiB)")
    print(f"model versions: {first.model_versions}")


if __name__ == "__main__":
    main()
