"""Image embeddings (``bot/analyzers/local/embedding.py``): storage, the projection and the duplicate rule.

Fast tests cover the pure parts (bytes, the fixed projection, the rule); tests marked
``slow`` load EfficientNet-Lite0 with its pooled features added as an output and check, on
the bundled samples, that edited copies of an image stay above ``DUPLICATE_MIN_COSINE``
and different images stay below it.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bot.analyzers.local.embedding import (
    DUPLICATE_HASH_ALONE,
    DUPLICATE_HASH_WITH_EMBEDDING,
    DUPLICATE_MIN_COSINE,
    EMBEDDING_DIM,
    FEATURE_DIM,
    ImageEmbedder,
    cosine,
    from_bytes,
    is_near_duplicate,
    preprocess,
    project,
    projection,
    to_bytes,
)
from bot.analyzers.local.models import Decoded
from bot.core.looks import phash
from bot.core.nearby import DUPLICATE_MAX_DISTANCE
from bot.samples import sample_paths

# --- fast: storage, projection, rule ----------------------------------------------------


def unit(seed: int, dim: int = EMBEDDING_DIM) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_bytes_round_trip_as_little_endian_float16() -> None:
    vector = unit(1)
    data = to_bytes(vector)
    assert len(data) == EMBEDDING_DIM * 2
    assert data == vector.astype("<f2").tobytes()
    back = from_bytes(data)
    assert back.dtype == np.float32 and back.shape == (EMBEDDING_DIM,)
    np.testing.assert_allclose(back, vector, atol=1e-3)
    assert cosine(back, vector) > 0.99999


def test_bytes_of_the_wrong_size_are_refused() -> None:
    with pytest.raises(ValueError):
        to_bytes(np.zeros(FEATURE_DIM, dtype=np.float32))
    with pytest.raises(ValueError):
        from_bytes(b"\x00" * (EMBEDDING_DIM * 4))


def test_the_projection_is_fixed_and_orthonormal() -> None:
    matrix = projection()
    assert matrix.shape == (FEATURE_DIM, EMBEDDING_DIM) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix.T @ matrix, np.eye(EMBEDDING_DIM), atol=1e-5)
    # Stored embeddings depend on these exact numbers: a change here needs a re-embed.
    np.testing.assert_allclose(matrix[0, :3], [-0.0301144, -0.0610515, 0.0166730], atol=1e-6)
    np.testing.assert_allclose(matrix[-1, -2:], [0.0143454, 0.0059917], atol=1e-6)
    assert projection() is matrix


def test_project_gives_unit_vectors_and_keeps_close_vectors_close() -> None:
    features = np.abs(np.random.default_rng(2).standard_normal((3, FEATURE_DIM))).astype(np.float32)
    features[1] = features[0] + 0.05 * np.abs(np.random.default_rng(3).standard_normal(FEATURE_DIM))
    projected = project(features)
    assert projected.shape == (3, EMBEDDING_DIM) and projected.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-5)
    before = cosine(features[0], features[1])
    assert abs(cosine(projected[0], projected[1]) - before) < 0.01
    with pytest.raises(ValueError):
        project(np.zeros(EMBEDDING_DIM, dtype=np.float32))


def test_the_duplicate_rule() -> None:
    assert is_near_duplicate(DUPLICATE_HASH_ALONE, None)
    assert is_near_duplicate(0, 0.0)
    assert is_near_duplicate(DUPLICATE_MAX_DISTANCE, None)  # no embedding: the hash alone decides
    assert not is_near_duplicate(DUPLICATE_MAX_DISTANCE + 1, None)
    assert not is_near_duplicate(DUPLICATE_HASH_ALONE + 1, 0.5)
    assert is_near_duplicate(DUPLICATE_HASH_WITH_EMBEDDING, DUPLICATE_MIN_COSINE)
    assert not is_near_duplicate(DUPLICATE_HASH_WITH_EMBEDDING, DUPLICATE_MIN_COSINE - 0.01)
    assert not is_near_duplicate(DUPLICATE_HASH_WITH_EMBEDDING + 1, 1.0)


def test_sign_codes_rule_out_only_pairs_too_unlike_to_be_duplicates() -> None:
    from bot.core.vectors import DUPLICATE_MAX_CODE_BITS, CodeIndex

    rng = np.random.default_rng(5)
    count = 2000
    features = np.maximum(rng.standard_normal((count, FEATURE_DIM)), 0).astype(np.float32) ** 2  # sparse, >= 0
    noise = np.maximum(rng.standard_normal((count, FEATURE_DIM)), 0).astype(np.float32) ** 2
    edited = features + rng.uniform(0, 3, (count, 1)).astype(np.float32) * noise  # edits of every strength
    mine, theirs = project(features), project(edited)
    index = CodeIndex()
    index.upsert([(n, to_bytes(mine[n])) for n in range(count)]
                 + [(count + n, to_bytes(theirs[n])) for n in range(count)])
    cosines = (mine * theirs).sum(axis=1)
    bits = np.array([index.distances(n, [count + n])[count + n] for n in range(count)])  # type: ignore[index]
    unrelated = np.array([index.distances(n, [count + (n + 7) % count])[count + (n + 7) % count]  # type: ignore[index]
                          for n in range(count)])

    assert (cosines >= DUPLICATE_MIN_COSINE).sum() > 100 and (cosines < 0.5).sum() > 100
    assert bits[cosines >= DUPLICATE_MIN_COSINE].max() <= DUPLICATE_MAX_CODE_BITS - 20  # a wide margin
    assert (unrelated > DUPLICATE_MAX_CODE_BITS).mean() > 0.9  # most loose candidates need no vector read
    assert index.distances(-1, [0]) is None and index.distances(0, [-5]) == {}


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def test_report_groups_follow_the_duplicate_rule_pair_by_pair() -> None:
    from bot.core.nearby import Likeness, duplicate_groups
    from bot.core.vectors import DIM, DUPLICATE_MAX_CODE_BITS, sign_code

    rng = np.random.default_rng(11)
    count = 300
    bases = rng.integers(0, 1 << 63, size=12, dtype=np.int64)  # a dozen "photos" and edits of them
    flips = [rng.choice(64, size=rng.integers(0, 30), replace=False) for _ in range(count)]
    hashes = {n: int(bases[n % 12]) ^ sum(1 << int(bit) for bit in flips[n]) for n in range(count)}
    hashes = {n: h - (1 << 64) if h >= 1 << 63 else h for n, h in hashes.items()}
    looks = [_unit(rng.standard_normal(DIM)) for _ in range(12)]
    vectors = {n: _unit(looks[n % 12] + rng.uniform(0, 1.5) * _unit(rng.standard_normal(DIM)))
               for n in range(count) if n % 10}  # every tenth has no embedding: its hash alone decides

    def linked(a: int, b: int) -> bool:
        bits = ((hashes[a] ^ hashes[b]) & (1 << 64) - 1).bit_count()
        similarity = None
        if a in vectors and b in vectors:
            code_bits = int(np.bitwise_count(sign_code(vectors[a]) ^ sign_code(vectors[b])).sum())
            similarity = 0.0 if code_bits > DUPLICATE_MAX_CODE_BITS else float(vectors[a] @ vectors[b])
        return is_near_duplicate(bits, similarity)

    parent = list(range(count))  # the groups, pair by pair

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in itertools.combinations(range(count), 2):
        if linked(a, b):
            parent[max(root(a), root(b))] = min(root(a), root(b))
    expected: dict[int, list[int]] = {}
    for n in range(count):
        expected.setdefault(root(n), []).append(n)
    groups = duplicate_groups(hashes, Likeness.of_vectors(vectors), chunk=64)

    assert sorted(groups) == sorted(group for group in expected.values() if len(group) > 1)
    assert groups != duplicate_groups(hashes)  # by hash alone they differ: the embeddings decided some pairs


def test_report_groups_take_a_far_copy_alike_by_embedding_and_leave_a_close_stranger() -> None:
    from bot.core.nearby import Likeness, duplicate_groups
    from bot.core.vectors import DIM

    rng = np.random.default_rng(3)
    photo, stranger, another = (_unit(rng.standard_normal(DIM)) for _ in range(3))
    crop = _unit(photo + 0.2 * _unit(rng.standard_normal(DIM)))
    base = 0x0F0F_3C3C_5A5A_6996
    hashes = {1: base, 2: base ^ (1 << 20) - 1,  # the crop: 20 bits away, alike by embedding
              3: base ^ 0xFF00,  # 8 bits away, but a different picture
              4: base ^ 0xF000_0000_0000}  # 4 bits away: close enough by hash alone
    vectors = {1: photo, 2: crop, 3: stranger, 4: another}

    every = Likeness.of_vectors(vectors)
    read: list[int] = []
    counted = Likeness(every.codes, lambda image_ids: read.extend(image_ids) or every.read(image_ids))

    assert duplicate_groups(hashes, counted) == [[1, 2, 4]]
    assert sorted(read) == [1, 2]  # the strangers' codes are too far: their vectors are never read
    assert duplicate_groups(hashes) == [[1, 3, 4]]  # by hash alone
    assert duplicate_groups(hashes, Likeness.of_vectors({1: photo, 2: crop})) == [[1, 2, 3, 4]]  # 3: by hash


# --- slow: the real model on the bundled samples ----------------------------------------

Edit = Callable[[Image.Image], Image.Image]


def load(path: Path) -> Image.Image:
    return Decoded.from_bytes(path.read_bytes()).image


def hash_of(image: Image.Image) -> int:
    copy = image.copy()
    copy.thumbnail((512, 512))  # as bot.core.looks hashes the analysis copy
    return phash(copy)


def distance(a: int, b: int) -> int:
    return int(bin((a ^ b) & (2**64 - 1)).count("1"))


def recompressed(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=50)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def cropped(image: Image.Image, fraction: float = 0.05) -> Image.Image:
    dx, dy = round(image.width * fraction), round(image.height * fraction)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def captioned(image: Image.Image) -> Image.Image:
    strip = round(image.height * 0.12)
    canvas = Image.new("RGB", (image.width, image.height + strip), "white")
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text(
        (10, image.height + strip // 4), "when the build passes on a friday", fill="black", font_size=strip // 2
    )
    return canvas


EDITS: dict[str, Edit] = {
    "resized": lambda image: image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS),
    "recompressed": recompressed,
    "cropped 5%": cropped,
    "captioned": captioned,
}
NAMES = [path.name for path in sample_paths()]


@pytest.fixture(scope="module")
def embedder() -> ImageEmbedder:
    pytest.importorskip("onnxruntime", reason="the local extra is not installed: pip install 'imgbot[local]'")
    pytest.importorskip("onnx", reason="the local extra is not installed: pip install 'imgbot[local]'")
    return ImageEmbedder()


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    return {path.name: load(path) for path in sample_paths()}


@pytest.fixture(scope="module")
def embeddings(embedder: ImageEmbedder, images: dict[str, Image.Image]) -> dict[str, np.ndarray]:
    return {name: embedder.embed(image) for name, image in images.items()}


@pytest.mark.slow
class TestOnSamples:
    def test_an_embedding_is_a_unit_vector_of_the_stored_size(self, embeddings: dict[str, np.ndarray]) -> None:
        for vector in embeddings.values():
            assert vector.shape == (EMBEDDING_DIM,) and vector.dtype == np.float32
            assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5

    def test_the_same_image_gives_the_same_vector(
        self, embedder: ImageEmbedder, images: dict[str, Image.Image], embeddings: dict[str, np.ndarray]
    ) -> None:
        again = embedder.embed(images["coffee.jpg"])
        np.testing.assert_array_equal(again, embeddings["coffee.jpg"])
        fresh = ImageEmbedder().embed(images["coffee.jpg"])
        np.testing.assert_allclose(fresh, embeddings["coffee.jpg"], atol=1e-6)

    def test_any_image_mode_is_accepted(self, embedder: ImageEmbedder, images: dict[str, Image.Image]) -> None:
        grey = embedder.embed(images["cat-chelsea.jpg"].convert("L"))
        transparent = embedder.embed(images["cat-chelsea.jpg"].convert("RGBA"))
        assert grey.shape == transparent.shape == (EMBEDDING_DIM,)
        assert cosine(transparent, embedder.embed(images["cat-chelsea.jpg"])) > 0.9999

    @pytest.mark.parametrize("edit", list(EDITS))
    @pytest.mark.parametrize("name", NAMES)
    def test_an_edited_copy_is_a_duplicate(
        self,
        embedder: ImageEmbedder,
        images: dict[str, Image.Image],
        embeddings: dict[str, np.ndarray],
        name: str,
        edit: str,
    ) -> None:
        copy = EDITS[edit](images[name])
        similarity = cosine(embeddings[name], embedder.embed(copy))
        assert similarity >= DUPLICATE_MIN_COSINE
        # The stored form decides the same way.
        stored = cosine(from_bytes(to_bytes(embeddings[name])), from_bytes(to_bytes(embedder.embed(copy))))
        assert abs(stored - similarity) < 1e-3
        hashes = distance(hash_of(images[name]), hash_of(copy))
        if edit != "captioned":  # a caption strip can move the pHash past the gate (28 bits on rocket.jpg)
            assert is_near_duplicate(hashes, similarity), (hashes, similarity)

    def test_different_samples_are_not_duplicates(
        self, images: dict[str, Image.Image], embeddings: dict[str, np.ndarray]
    ) -> None:
        for a, b in itertools.combinations(NAMES, 2):
            similarity = cosine(embeddings[a], embeddings[b])
            assert similarity < DUPLICATE_MIN_COSINE, (a, b, similarity)
            assert not is_near_duplicate(distance(hash_of(images[a]), hash_of(images[b])), similarity), (a, b)

    def test_photos_are_closer_to_their_own_kind(self, embeddings: dict[str, np.ndarray]) -> None:
        banners = [n for n in NAMES if n.startswith("banner-") and n != "banner-coffee-week.jpg"]
        photos = [n for n in NAMES if not n.startswith("banner-")]
        within = min(cosine(embeddings[a], embeddings[b]) for a, b in itertools.combinations(banners, 2))
        across = max(cosine(embeddings[a], embeddings[b]) for a in banners for b in photos)
        assert within > across
        # The photo banner is closer to the photo it was made from than to any other photo.
        made_from = cosine(embeddings["banner-coffee-week.jpg"], embeddings["coffee.jpg"])
        others = [cosine(embeddings["banner-coffee-week.jpg"], embeddings[p]) for p in photos if p != "coffee.jpg"]
        assert made_from > max(others)

    @pytest.mark.parametrize("name", NAMES)
    def test_far_apart_parts_of_one_image_are_not_duplicates(
        self, embedder: ImageEmbedder, images: dict[str, Image.Image], name: str
    ) -> None:
        image = images[name]
        w, h = image.size
        top_left, bottom_right = image.crop((0, 0, w // 2, h // 2)), image.crop((w // 2, h // 2, w, h))
        similarity = cosine(embedder.embed(top_left), embedder.embed(bottom_right))
        assert not is_near_duplicate(distance(hash_of(top_left), hash_of(bottom_right)), similarity)

    def test_one_session_gives_the_classifiers_logits_and_the_features(
        self, embedder: ImageEmbedder, images: dict[str, Image.Image]
    ) -> None:
        from bot.analyzers.local.labels import MODEL_FILE, ImageNetLabeler
        from bot.analyzers.local.models import onnx_session

        batch = np.concatenate([ImageNetLabeler.preprocess(images[n])[:1] for n in ("cat-chelsea.jpg", "coffee.jpg")])
        logits, features = embedder.run(batch)
        assert logits.shape == (2, 1000) and features.shape == (2, FEATURE_DIM)
        expected = onnx_session(MODEL_FILE).run(None, {"input": batch})[0]
        np.testing.assert_allclose(logits, expected, atol=1e-4)
        assert (features >= 0).all()  # pooled ReLU6 activations
        _, small = embedder.run(preprocess(images["cat-chelsea.jpg"]))  # the embedder's own, smaller input
        np.testing.assert_allclose(project(small[0]), embedder.embed(images["cat-chelsea.jpg"]), atol=1e-5)

    def test_threads_load_once_and_agree(self, images: dict[str, Image.Image]) -> None:
        embedder = ImageEmbedder()
        results: list[np.ndarray] = []
        lock = threading.Lock()

        def work() -> None:
            vector = embedder.embed(images["rocket.jpg"])
            with lock:
                results.append(vector)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 4 and embedder.loaded
        for vector in results[1:]:
            np.testing.assert_array_equal(vector, results[0])

    def test_version_names_the_model_and_the_projection(self, embedder: ImageEmbedder) -> None:
        assert "efficientnet-lite0" in embedder.version
        assert f"orthogonal{EMBEDDING_DIM}" in embedder.version


# -- the edited model, cached between runs ---------------------------------------------------------

LOAD_AND_EMBED = """
import sys
from PIL import Image
from bot.analyzers.local.embedding import ImageEmbedder
vector = ImageEmbedder().embed(Image.new("RGB", (300, 200), (30, 140, 90)))
print("onnx imported" if "onnx" in sys.modules else "onnx not imported")
print(",".join(f"{v:.5f}" for v in vector[:8]))
"""


def load_in_a_new_process(cache: Path) -> list[str]:
    import os
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-c", LOAD_AND_EMBED], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.split()


def test_the_edited_model_is_cached_so_the_next_process_needs_no_onnx(tmp_path: Path) -> None:
    first = load_in_a_new_process(tmp_path)
    assert first[:2] == ["onnx", "imported"]
    assert len(list((tmp_path / "imgbot").glob("*.onnx"))) == 1

    second = load_in_a_new_process(tmp_path)
    assert second[:3] == ["onnx", "not", "imported"]
    assert second[-1] == first[-1]  # the same vector


@pytest.mark.parametrize("damage", ["not a model", "the unedited classifier"])
def test_a_damaged_cached_model_is_edited_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    from bot.analyzers.local.labels import MODEL_FILE

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ImageEmbedder().load()
    (cached,) = (tmp_path / "imgbot").glob("*.onnx")
    # Garbage, or a model that loads but lacks the features output.
    wrong = b"not a model" if damage == "not a model" else MODEL_FILE.read_bytes()
    cached.write_bytes(wrong)

    embedder = ImageEmbedder()
    vector = embedder.embed(Image.new("RGB", (300, 200), (30, 140, 90)))
    assert vector.shape == (EMBEDDING_DIM,)
    assert not cached.exists() or cached.read_bytes() != wrong


def test_a_cache_folder_that_cannot_be_written_still_gives_embeddings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    vector = ImageEmbedder().embed(Image.new("RGB", (300, 200), (30, 140, 90)))
    assert vector.shape == (EMBEDDING_DIM,)


def test_migration_0014_drops_the_onnx_version_from_stored_model_names_so_upgrading_onnx_keeps_them(
        empty_database) -> None:  # type: ignore[no-untyped-def]
    from importlib import metadata

    from sqlalchemy import text

    from db.migrate import downgrade, upgrade
    from db.visuals import EmbeddingCache
    from tests.old_rows import insert_analysed_image

    version = ImageEmbedder().version
    assert "onnx" not in version
    vector = np.zeros(256, dtype=np.float32)
    vector[0] = 1.0
    upgrade(empty_database.engine, "0013")
    with empty_database.engine.begin() as connection:
        for image_id, model in ((1, f"{version} (onnx 1.16.0)"), (2, "another-model@1 (onnx 1.17.0)")):
            insert_analysed_image(connection, image_id)
            connection.execute(text("INSERT INTO image_embeddings (image_id, seq, model, vector) "
                                    "VALUES (:id, :id, :model, :vector)"),
                               {"id": image_id, "model": model, "vector": to_bytes(vector)})

    def stored() -> dict[int, str]:
        with empty_database.engine.connect() as connection:
            return dict(connection.execute(text("SELECT image_id, model FROM image_embeddings")).all())

    upgrade(empty_database.engine)
    assert stored() == {1: version, 2: "another-model@1"}
    assert list(EmbeddingCache(empty_database.engine, version).vectors([1, 2])) == [1]

    downgrade(empty_database.engine, "0013")
    onnx = metadata.version("onnx")
    assert stored() == {1: f"{version} (onnx {onnx})", 2: f"another-model@1 (onnx {onnx})"}
