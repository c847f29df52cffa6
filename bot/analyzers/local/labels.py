"""General labels from an ImageNet-1k classifier, mapped through WordNet hypernyms.

EfficientNet-Lite0 (converted once to ONNX by ``scripts/convert_efficientnet_lite0.py``)
gives 1,000 fine-grained class probabilities, averaged over three views of the image (the
centre crop it was trained on, its mirror image, and the whole frame, so a subject off
centre still counts). ``data/label_map.json`` (built by ``scripts/build_label_map.py``)
lists, for each class, the general labels it stands for ("tabby" → Cat, Mammal, Pet,
Animal). A label's probability is the sum over every class under it (classes below
``CLASS_FLOOR`` left out), so a parent collects what its children share and is always at
least as sure as each of them.

A 1000-way softmax is not a confidence: on a clear photo of a rocket it splits 0.48 between
"missile" and "projectile". ``calibrated`` maps a label's probability to how often a label
at that probability was right (a logistic curve on its log-odds, fitted by
``scripts/fit_label_calibration.py``; the fit and its data are described there), which is
what Rekognition's confidences mean.
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
#: ``calibrated(p) = sigmoid(CALIBRATION_SLOPE * logit(p) + CALIBRATION_OFFSET)``, fitted by
#: ``scripts/fit_label_calibration.py`` (see its docstring for the data and the result).
CALIBRATION_SLOPE = 0.656
CALIBRATION_OFFSET = 0.679
#: Label probabilities below this are not worth a label at any calibration.
MIN_PROBABILITY = 0.005


def calibrated(probability: np.ndarray) -> np.ndarray:
    """Confidence 0-100 that a label with this summed class probability is right."""
    p = np.clip(probability.astype(np.float64), 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p))
    return 100.0 / (1.0 + np.exp(-(CALIBRATION_SLOPE * logit + CALIBRATION_OFFSET)))


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
    probabilities: np.ndarray  # [1000], sums to 1 (the mean over the views)
    label_probability: dict[str, float]  # general label → summed class probability 0..1
    label_confidence: dict[str, float]  # general label → calibrated confidence 0..100
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
        """[3 views, 3, 224, 224]: the centre crop, its mirror image, and the whole frame squeezed."""
        width, height = image.size
        scale = RESIZE_SIZE / min(width, height)
        resized = image.resize(
            (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale))),
            Image.Resampling.BICUBIC,
            reducing_gap=3.0,
        )
        left = (resized.width - INPUT_SIZE) // 2
        top = (resized.height - INPUT_SIZE) // 2
        crop = np.asarray(resized.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE)), dtype=np.float32)
        whole = np.asarray(
            image.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC, reducing_gap=3.0), dtype=np.float32
        )
        views = np.stack((crop, crop[:, ::-1], whole))
        return ((views - 127.0) / 128.0).transpose(0, 3, 1, 2)  # EfficientNet-Lite's own scaling

    def _predict(self, image: Decoded) -> Classification:
        batch = self.preprocess(image.fit(1024))
        logits = self.session.run(None, {self.input_name: batch})[0].astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = (exp / exp.sum(axis=1, keepdims=True)).mean(axis=0).astype(np.float32)
        sums = self.map.matrix @ np.where(probabilities >= CLASS_FLOOR, probabilities, 0.0).astype(np.float32)
        kept = np.flatnonzero(sums >= MIN_PROBABILITY)
        confidence = calibrated(sums[kept])
        names = self.map.names
        label_probability = {names[i]: float(sums[i]) for i in kept}
        label_confidence = {names[i]: float(c) for i, c in zip(kept, confidence, strict=True)}
        order = np.argsort(-probabilities)[:5]
        top = tuple((self.map.class_names[i], round(float(probabilities[i]), 4)) for i in order)
        return Classification(probabilities, label_probability, label_confidence, top, self.class_index)

    def describe(self, name: str) -> dict[str, Any]:
        info = self.map.info(name)
        return {"parents": info.parents, "categories": info.categories}
