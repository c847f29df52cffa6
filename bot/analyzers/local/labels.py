"""General labels from an ImageNet-1k classifier, mapped through WordNet hypernyms.

EfficientNet-Lite0 (converted once to ONNX by ``scripts/convert_efficientnet_lite0.py``)
gives 1,000 fine-grained class probabilities. ``data/label_map.json`` (built by
``scripts/build_label_map.py``) lists, for each class, the general labels it stands for
("tabby" → Cat, Mammal, Pet, Animal). A label's confidence is the summed probability of
every class under it (classes below ``CLASS_FLOOR`` left out), so a parent is always at
least as confident as its child and appears as a label of its own, as Rekognition's do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from bot.analyzers.local.models import DATA, Decoded, LazyModel, onnx_session

MODEL_FILE = DATA / "efficientnet-lite0.onnx"
MAP_FILE = DATA / "label_map.json"
INPUT_SIZE = 224
RESIZE_SIZE = 256  # shorter side before the centre crop (crop ratio 0.875, as in training)
#: Classes below this probability are left out of the sums: "Animal" spans 398 classes, and on
#: an image the model does not know (a banner, a texture) their tiny shares would add up.
CLASS_FLOOR = 0.02


@dataclass(frozen=True)
class LabelInfo:
    parents: tuple[str, ...]
    categories: tuple[str, ...]


@dataclass(frozen=True)
class LabelMap:
    """Class index → general labels, and each label's parents and categories."""

    class_names: tuple[str, ...]
    class_labels: tuple[tuple[str, ...], ...]
    labels: dict[str, LabelInfo]

    @classmethod
    def load(cls) -> LabelMap:
        data = json.loads(MAP_FILE.read_text(encoding="utf-8"))
        classes = data["classes"]
        return cls(
            class_names=tuple(c["name"] for c in classes),
            class_labels=tuple(tuple(c["labels"]) for c in classes),
            labels={
                name: LabelInfo(tuple(info["parents"]), tuple(info["categories"]))
                for name, info in data["labels"].items()
            },
        )

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted({name for labels in self.class_labels for name in labels}))

    @cached_property
    def matrix(self) -> np.ndarray:
        """[labels, classes] 0/1 matrix: label confidence = matrix @ class probabilities."""
        index = {name: i for i, name in enumerate(self.names)}
        matrix = np.zeros((len(self.names), len(self.class_labels)), dtype=np.float32)
        for column, labels in enumerate(self.class_labels):
            for name in labels:
                matrix[index[name], column] = 1.0
        return matrix

    def info(self, name: str) -> LabelInfo:
        return self.labels.get(name, LabelInfo((), ()))


@dataclass(frozen=True)
class Classification:
    probabilities: np.ndarray  # [1000], sums to 1
    label_confidence: dict[str, float]  # general label → 0..100
    top: tuple[tuple[str, float], ...]  # raw ImageNet class names, for ``Analysis.raw``
    class_index: dict[str, tuple[int, ...]]

    def class_probability(self, *names: str) -> float:
        """Summed probability of the named raw ImageNet classes (used by moderation)."""
        return float(sum(self.probabilities[i] for name in names for i in self.class_index.get(name, ())))


class ImageNetLabeler(LazyModel[Classification]):
    task = "labels"
    what = "labelling this image"

    def _load(self) -> None:
        self.map = LabelMap.load()
        index: dict[str, list[int]] = {}
        for i, name in enumerate(self.map.class_names):
            index.setdefault(name, []).append(i)
        self.class_index = {name: tuple(found) for name, found in index.items()}
        _ = self.map.matrix
        self.session = onnx_session(MODEL_FILE)
        self.input_name = self.session.get_inputs()[0].name

    @cached_property
    def version(self) -> str:
        digest = hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()[:8]
        return f"efficientnet-lite0-imagenet1k-fp32@{digest} + wordnet-3.0-label-map"

    @staticmethod
    def preprocess(image: Image.Image) -> np.ndarray:
        width, height = image.size
        scale = RESIZE_SIZE / min(width, height)
        resized = image.resize(
            (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale))),
            Image.Resampling.BICUBIC,
            reducing_gap=3.0,
        )
        left = (resized.width - INPUT_SIZE) // 2
        top = (resized.height - INPUT_SIZE) // 2
        crop = resized.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
        array = (np.asarray(crop, dtype=np.float32) - 127.0) / 128.0  # EfficientNet-Lite's own scaling
        return array.transpose(2, 0, 1)[None]

    def _predict(self, image: Decoded) -> Classification:
        batch = self.preprocess(image.fit(1024))
        logits = self.session.run(None, {self.input_name: batch})[0][0].astype(np.float64)
        exp = np.exp(logits - logits.max())
        probabilities = (exp / exp.sum()).astype(np.float32)
        sums = self.map.matrix @ np.where(probabilities >= CLASS_FLOOR, probabilities, 0.0).astype(np.float32)
        confidence = {
            name: float(min(100.0, value * 100.0))
            for name, value in zip(self.map.names, sums, strict=True)
            if value >= 0.005
        }
        order = np.argsort(-probabilities)[:5]
        top = tuple((self.map.class_names[i], round(float(probabilities[i]), 4)) for i in order)
        return Classification(probabilities, confidence, top, self.class_index)

    def describe(self, name: str) -> dict[str, Any]:
        info = self.map.info(name)
        return {"parents": info.parents, "categories": info.categories}
