"""People and objects with boxes: YOLOX-Nano, 80 COCO classes, through ONNX Runtime.

The ImageNet classifier has no "person" class and gives no boxes; this detector gives
both. ``data/yolox-nano.onnx`` is Megvii's stock export of YOLOX-Nano (Apache-2.0,
``data/LICENSE-yolox-nano.txt``; taken from a wheel by ``scripts/take_yolox_nano.py``).

The network takes one 416 × 416 BGR image, 0–255, no normalisation, letterboxed into the
top-left corner of a grey (114) canvas, and returns 3,549 anchor rows (strides 8, 16, 32)
of ``[x, y, w, h, objectness, 80 class probabilities]``, decoded here as YOLOX does.
Boxes are kept at a score (objectness × class probability) of ``MIN_SCORE`` or more,
after per-class non-maximum suppression.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bot.analyzers.local.models import DATA, Decoded, LazyModel, onnx_session
from bot.core.types import BoundingBox

MODEL_FILE = DATA / "yolox-nano.onnx"
INPUT_SIDE = 416
STRIDES = (8, 16, 32)
PAD_VALUE = 114.0
#: Objectness × class probability a box must reach (YOLOX's demo uses 0.3 for display).
MIN_SCORE = 0.3
#: Boxes of one class overlapping more than this (intersection over union) are one object.
NMS_IOU = 0.45
#: Boxes smaller than this share of the image (each side) are noise at this input size.
MIN_SIDE_SHARE = 0.01

#: ``detection_confidence(score) = sigmoid(SLOPE * logit(score) + OFFSET)``: set (not fitted) so that
#: YOLOX's own display threshold, 0.3, lands at 55, just above the store floor (50), and a sure box (0.9)
#: at 95, the range Rekognition gives boxes it draws.
SCORE_SLOPE = 0.901
SCORE_OFFSET = 0.963

#: COCO's 80 classes in the network's order, with the label each becomes:
#: (name, parents, categories), named as Rekognition names them.
COCO_CLASSES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Person", (), ("Person Description",)),
    ("Bicycle", ("Vehicle", "Transportation"), ("Vehicles and Automotive",)),
    ("Car", ("Vehicle", "Transportation"), ("Vehicles and Automotive",)),
    ("Motorcycle", ("Vehicle", "Transportation"), ("Vehicles and Automotive",)),
    ("Airplane", ("Aircraft", "Vehicle", "Transportation"), ("Vehicles and Automotive",)),
    ("Bus", ("Vehicle", "Transportation"), ("Vehicles and Automotive",)),
    ("Train", ("Vehicle", "Transportation"), ("Vehicles and Automotive",)),
    ("Truck", ("Vehicle", "Transportation"), ("Vehicles and Automotive",)),
    ("Boat", ("Watercraft", "Vehicle", "Transportation"), ("Vehicles and Automotive",)),
    ("Traffic Light", ("Light",), ("Vehicles and Automotive",)),
    ("Fire Hydrant", ("Hydrant",), ("Buildings and Architecture",)),
    ("Stop Sign", ("Road Sign", "Sign", "Symbol"), ("Vehicles and Automotive",)),
    ("Parking Meter", (), ("Vehicles and Automotive",)),
    ("Bench", ("Furniture",), ("Furniture and Furnishings",)),
    ("Bird", ("Animal",), ("Animals and Pets",)),
    ("Cat", ("Mammal", "Pet", "Animal"), ("Animals and Pets",)),
    ("Dog", ("Canine", "Mammal", "Pet", "Animal"), ("Animals and Pets",)),
    ("Horse", ("Mammal", "Animal"), ("Animals and Pets",)),
    ("Sheep", ("Mammal", "Animal"), ("Animals and Pets",)),
    ("Cow", ("Cattle", "Livestock", "Mammal", "Animal"), ("Animals and Pets",)),
    ("Elephant", ("Wildlife", "Mammal", "Animal"), ("Animals and Pets",)),
    ("Bear", ("Wildlife", "Mammal", "Animal"), ("Animals and Pets",)),
    ("Zebra", ("Wildlife", "Mammal", "Animal"), ("Animals and Pets",)),
    ("Giraffe", ("Wildlife", "Mammal", "Animal"), ("Animals and Pets",)),
    ("Backpack", ("Bag", "Accessories"), ("Apparel and Accessories",)),
    ("Umbrella", (), ("Apparel and Accessories",)),
    ("Handbag", ("Bag", "Accessories"), ("Apparel and Accessories",)),
    ("Tie", ("Accessories", "Formal Wear", "Clothing"), ("Apparel and Accessories",)),
    ("Suitcase", ("Baggage",), ("Travel and Adventure",)),
    ("Frisbee", ("Toy",), ("Sports",)),
    ("Skis", ("Sport", "Skiing"), ("Sports",)),
    ("Snowboard", ("Sport", "Snowboarding"), ("Sports",)),
    ("Ball", ("Sport",), ("Sports",)),
    ("Kite", ("Toy",), ("Hobbies and Interests",)),
    ("Baseball Bat", ("Sport", "Baseball"), ("Sports",)),
    ("Baseball Glove", ("Sport", "Baseball"), ("Sports",)),
    ("Skateboard", ("Sport", "Skateboarding"), ("Sports",)),
    ("Surfboard", ("Sport", "Surfing"), ("Sports",)),
    ("Tennis Racket", ("Racket", "Sport", "Tennis"), ("Sports",)),
    ("Bottle", (), ("Home and Indoors",)),
    ("Wine Glass", ("Glass", "Alcohol", "Beverage"), ("Food and Beverage",)),
    ("Cup", ("Tableware",), ("Home and Indoors",)),
    ("Fork", ("Cutlery",), ("Home and Indoors",)),
    ("Knife", ("Cutlery",), ("Home and Indoors",)),
    ("Spoon", ("Cutlery",), ("Home and Indoors",)),
    ("Bowl", ("Tableware",), ("Home and Indoors",)),
    ("Banana", ("Fruit", "Produce", "Food", "Plant"), ("Food and Beverage",)),
    ("Apple", ("Fruit", "Produce", "Food", "Plant"), ("Food and Beverage",)),
    ("Sandwich", ("Food",), ("Food and Beverage",)),
    ("Orange", ("Citrus Fruit", "Fruit", "Produce", "Food", "Plant"), ("Food and Beverage",)),
    ("Broccoli", ("Vegetable", "Produce", "Food", "Plant"), ("Food and Beverage",)),
    ("Carrot", ("Vegetable", "Produce", "Food", "Plant"), ("Food and Beverage",)),
    ("Hot Dog", ("Dish", "Meal", "Food"), ("Food and Beverage",)),
    ("Pizza", ("Dish", "Meal", "Food"), ("Food and Beverage",)),
    ("Donut", ("Sweets", "Food"), ("Food and Beverage",)),
    ("Cake", ("Dessert", "Food"), ("Food and Beverage",)),
    ("Chair", ("Furniture",), ("Furniture and Furnishings",)),
    ("Couch", ("Furniture",), ("Furniture and Furnishings",)),
    ("Potted Plant", ("Plant",), ("Plants and Flowers",)),
    ("Bed", ("Furniture",), ("Furniture and Furnishings",)),
    ("Dining Table", ("Table", "Furniture"), ("Furniture and Furnishings",)),
    ("Toilet", ("Bathroom",), ("Home and Indoors",)),
    ("Monitor", ("Screen", "Electronics"), ("Technology and Computing",)),
    ("Laptop", ("Computer", "Electronics"), ("Technology and Computing",)),
    ("Mouse", ("Computer Hardware", "Hardware", "Electronics"), ("Technology and Computing",)),
    ("Remote Control", ("Electronics",), ("Technology and Computing",)),
    ("Computer Keyboard", ("Computer Hardware", "Hardware", "Electronics"), ("Technology and Computing",)),
    ("Mobile Phone", ("Phone", "Electronics"), ("Technology and Computing",)),
    ("Microwave", ("Appliance",), ("Home and Indoors",)),
    ("Oven", ("Appliance",), ("Home and Indoors",)),
    ("Toaster", ("Appliance",), ("Home and Indoors",)),
    ("Sink", (), ("Home and Indoors",)),
    ("Refrigerator", ("Appliance",), ("Home and Indoors",)),
    ("Book", ("Publication",), ("Hobbies and Interests",)),
    ("Clock", (), ("Home and Indoors",)),
    ("Vase", ("Pottery", "Jar"), ("Home and Indoors",)),
    ("Scissors", (), ("Tools and Machinery",)),
    ("Teddy Bear", ("Toy",), ("Hobbies and Interests",)),
    ("Hair Drier", ("Appliance",), ("Home and Indoors",)),
    ("Toothbrush", ("Tool",), ("Home and Indoors",)),
)


@dataclass(frozen=True)
class DetectedObject:
    name: str  # the label it becomes ("Person", "Cup" …)
    box: BoundingBox  # ratios of the image
    score: float  # objectness × class probability, 0-1


@dataclass(frozen=True)
class ObjectResult:
    objects: tuple[DetectedObject, ...]

    def of(self, name: str) -> tuple[DetectedObject, ...]:
        return tuple(o for o in self.objects if o.name == name)


class ObjectDetector(LazyModel[ObjectResult]):
    task = "objects"
    what = "looking for people and objects"

    def _load(self) -> None:
        self.session = onnx_session(MODEL_FILE)
        self.input_name = self.session.get_inputs()[0].name
        _ = self.grid

    @cached_property
    def version(self) -> str:
        digest = hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()[:8]
        return f"yolox-nano-coco80@{digest}"

    @cached_property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(cell x/y offsets [3549, 2], stride of each row [3549, 1]), in the network's row order."""
        cells, strides = [], []
        for stride in STRIDES:
            side = INPUT_SIDE // stride
            ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
            cells.append(np.stack((xs, ys), axis=-1).reshape(-1, 2))
            strides.append(np.full((side * side, 1), stride))
        return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)

    @staticmethod
    def letterbox(image: Decoded) -> np.ndarray:
        """The network's input: the image at most 416 px long, top-left on a grey square."""
        bgr = image.bgr(INPUT_SIDE)  # longest side <= 416, aspect kept
        height, width = bgr.shape[:2]
        canvas = np.full((INPUT_SIDE, INPUT_SIDE, 3), PAD_VALUE, dtype=np.float32)
        canvas[:height, :width] = bgr
        return canvas.transpose(2, 0, 1)[None]

    def _predict(self, image: Decoded) -> ObjectResult:
        batch = self.letterbox(image)
        rows = self.session.run(None, {self.input_name: batch})[0][0]
        fitted = image.fit(INPUT_SIDE)
        return ObjectResult(decode(rows, self.grid, fitted.width, fitted.height))


