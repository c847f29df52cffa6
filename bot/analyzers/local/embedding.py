"""Image embeddings for "more like this" and for confirming near-duplicates, from the labeller's network.

The engine's EfficientNet-Lite0 (``data/efficientnet-lite0.onnx``) ends in a global average
pool of 1,280 channels, a reshape and one Gemm to the 1,000 ImageNet logits. The pooled
vector is a good generic image embedding. No second model file is shipped: at load time the
graph is read with the ``onnx`` package, the Gemm's input (``[N, 1280]``) is appended to
``graph.output`` and the edited model is handed to ONNX Runtime as bytes, so ONE session
returns both the logits and the features (``ImageEmbedder.run``); the labeller could reuse it.
The input is prepared exactly as the labeller prepares it (``ImageNetLabeler.preprocess``:
shorter side to 256, centre crop 224, (x - 127) / 128), so one inference can serve both.

Storage. The 1,280-d vector is reduced to ``EMBEDDING_DIM`` = 256 by a FIXED random
orthogonal projection (QR of a Gaussian matrix drawn from NumPy's frozen legacy
``RandomState(PROJECTION_SEED)``, signs fixed so the result does not depend on LAPACK), then
L2-normalised, and stored as 256 little-endian float16 = 512 bytes (``to_bytes``): 512 MB for
a million images, where 1,280 float32 would take 5.1 GB. By Johnson–Lindenstrauss a random
projection to k dimensions keeps the cosine of two unit vectors within about
``(1 - cos²) / sqrt(k)``, so it is most exact where duplicates live, near cos = 1. Measured
(1,280-d vs 256-d) on the 9 bundled samples and 90 edited copies, 4,851 pairs: mean |Δcos|
0.041, 95th percentile 0.115, worst 0.18 (unrelated pairs around cos 0.1-0.3); on the 553
pairs with cos ≥ 0.8, mean 0.006 and worst 0.059. Other seeds: mean 0.020-0.048, worst
0.10-0.19 (512-d would halve the error). float16 storage moves a cosine by < 0.0001.
A new seed, dimension or preprocessing changes every vector: ``version`` names all three.

Calibration (cosine of the 256-d embeddings of a 160 px input; pHash = 64-bit ``imagehash.phash`` of a
512 px copy, as ``bot.core.looks`` computes it; 9 samples per row)::

    edit of the same image         pHash min/med/max   cos 1280-d min/med   cos 256-d min/med   rule
    resize 1/2                        0 /  0 /  0        0.987 / 0.999        0.987 / 0.999     9/9
    JPEG q50                          0 /  0 /  2        0.943 / 0.993        0.942 / 0.993     9/9
    crop 3 % each edge                0 /  6 / 12        0.933 / 0.975        0.926 / 0.976     9/9
    crop 5 % each edge                4 / 10 / 18        0.897 / 0.959        0.883 / 0.963     9/9
    caption strip +12 % height       12 / 16 / 28        0.833 / 0.944        0.842 / 0.938     8/9
    brightness +30 %                  0 /  0 /  6        0.970 / 0.988        0.970 / 0.986     9/9
    autocontrast (2 % cutoff)         0 /  0 /  4        0.736 / 0.975        0.710 / 0.978     9/9  (by pHash)
    horizontal flip                  30 / 32 / 32        0.949 / 0.969        0.942 / 0.970     0/9
    Gaussian blur r=1                 0 /  0 /  2        0.963 / 0.988        0.961 / 0.990     9/9
    crop 5 % + 1/2 + JPEG q60         2 / 10 / 18        0.845 / 0.927        0.844 / 0.924     9/9

    different images                                    pHash min   cos 256-d max          rule
    the 36 pairs of samples                                18       0.799 (median 0.14)    0/36
    top-left vs bottom-right quarter of each sample        28       0.89 (flat banner);    0/9
                                                                    photos 0.39-0.60
    disjoint halves/quarters of one sample (72 pairs)      20       0.982                  1/72
    halves/quarters of different samples (2,304 pairs)     14       0.869                  0/2304
    same banner template, other words (3 pairs)             8       0.960                  3/3  <- see below

(First calibrated at the classifier's 224 px input; at 160 px the network costs half the CPU, 5.3
instead of 9.7 ms, and every figure above is as good or better, so the rule below was kept.)

Rule (``is_near_duplicate``): pHash distance ≤ ``DUPLICATE_HASH_ALONE`` (6), or pHash distance
≤ ``DUPLICATE_HASH_WITH_EMBEDDING`` (24) and cosine ≥ ``DUPLICATE_MIN_COSINE`` (0.82).
It accepts 78 of the 81 edited copies (flips aside: their pHash is 30+, as for unrelated
images) and 1 of the 2,412 pairs of different images (the two top quarters of the flat
yellow "free shipping" banner: pHash 20, cosine 0.97, all background). Why these numbers: no
different image came within 14 bits, but the embedding alone cannot tell apart flat text
banners (their fragments reach 0.90-0.99), so the gate stays at 24, below the 26-28 bits
where such fragments and two halves of one photo (cat: 26 bits, 0.817) begin; under the gate
the highest cosine of other different images is 0.72 and the lowest of single edits 0.86;
0.82 also keeps every pair of whole samples (at most 0.79) below it on cosine alone.
Banners made from one template with other words (pHash 8-18, cosine 0.93-0.96) pass both
signals: telling them apart needs their text (OCR), not their pixels.

"More like this": related pictures are closer, though the model knows ImageNet objects,
not layouts: the three flat text banners score 0.76-0.79 with each other, the photo banner
0.52 with the coffee photo it was made from (0.11-0.32 with the other photos), unrelated
photos -0.01-0.24 (mean 0.13). Rank by cosine; do not read 0.5 as "similar".
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from PIL import Image

from bot.analyzers.local.labels import MODEL_FILE
from bot.analyzers.local.models import Decoded, LazyModel, _to_rgb
from bot.core.nearby import (
    DUPLICATE_HASH_ALONE,
    DUPLICATE_HASH_WITH_EMBEDDING,
    DUPLICATE_MIN_COSINE,
    is_near_duplicate,
)
from bot.core.vectors import from_bytes

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("imgbot.analyzers.local")

__all__ = [
    "DUPLICATE_HASH_ALONE",
    "DUPLICATE_HASH_WITH_EMBEDDING",
    "DUPLICATE_MIN_COSINE",
    "EMBEDDING_DIM",
    "FEATURE_DIM",
    "ImageEmbedder",
    "cosine",
    "from_bytes",
    "is_near_duplicate",
    "project",
    "projection",
    "to_bytes",
]

#: Width of the network's globally pooled features (the final Gemm's input).
FEATURE_DIM: Final = 1280
#: Width of the stored embedding.
EMBEDDING_DIM: Final = 256
#: Seed of the fixed projection; changing it changes every stored vector (and ``version``).
PROJECTION_SEED: Final = 20240601
#: Longest side the embedder looks at, as the labeller does (the crop is 224 px anyway).
WORKING_SIDE: Final = 1024
#: The square the network sees: 160 px (5.3 ms of CPU) rather than the classifier's 224 (9.7 ms).
INPUT_SIDE: Final = 160


def preprocess(image: Image.Image) -> np.ndarray:
    """As the labeller prepares its input (shorter side scaled, centre crop, (x - 127) / 128), at ``INPUT_SIDE``."""
    width, height = image.size
    scale = round(INPUT_SIDE * 256 / 224) / min(width, height)
    resized = image.resize((max(INPUT_SIDE, round(width * scale)), max(INPUT_SIDE, round(height * scale))),
                           Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (resized.width - INPUT_SIDE) // 2, (resized.height - INPUT_SIDE) // 2
    crop = resized.crop((left, top, left + INPUT_SIDE, top + INPUT_SIDE))
    array = (np.asarray(crop, dtype=np.float32) - 127.0) / 128.0
    return array.transpose(2, 0, 1)[None]
#: Stored byte order and type.
STORED_DTYPE: Final = np.dtype("<f2")

# --- the projection and storage --------------------------------------------------------

_projection: np.ndarray | None = None
_projection_lock = threading.Lock()


def projection() -> np.ndarray:
    """The fixed ``[FEATURE_DIM, EMBEDDING_DIM]`` float32 matrix with orthonormal columns (1.3 MB)."""
    global _projection
    if _projection is None:
        with _projection_lock:
            if _projection is None:
                # RandomState's stream is frozen by NumPy's compatibility policy; Generator's is not.
                gaussian = np.random.RandomState(PROJECTION_SEED).standard_normal((FEATURE_DIM, EMBEDDING_DIM))
                q, r = np.linalg.qr(gaussian)
                q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # the unique Q with a positive diagonal in R
                matrix = np.ascontiguousarray(q, dtype=np.float32)
                matrix.setflags(write=False)
                _projection = matrix
    return _projection


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms: np.ndarray = np.linalg.norm(vectors, axis=-1, keepdims=True)
    normalised: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return normalised.astype(np.float32)


def project(features: np.ndarray) -> np.ndarray:
    """``[..., 1280]`` features → ``[..., 256]`` L2-normalised float32 embeddings."""
    features = np.asarray(features, dtype=np.float32)
    if features.shape[-1] != FEATURE_DIM:
        raise ValueError(f"expected {FEATURE_DIM}-d features, got shape {features.shape}")
    return _normalise(_normalise(features) @ projection())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors (1.0 for the same direction); works on stored, slightly un-normalised ones."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def to_bytes(vector: np.ndarray) -> bytes:
    """An embedding as ``EMBEDDING_DIM`` little-endian float16 values (512 bytes)."""
    array = np.asarray(vector)
    if array.shape != (EMBEDDING_DIM,):
        raise ValueError(f"expected a {EMBEDDING_DIM}-d vector, got shape {array.shape}")
    return array.astype(STORED_DTYPE).tobytes()


# --- the model ------------------------------------------------------------------------------


def features_model(path: Path | str = MODEL_FILE) -> tuple[bytes, str, str]:
    """The classifier with its pooled features as an extra output: (model bytes, logits name, features name).

    The features are the input of the node that produces the graph's (only) output, a
    Gemm or MatMul; a Flatten/Reshape in front of it already gives ``[N, 1280]``.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    logits = graph.output[0].name
    head = next((node for node in graph.node if logits in node.output), None)
    if head is None or head.op_type not in ("Gemm", "MatMul"):
        raise ValueError(f"the graph's output {logits!r} does not come from a Gemm or MatMul")
    weights = {tensor.name for tensor in graph.initializer}
    features = next(name for name in head.input if name not in weights)
    graph.output.append(
        onnx.helper.make_tensor_value_info(features, onnx.TensorProto.FLOAT, ["batch", FEATURE_DIM])
    )
    # Any input size: the network is convolutions and a global pool, so the embedder can look at a
    # smaller square than the classifier's 224 (``INPUT_SIDE``: half the work).
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    del graph.value_info[:]
    return model.SerializeToString(), logits, features


