"""A deterministic, scriptable ``Analyzer`` for tests. Never registered: no user can pick it.

By default it labels an image by its dominant colour (so different images get
different, predictable labels); ``script`` sets exactly what one image contains
and ``fail`` makes the next analyses of one image raise.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence

from PIL import Image

from bot.core.intake import sha256_of
from bot.core.types import (
    Analysis,
    BoundingBox,
    Face,
    Label,
    LabelInstance,
    ModerationLabel,
    PreparedImage,
    TextDetection,
)
from bot.errors import ImgbotError

LabelSpec = tuple[str, float] | tuple[str, float, Sequence[str]]


class FakeAnalyzer:
    name = "fake"

    def __init__(self, *, faces: bool = False, delay: float = 0.0) -> None:
        self.faces = faces
        self.delay = delay
        self.calls = 0
        self.analysed: list[str] = []
        self._scripts: dict[str, Analysis] = {}
        self._failures: dict[str, list[ImgbotError]] = {}
        self._lock = threading.Lock()

    def script(
        self,
        image: bytes | str,
        *,
        labels: Sequence[LabelSpec] = (),
        text: Sequence[str] = (),
        moderation: Sequence[tuple[str, float] | tuple[str, float, str]] = (),
        faces: int = 0,
        people: int = 0,
    ) -> None:
        """Decide what the image (its bytes or SHA-256) contains."""
        sha = image if isinstance(image, str) else sha256_of(image)
        self._scripts[sha] = build_analysis(labels=labels, text=text, moderation=moderation, faces=faces,
                                            faces_requested=self.faces, people=people)

    def fail(self, image: bytes | str, error: ImgbotError, times: int = 1) -> None:
        sha = image if isinstance(image, str) else sha256_of(image)
        self._failures.setdefault(sha, []).extend([error] * times)

    def analyze(self, image: PreparedImage) -> Analysis:
        with self._lock:
            self.calls += 1
            self.analysed.append(image.sha256)
            failures = self._failures.get(image.sha256)
            failure = failures.pop(0) if failures else None
        if self.delay:
            time.sleep(self.delay)
        if failure is not None:
            raise failure
        scripted = self._scripts.get(image.sha256)
        if scripted is not None:
            return scripted
        colour = _dominant_colour_name(image.analysis_bytes)
        return build_analysis(labels=[(colour, 91.0, ("Color",)), ("Pattern", 62.0)], faces_requested=self.faces)


def build_analysis(
    *,
    labels: Sequence[LabelSpec] = (),
    text: Sequence[str] = (),
    moderation: Sequence[tuple[str, float] | tuple[str, float, str]] = (),
    faces: int = 0,
    faces_requested: bool = False,
    people: int = 0,
) -> Analysis:
    built_labels = []
    if people:  # a Person label with one box per person, side by side, as a detector gives them
        boxes = tuple(LabelInstance(BoundingBox(i / people, 0.2, 0.8 / people, 0.7), 95.0) for i in range(people))
        built_labels.append(Label(name="Person", confidence=95.0, categories=("Person Description",),
                                  instances=boxes))
    for spec in labels:
        name, confidence = spec[0], float(spec[1])
        parents = tuple(spec[2]) if len(spec) > 2 else ()  # type: ignore[misc]
        built_labels.append(Label(name=name, confidence=confidence, parents=parents,
                                  instances=(LabelInstance(BoundingBox(0.1, 0.1, 0.5, 0.5), confidence),)))
    detections: list[TextDetection] = []
    next_id = 0
    for line_no, line in enumerate(text):
        line_id = next_id
        top = 0.05 + 0.1 * line_no
        detections.append(TextDetection(line_id, "LINE", line, 99.0, BoundingBox(0.05, top, 0.9, 0.08)))
        next_id += 1
        for word in line.split():
            detections.append(TextDetection(next_id, "WORD", word, 98.0, BoundingBox(0.05, top, 0.1, 0.08),
                                            parent_id=line_id))
            next_id += 1
    built_moderation = [
        ModerationLabel(name=spec[0], confidence=float(spec[1]),
                        parent_name=spec[2] if len(spec) > 2 else None,  # type: ignore[misc]
                        taxonomy_level=2 if len(spec) > 2 else 1)
        for spec in moderation
    ]
    built_faces = [Face(box=BoundingBox(0.3, 0.2, 0.2, 0.3), confidence=99.5) for _ in range(faces)]
    return Analysis(
        provider="fake", model_versions={"fake": "1"}, labels=tuple(built_labels), text=tuple(detections),
        moderation=tuple(built_moderation), faces=tuple(built_faces), faces_requested=faces_requested,
        raw={"fake": True, "DetectText": {"TextDetections": [  # as Rekognition's raw answer holds the text
            {"DetectedText": d.text, "Type": d.kind, "Id": d.id, "ParentId": d.parent_id} for d in detections]}},
    )


def _dominant_colour_name(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        r, g, b = image.convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    names = {"Red": (r, -g, -b), "Green": (g, -r, -b), "Blue": (b, -r, -g)}
    if max(r, g, b) - min(r, g, b) < 30:
        return "White" if r > 200 else "Black" if r < 50 else "Gray"
    return max(names, key=lambda name: names[name])
