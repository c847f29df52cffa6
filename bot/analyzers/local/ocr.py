"""Scene and document text with RapidOCR's bundled PP-OCR models (det + cls + rec, ONNX).

Lines come from the detector's quadrilaterals; words are cut from each line at its
spaces, their extent taken from the recogniser's per-character positions (or, when
those do not line up with the text, from the share of characters), so a word's
polygon follows the line's slant. Every line and word is kept: there is no cap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.analyzers.local.models import MAX_WORKING_SIDE, Decoded, LazyModel, package_version
from bot.core.types import BoundingBox, TextDetection

#: The detector sees the image scaled so its longest side is at most this (PP-OCR's
#: default is "shortest side at least 736", which makes 2 MP photos slow for little gain).
DETECTION_SIDE = 960
#: Lines the recogniser scores below this (0-1) are dropped, as RapidOCR does by default.
MIN_LINE_SCORE = 0.5

_WORTH_KEEPING = re.compile(r"\w", re.UNICODE)

Point = tuple[float, float]


@dataclass(frozen=True)
class TextResult:
    detections: tuple[TextDetection, ...]

    @property
    def lines(self) -> tuple[TextDetection, ...]:
        return tuple(d for d in self.detections if d.kind == "LINE")


class TextReader(LazyModel[TextResult]):
    task = "text"
    what = "reading text in this image"

    def _load(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(
            params={
                "Global.log_level": "error",
                "Global.max_side_len": MAX_WORKING_SIDE,
                "Global.text_score": MIN_LINE_SCORE,
                "Global.return_word_box": True,
                "Global.return_single_char_box": True,
                "Det.limit_type": "max",
                "Det.limit_side_len": DETECTION_SIDE,
                "EngineConfig.onnxruntime.intra_op_num_threads": 1,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
            }
        )
        # Load all three models now (RapidOCR would otherwise load them on first use).
        self.engine._load_det_model()  # type: ignore[no-untyped-call]
        self.engine._load_cls_model()  # type: ignore[no-untyped-call]
        self.engine._load_rec_model()  # type: ignore[no-untyped-call]

    @property
    def version(self) -> str:
        det = "PP-OCRv6 small"
        if self.loaded:
            cfg = self.engine.cfg
            det = f"{getattr(cfg.Det.ocr_version, 'value', cfg.Det.ocr_version)} " + str(
                getattr(cfg.Det.model_type, "value", cfg.Det.model_type)
            )
        return f"rapidocr {package_version('rapidocr')} ({det} det/rec, mobile cls)"

    def _predict(self, image: Decoded) -> TextResult:
        array = image.bgr(MAX_WORKING_SIDE)
        height, width = array.shape[:2]
        result: Any = self.engine(array)
        boxes = getattr(result, "boxes", None)
        texts = getattr(result, "txts", None)
        if boxes is None or texts is None or len(texts) == 0:
            return TextResult(())
        scores = result.scores
        word_results = result.word_results if len(result.word_results) == len(texts) else [()] * len(texts)
        return TextResult(assemble(boxes, texts, scores, word_results, width, height))


def assemble(
    boxes: Any,
    texts: Sequence[str],
    scores: Sequence[float],
    char_results: Sequence[Any],
    width: int,
    height: int,
) -> tuple[TextDetection, ...]:
    """LINEs (ids 0..n-1, reading order) then their WORDs pointing back through ``parent_id``."""
    lines: list[TextDetection] = []
    words: list[TextDetection] = []
    kept: list[tuple[int, str, list[Point], Any, float]] = []
    for box, text, score, chars in zip(boxes, texts, scores, char_results, strict=False):
        text = " ".join(text.split())
        if not text or not _WORTH_KEEPING.search(text):
            continue
        quad = [(float(x), float(y)) for x, y in np.asarray(box, dtype=np.float64).reshape(4, 2)]
        line_id = len(kept)
        kept.append((line_id, text, quad, chars, float(score)))
        lines.append(_detection(line_id, "LINE", text, float(score), quad, width, height, None))
    next_id = len(kept)
    for line_id, text, quad, chars, score in kept:
        for word, word_score, word_quad in split_words(text, quad, chars, score):
            words.append(_detection(next_id, "WORD", word, word_score, word_quad, width, height, line_id))
            next_id += 1
    return tuple(lines + words)


def split_words(text: str, quad: list[Point], chars: Any, line_score: float) -> list[tuple[str, float, list[Point]]]:
    """Cut a line into words; each word's quad is a slice of the line's quad."""
    tokens = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if not tokens:
        return []
    char_boxes, char_scores = _char_positions(text, quad, chars)
    out: list[tuple[str, float, list[Point]]] = []
    visible = 0  # index among non-space characters
    for word, start, end in tokens:
        n = end - start
        if char_boxes is not None:
            first, last = char_boxes[visible], char_boxes[visible + n - 1]
            t0, t1 = first[0], last[1]
            score = float(np.mean(char_scores[visible : visible + n]))
        else:
            t0, t1 = start / len(text), end / len(text)
            score = line_score
        visible += n
        out.append((word, score, _slice(quad, t0, t1)))
    return out


def _char_positions(text: str, quad: list[Point], chars: Any) -> tuple[list[tuple[float, float]] | None, list[float]]:
    """Per visible character, its (start, end) as fractions along the line, if RapidOCR gave them."""
    visible = [c for c in text if not c.isspace()]
    try:
        items = [c for c in chars if c and c[2] is not None]
    except (TypeError, IndexError):
        return None, []
    if len(items) != len(visible) or not items:
        return None, []
    origin = np.array(quad[0])
    axis = np.array(quad[1]) - origin
    length2 = float(axis @ axis)
    if length2 <= 0:
        return None, []
    spans: list[tuple[float, float]] = []
    scores: list[float] = []
    for _char, score, box in items:
        points = np.asarray(box, dtype=np.float64).reshape(-1, 2) - origin
        projections = points @ axis / length2
        spans.append((float(np.clip(projections.min(), 0, 1)), float(np.clip(projections.max(), 0, 1))))
        scores.append(float(score))
    return spans, scores


def _slice(quad: list[Point], t0: float, t1: float) -> list[Point]:
    """The part of quad (top-left, top-right, bottom-right, bottom-left) between fractions t0 and t1."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad

    def lerp(a: Point, b: Point, t: float) -> Point:
        return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)

    top_left, top_right = lerp((x0, y0), (x1, y1), t0), lerp((x0, y0), (x1, y1), t1)
    bottom_left, bottom_right = lerp((x3, y3), (x2, y2), t0), lerp((x3, y3), (x2, y2), t1)
    return [top_left, top_right, bottom_right, bottom_left]


def _detection(
    ident: int, kind: str, text: str, score: float, quad: list[Point], width: int, height: int, parent: int | None
) -> TextDetection:
    polygon = tuple((_clip(x / width), _clip(y / height)) for x, y in quad)
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    box = BoundingBox(left=min(xs), top=min(ys), width=max(xs) - min(xs), height=max(ys) - min(ys))
    return TextDetection(
        id=ident,
        kind=kind,  # type: ignore[arg-type]
        text=text,
        confidence=round(min(100.0, max(0.0, score * 100.0)), 3),
        box=box,
        parent_id=parent,
        polygon=polygon,
    )


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))