#: Bumped whenever ``features_model`` edits the graph differently: older cached copies are then ignored.
FEATURES_EDIT = 1


def cache_folder() -> Path:
    """Where edited models are kept between runs: ``$XDG_CACHE_HOME/imgbot`` (``~/.cache/imgbot``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "imgbot"


def cached_features_model(path: Path = MODEL_FILE) -> tuple[bytes, Path | None]:
    """``features_model``'s bytes, and the cached copy they came from (None: just edited).

    Editing the graph needs the ``onnx`` package, and importing it alone takes 0.65 s of CPU, in
    every process that loads the embedder: each run of the CLI and each pixel helper process. So
    the edited model is written to the cache folder, named by the original's digest and
    ``FEATURES_EDIT``, and read from there next time. A folder that cannot be written only costs
    that time again."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cached = cache_folder() / f"{path.stem}-features-{digest}-edit{FEATURES_EDIT}.onnx"
    with contextlib.suppress(OSError):
        return cached.read_bytes(), cached
    model = features_model(path)[0]
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
        partial.write_bytes(model)
        partial.replace(cached)  # whole or not at all, whoever else writes it at the same time
    except OSError as err:
        log.info("the edited embedding model is not cached (%s); it is edited again at each start", err)
    return model, None


def _features_session(model: bytes) -> ort.InferenceSession:
    """A session of ``features_model``'s graph; refuses one that does not give the logits and the features."""
    session = _session(model)
    outputs = session.get_outputs()
    if len(outputs) != 2 or outputs[1].shape[-1] != FEATURE_DIM:
        raise ValueError(f"expected the logits and {FEATURE_DIM} features, got outputs "
                         f"{[(o.name, o.shape) for o in outputs]}")
    return session