def detection_confidence(score: float) -> float:
    """A detector score (0-1) as a label confidence (0-100)."""
    p = min(max(score, 1e-6), 1 - 1e-6)
    return round(100.0 / (1.0 + math.exp(-(SCORE_SLOPE * math.log(p / (1 - p)) + SCORE_OFFSET))), 3)


def decode(
    rows: np.ndarray, grid: tuple[np.ndarray, np.ndarray], width: int, height: int
) -> tuple[DetectedObject, ...]:
    """YOLOX's raw rows → objects, boxes as ratios of the ``width`` × ``height`` image placed top-left."""
    cells, strides = grid
    class_scores = rows[:, 5:] * rows[:, 4:5]
    best = class_scores.argmax(axis=1)
    score = class_scores[np.arange(len(rows)), best]
    keep = score >= MIN_SCORE
    if not keep.any():
        return ()
    rows, best, score, cells, strides = rows[keep], best[keep], score[keep], cells[keep], strides[keep]
    centre = (rows[:, :2] + cells) * strides
    size = np.exp(np.clip(rows[:, 2:4], -10, 10)) * strides
    boxes = np.concatenate((centre - size / 2, centre + size / 2), axis=1)  # x1 y1 x2 y2, input pixels
    boxes = np.clip(boxes, 0, [width, height, width, height])
    import cv2  # the engine's extra already needs OpenCV (faces); its per-class NMS is the standard one

    xywh = np.column_stack((boxes[:, :2], boxes[:, 2:] - boxes[:, :2]))
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), best.tolist(), MIN_SCORE, NMS_IOU)
    found: list[DetectedObject] = []
    for i in np.asarray(kept, dtype=np.int64).reshape(-1):
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        if (x2 - x1) < MIN_SIDE_SHARE * width or (y2 - y1) < MIN_SIDE_SHARE * height:
            continue
        box = BoundingBox(left=x1 / width, top=y1 / height, width=(x2 - x1) / width, height=(y2 - y1) / height)
        found.append(DetectedObject(COCO_CLASSES[int(best[i])][0], box, float(score[i])))
    found.sort(key=lambda o: -o.score)
    return tuple(found)
