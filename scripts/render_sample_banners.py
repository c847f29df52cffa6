"""Render the sample banners committed in ``bot/samples/`` (run again after changing them).

    python scripts/render_sample_banners.py

The photo-backed banner uses the public-domain coffee sample as its background.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageFilter

from bot.samples.banners import fonts, render_banner

SAMPLES = Path(__file__).resolve().parents[1] / "bot" / "samples"


def main() -> None:
    available = fonts()
    bold = available[0]
    serif = next((f for f in available if f and "Serif-Bold" in f), bold)
    banners = {
        "banner-summer-sale.png": render_banner(
            [("SUMMER SALE", 120), ("50% OFF", 96), ("this weekend only", 44)],
            background=(230, 57, 70), font_path=bold,
        ),
        "banner-new-arrivals.png": render_banner(
            [("New Arrivals", 96), ("Shop the autumn collection", 48)],
            background=(29, 53, 87), color=(241, 250, 238), font_path=serif, align="center",
        ),
        "banner-free-shipping.png": render_banner(
            [("FREE SHIPPING", 88), ("on orders over $50", 52)],
            size=(1080, 1080), background=(255, 209, 102), color=(20, 20, 20), font_path=bold, align="center",
        ),
    }
    coffee = Image.open(SAMPLES / "coffee.jpg").filter(ImageFilter.GaussianBlur(2))
    banners["banner-coffee-week.jpg"] = render_banner(
        [("COFFEE WEEK", 110), ("Buy one, get one free", 54)],
        background=coffee, color=(255, 255, 255), font_path=bold, band=(60, 36, 21), align="center",
    )
    for name, image in banners.items():
        path = SAMPLES / name
        if name.endswith(".jpg"):
            image.save(path, quality=88, optimize=True)
        else:
            image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path, optimize=True)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