def _session(model: bytes) -> ort.InferenceSession:
    """As ``models.onnx_session`` (one intra-op thread: the CPU pool gives the parallelism), from bytes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    # The Python wrapper keeps the model bytes (18.6 MB) to rebuild the session on a provider
    # fallback, which a CPU-only session never does; ORT's own copy is all it needs.
    if getattr(session, "_model_bytes", None) is not None:
        session._model_bytes = None
    return session


class ImageEmbedder(LazyModel[np.ndarray]):
    """EfficientNet-Lite0's pooled features, projected to ``EMBEDDING_DIM``; loads on first use, thread-safe."""

    task = "embedding"
    what = "comparing this image with others"

    def _load(self) -> None:
        model, cached = cached_features_model(MODEL_FILE)
        try:
            self.session = _features_session(model)  # the parsed graph and the bytes are freed on return
        except Exception as err:
            if cached is None:
                raise
            log.warning("the cached embedding model %s is damaged (%r); editing the original again", cached, err)
            cached.unlink(missing_ok=True)
            self.session = _features_session(features_model(MODEL_FILE)[0])
        # ``features_model`` appends the features after the logits.
        self.logits_name, self.features_name = (output.name for output in self.session.get_outputs())
        self.input_name = self.session.get_inputs()[0].name
        projection()

    @cached_property
    def version(self) -> str:
        digest = hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()[:8]
        return (
            f"efficientnet-lite0-imagenet1k-fp32@{digest} pool{FEATURE_DIM} centre-crop{INPUT_SIDE}"
            f" → orthogonal{EMBEDDING_DIM}(seed {PROJECTION_SEED}) fp16"
        )

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``[N, 1000]`` and pooled features ``[N, 1280]`` of a preprocessed batch, in one inference."""
        self.load()
        logits, features = self.session.run([self.logits_name, self.features_name], {self.input_name: batch})
        return logits, np.asarray(features, dtype=np.float32).reshape(len(batch), FEATURE_DIM)

    def features(self, image: Image.Image) -> np.ndarray:
        """The L2-normalised 1,280-d pooled features (before the projection)."""
        _, pooled = self.run(preprocess(_working_copy(image)))
        return _normalise(pooled[0])

    def embed(self, image: Image.Image) -> np.ndarray:
        """The ``EMBEDDING_DIM`` float32 L2-normalised embedding of ``image`` (any mode, any size)."""
        rgb = _to_rgb(image)
        return self.predict(Decoded(image=rgb, width=rgb.width, height=rgb.height))

    def _predict(self, image: Decoded) -> np.ndarray:
        with self._batches.caller():
            batch = preprocess(image.fit(WORKING_SIDE))
            return project(self._batches.run(batch[0]))

    @cached_property
    def _batches(self) -> _Batches:
        return _Batches(lambda batch: self.run(batch)[1])


class _Batches:
    """Images embedded at the same time by several threads go through the network as one batch.

    ONNX Runtime spends about as long on a call's fixed costs as on one 224 px image (measured
    on 2 cores: 17.7 ms of CPU for one image alone, 9.3 ms each in a batch of four), so at 50
    images/s batching halves the embedder's share of the CPU. The first caller to arrive
    collects what the others bring for up to ``WAIT`` seconds, runs them and hands each its row;
    a caller alone (no one else embedding) runs at once, so a single image never waits.
    """

    WAIT = 0.01

    def __init__(self, run: Callable[[np.ndarray], np.ndarray]) -> None:
        self._run = run
        self._lock = threading.Condition()
        self._pending: list[tuple[np.ndarray, Future[np.ndarray]]] = []
        self._collecting = False
        self._callers = 0

    @contextlib.contextmanager
    def caller(self) -> Iterator[None]:
        """Marks a thread as about to embed, so a leader knows whether to wait for it."""
        with self._lock:
            self._callers += 1
        try:
            yield
        finally:
            with self._lock:
                self._callers -= 1
                self._lock.notify_all()

    def run(self, row: np.ndarray) -> np.ndarray:
        """The network's output for one preprocessed image (``[3, 224, 224]``), batched with others'."""
        future: Future[np.ndarray] = Future()
        with self._lock:
            self._pending.append((row, future))
            self._lock.notify_all()
            leader = not self._collecting
            self._collecting = True
            if leader:
                deadline = time.monotonic() + self.WAIT
                # Wait while other callers are still preparing their image (they will join this batch).
                while len(self._pending) < self._callers and (left := deadline - time.monotonic()) > 0:
                    self._lock.wait(left)
                batch, self._pending = self._pending, []
                self._collecting = False
        if leader:
            try:
                outputs = self._run(np.stack([item for item, _ in batch]))
            except BaseException as err:  # every caller of the batch gets the error
                for _, waiting in batch:
                    waiting.set_exception(err)
            else:
                for (_, waiting), output in zip(batch, outputs, strict=True):
                    waiting.set_result(output)
        return future.result()


def _working_copy(image: Image.Image) -> Image.Image:
    rgb = _to_rgb(image)
    return Decoded(image=rgb, width=rgb.width, height=rgb.height).fit(WORKING_SIDE)
