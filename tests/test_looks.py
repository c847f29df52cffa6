"""Colours, quality and near-duplicates for every image, through the pipeline and the query language:
``color:``, ``quality:`` and ``dupes:``, scoped like every other term."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter

from bot.core.types import Source
from bot.wiring import Core
from tests.test_cli import env, rekognition  # noqa: F401  (fixtures)

SAMPLES = Path(__file__).parent.parent / "bot" / "samples"


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (1200, 900)) -> bytes:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).point((0, 0), fill=(colour[0] ^ 1, colour[1], colour[2]))  # unique bytes
    return encoded(image)


def halves(left: tuple[int, int, int], right: tuple[int, int, int], share: float) -> bytes:
    image = Image.new("RGB", (1200, 900), right)
    ImageDraw.Draw(image).rectangle((0, 0, int(1200 * share) - 1, 899), fill=left)
    return encoded(image)


def ingest(core: Core, data: bytes, name: str, channel: str = "C0PUBLIC01") -> int:
    source = Source.slack(team_id="T1", channel_id=channel, user_id="U1", file_id=f"F{name}", message_ts="1.0",
                          name=name)
    result = core.ingest(data, source)
    assert result.image_id is not None and result.outcome == "done", result
    return result.image_id


def found(core: Core, query: str, channels: list[str] | None = None) -> set[int]:
    return {hit.image.id for hit in core.search(query, channels=channels, per_page=100).hits}


def test_colours_and_quality_are_stored_for_every_image_and_searchable(core: Core) -> None:
    teal = ingest(core, solid((0, 128, 128)), "teal.png")
    split = ingest(core, halves((240, 60, 60), (70, 110, 250), 0.3), "split.png")
    small = ingest(core, solid((250, 250, 250), size=(300, 200)), "small.png")
    dark = ingest(core, solid((10, 10, 12)), "dark.png")

    record = core.show(teal)
    assert record.properties is not None and record.properties.source == "pixels"
    assert record.properties.dominant_colors[0].simplified_color == "teal"
    assert record.properties.dominant_colors[0].pixel_percent > 95
    assert found(core, "color:teal") == {teal}
    assert found(core, "color:red") == {split} and found(core, "color:blue>60") == {split}
    assert found(core, "color:red>40") == set()
    assert found(core, "quality:small") == {small}
    assert found(core, "quality:dark") == {dark}
    assert found(core, "color:teal -quality:dark") == {teal}
    json = record.to_json()
    assert json["properties"]["dominant_colors"][0]["css_color"] == "teal" and len(json["phash"]) == 16


def test_a_blurred_copy_is_found_by_quality_blurry_and_the_sharp_photo_is_not(core: Core) -> None:
    photo = Image.open(SAMPLES / "cameraman.jpg").convert("RGB")
    sharp = ingest(core, encoded(photo, "JPEG", quality=92), "sharp.jpg")
    blurred = ingest(core, encoded(photo.filter(ImageFilter.GaussianBlur(6)), "JPEG", quality=92), "blurred.jpg")

    assert blurred in found(core, "quality:blurry") and sharp not in found(core, "quality:blurry")


def test_dupes_links_resized_and_recompressed_copies_not_other_photos_and_respects_channels(core: Core) -> None:
    photo = Image.open(SAMPLES / "cat-chelsea.jpg").convert("RGB")
    original = ingest(core, encoded(photo, "JPEG", quality=95), "cat.jpg")
    resized = ingest(core, encoded(photo.resize((photo.width // 2, photo.height // 2)), "JPEG", quality=60),
                     "cat-small.jpg")
    private_copy = ingest(core, encoded(photo, "PNG"), "cat.png", channel="G0PRIVATE1")
    other = ingest(core, (SAMPLES / "coffee.jpg").read_bytes(), "coffee.jpg")

    assert found(core, f"dupes:{original}") == {resized, private_copy}
    assert found(core, f"dupes:{original}", channels=["C0PUBLIC01"]) == {resized}
    assert found(core, f"dupes:{private_copy}", channels=["C0PUBLIC01"]) == set()  # asked about an unseen image
    assert other not in found(core, f"dupes:{original}") and found(core, f"dupes:{other}") == set()
    assert {image_id for image_id, _ in core.near_duplicates(resized)} == {original, private_copy}


def test_bad_colour_and_quality_terms_say_what_is_wrong(core: Core) -> None:
    from bot.errors import QuerySyntaxError

    with pytest.raises(QuerySyntaxError, match='Did you mean "color:teal"'):
        core.search("color:tael")
    with pytest.raises(QuerySyntaxError, match="blurry, dark or small"):
        core.search("quality:fuzzy")


def test_rescan_images_gives_older_images_their_colours_and_hash(env, tmp_path):
    from sqlalchemy import create_engine, text

    from tests.test_cli import run

    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "teal.png").write_bytes(solid((0, 128, 128)))
    (folder / "red.png").write_bytes(solid((230, 20, 20)))
    assert run("analyze", str(folder))[0] == 0
    engine = create_engine(env["DATABASE_URL"])
    with engine.begin() as connection:  # as a version before colours kept them
        connection.execute(text("DELETE FROM image_colors"))
        connection.execute(text("DELETE FROM image_color_names"))
        connection.execute(text("DELETE FROM image_visuals"))
    engine.dispose()
    assert json.loads(run("search", "color:teal", "--json")[1]) == []

    code, out, _ = run("rescan-images", "--no-progress")

    assert code == 0 and "for 2 images" in out
    assert [Path(hit["source"]).name for hit in json.loads(run("search", "color:teal", "--json")[1])] == ["teal.png"]
    assert all(len(json.loads(run("show", str(n), "--json")[1])["phash"]) == 16 for n in (1, 2))
    assert "for 0 images" in run("rescan-images", "--no-progress")[1]


def test_rescan_images_adds_a_missing_embedding_and_keeps_rekognitions_colours(core: Core) -> None:
    from sqlalchemy import delete, update

    from db.models import ImageEmbedding, ImageVisual

    image_id = ingest(core, (SAMPLES / "coffee.jpg").read_bytes(), "coffee.jpg")
    with core.database.transaction() as session:
        session.execute(update(ImageVisual).where(ImageVisual.image_id == image_id).values(source="rekognition"))
        session.execute(delete(ImageEmbedding))

    assert core.rescan_looks() == (1, 0)

    properties = core.show(image_id).properties
    assert properties is not None and properties.source == "rekognition"
    with core.database.transaction() as session:
        assert session.query(ImageEmbedding).count() == 1


def captioned_crop(photo: Image.Image) -> bytes:
    """``photo`` cropped 5 % on every side, with a white caption strip below: 20 bits away by pHash."""
    w, h = photo.size
    cropped = photo.crop((int(w * 0.05), int(h * 0.05), int(w * 0.95), int(h * 0.95)))
    captioned = Image.new("RGB", (cropped.width, int(cropped.height * 1.12)), (255, 255, 255))
    captioned.paste(cropped, (0, 0))
    return encoded(captioned, "JPEG", quality=80)


def test_like_ranks_by_how_alike_images_look_and_dupes_links_a_cropped_captioned_copy(core: Core) -> None:
    photo = Image.open(SAMPLES / "cat-chelsea.jpg").convert("RGB")
    cat = ingest(core, encoded(photo, "JPEG", quality=95), "cat.jpg")
    copy = ingest(core, captioned_crop(photo), "cat-captioned.jpg")
    others = {name: ingest(core, (SAMPLES / name).read_bytes(), name)
              for name in ("coffee.jpg", "rocket.jpg", "astronaut.jpg", "banner-summer-sale.png")}

    ranked = [hit.image.id for hit in core.search(f"like:{cat}", per_page=10).hits]

    assert ranked[0] == copy and set(ranked) == {copy, *others.values()}
    assert cat not in ranked
    assert copy in found(core, f"dupes:{cat}") and not found(core, f"dupes:{cat}") & set(others.values())
    assert found(core, f"like:{cat}", channels=["C0OTHER001"]) == set()
    assert found(core, f"like:{cat} -label:anything") == set(ranked)


def test_a_report_groups_a_captioned_crop_as_dupes_links_it(settings, storage, fake_analyzer, core: Core) -> None:
    # 20 bits apart by hash, too far for the hash alone: the embeddings decide, whether this process
    # has the "more like this" index in memory (serve, worker) or reads the report's vectors (a CLI run).
    from bot.wiring import build_core

    photo = Image.open(SAMPLES / "cat-chelsea.jpg").convert("RGB")
    pair = (ingest(core, encoded(photo, "JPEG", quality=95), "cat.jpg"),
            ingest(core, captioned_crop(photo), "cat-captioned.jpg"))
    for name in ("coffee.jpg", "rocket.jpg", "astronaut.jpg"):
        ingest(core, (SAMPLES / name).read_bytes(), name)
    fresh = build_core(settings, storage=storage, analyzer_factory=lambda: fake_analyzer)
    try:
        vectors = fresh.vectors
        assert vectors is not None
        cold = fresh.report("")
        assert not vectors.loaded  # a one-off report reads its images' vectors, not the whole index
        fresh.warm_indexes().join(timeout=60)
        assert vectors.loaded
        read: list[int] = []
        every = vectors.vectors
        vectors.vectors = lambda image_ids: read.extend(image_ids) or every(image_ids)  # type: ignore[method-assign]
        warm = fresh.report("")
        assert set(read) <= set(pair)  # with the index in memory, only the vectors a cosine needs are read
    finally:
        fresh.database.dispose()

    assert cold.duplicate_groups == warm.duplicate_groups == (tuple(sorted(pair)),)
    assert "- Images " + ", ".join(map(str, sorted(pair))) in core.render_report(warm, "md")


def test_without_embeddings_like_says_how_to_get_them_and_dupes_goes_by_hash(settings, storage, fake_analyzer):
    from bot.errors import QuerySyntaxError
    from bot.wiring import build_core

    core = build_core(settings.replace(embeddings="off"), storage=storage, analyzer_factory=lambda: fake_analyzer)
    try:
        photo = Image.open(SAMPLES / "cat-chelsea.jpg").convert("RGB")
        cat = ingest(core, encoded(photo, "JPEG", quality=95), "cat.jpg")
        small = ingest(core, encoded(photo.resize((photo.width // 2, photo.height // 2)), "JPEG"), "small.jpg")

        with pytest.raises(QuerySyntaxError, match="IMGBOT_EMBEDDINGS"):
            core.search(f"like:{cat}")
        assert found(core, f"dupes:{cat}") == {small}
        assert core.show(cat).to_json()["phash"] is not None
    finally:
        core.database.dispose()


def test_a_long_running_process_loads_the_indexes_before_the_first_search(
        settings, storage, fake_analyzer, core: Core) -> None:  # type: ignore[no-untyped-def]
    from bot.wiring import build_core

    ingest(core, solid((0, 128, 128)), "teal.png")
    ingest(core, (SAMPLES / "coffee.jpg").read_bytes(), "coffee.jpg")
    started = build_core(settings, storage=storage, analyzer_factory=lambda: fake_analyzer)  # as serve/worker do
    try:
        started.warm_indexes().join(timeout=60)
        assert len(started.hashes.index) == 2
        vectors = started.vectors
        assert vectors is not None and len(vectors.index) == 2
    finally:
        started.database.dispose()


def test_like_of_a_hidden_image_does_not_order_what_the_caller_can_see(core: Core) -> None:
    photo = Image.open(SAMPLES / "cat-chelsea.jpg").convert("RGB")
    hidden = ingest(core, encoded(photo, "JPEG", quality=95), "cat.jpg", channel="C0PRIVATE1")
    w, h = photo.size
    crop = ingest(core, encoded(photo.crop((0, 0, int(w * 0.9), int(h * 0.9))), "JPEG", quality=85), "crop.jpg")
    others = [ingest(core, (SAMPLES / name).read_bytes(), name) for name in ("coffee.jpg", "rocket.jpg")]

    as_owner = core.search(f"like:{hidden} OR has:labels", channels=["C0PRIVATE1", "C0PUBLIC01"], per_page=10)
    as_outsider = core.search(f"like:{hidden} OR has:labels", channels=["C0PUBLIC01"], per_page=10)

    assert as_owner.hits[0].image.id == crop and as_owner.hits[0].score > 50
    assert {hit.image.id for hit in as_outsider.hits} == {crop, *others}
    assert all(hit.score == as_outsider.hits[0].score for hit in as_outsider.hits)  # no cosine leaks into the order


def test_flat_pictures_are_not_near_duplicates_of_each_other(core: Core) -> None:
    from bot.core.nearby import duplicate_groups, uninformative

    teal = ingest(core, solid((0, 128, 128)), "teal.png")
    red = ingest(core, solid((250, 10, 10)), "red.png")
    record = core.show(teal)
    assert record.phash is not None and uninformative(record.phash)  # every flat colour hashes alike
    assert core.near_duplicates(teal) == [] and found(core, f"dupes:{red}") == set()
    assert duplicate_groups({teal: record.phash, red: record.phash}) == []


def test_a_damaged_stored_embedding_costs_only_its_own_image(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy import update

    from db.models import ImageEmbedding

    photo = Image.open(SAMPLES / "cat-chelsea.jpg").convert("RGB")
    cat = ingest(core, encoded(photo, "JPEG", quality=95), "cat.jpg")
    copy = ingest(core, encoded(photo.resize((photo.width // 2, photo.height // 2)), "JPEG", quality=80), "small.jpg")
    broken = ingest(core, (SAMPLES / "coffee.jpg").read_bytes(), "coffee.jpg")
    with core.database.transaction() as session:
        session.execute(update(ImageEmbedding).where(ImageEmbedding.image_id == broken).values(vector=b"\x00" * 511))

    assert found(core, f"like:{cat}") == {copy}  # the damaged row is left out, the rest still ranks
    assert found(core, f"like:{broken}") == set()
    assert copy in found(core, f"dupes:{cat}")
    assert f"image={broken} embedding unreadable" in caplog.text


def test_a_colour_is_found_by_its_css_name_or_its_simplified_name_with_the_share_of_either(core: Core) -> None:
    slate = ingest(core, halves((47, 79, 79), (250, 250, 250), 0.35), "slate.png")  # darkslategray, grey
    white = ingest(core, solid((250, 250, 250)), "white.png")

    assert found(core, "color:darkslategrey") == found(core, "color:darkslategray") == {slate}
    assert found(core, "color:grey>30") == {slate}
    assert found(core, "color:grey>40") == set()  # its grey covers 35 %
    assert found(core, "color:white>60") == {slate, white}
    assert found(core, "color:darkslategray -color:white") == set()


def test_migration_0011_names_the_colours_stored_before_it(empty_database) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from db.migrate import upgrade
    from tests.old_rows import insert_analysed_image

    upgrade(empty_database.engine, "0010")
    with empty_database.engine.begin() as connection:
        insert_analysed_image(connection, 1)
        for rank, (css, simplified, percent) in enumerate(
                (("darkslategray", "grey", 30.0), ("gray", "grey", 25.0), ("teal", "teal", 20.0))):
            connection.execute(text(
                "INSERT INTO image_colors (image_id, rank, red, green, blue, hex, css, simplified, percent) "
                "VALUES (1, :rank, 0, 0, 0, '#000000', :css, :simplified, :percent)"),
                {"rank": rank, "css": css, "simplified": simplified, "percent": percent})

    upgrade(empty_database.engine)

    with empty_database.engine.connect() as connection:
        names = dict(connection.execute(text("SELECT name, percent FROM image_color_names WHERE image_id = 1")).all())
    assert names == {"darkslategray": 30.0, "gray": 25.0, "grey": 30.0, "teal": 20.0}  # grey: its largest colour


def test_a_colour_without_a_css_name_is_named_by_its_simplified_name_only() -> None:
    from bot.core.types import DominantColor, ImageProperties
    from db import visuals

    properties = ImageProperties(brightness=50.0, sharpness=50.0, contrast=50.0, source="rekognition",
                                 dominant_colors=(DominantColor(10, 20, 200, "#0a14c8", "", "blue", 60.0),))
    (names,) = [rows for table, rows in visuals.rows(1, properties, 0) if table is visuals.COLOR_NAMES]
    assert names == [{"image_id": 1, "name": "blue", "percent": 60.0}]


def test_like_and_dupes_name_an_image_the_caller_cannot_see_as_one_that_is_not_there(core: Core) -> None:
    photo = Image.open(SAMPLES / "cat-chelsea.jpg").convert("RGB")
    hidden = ingest(core, encoded(photo, "JPEG", quality=95), "cat.jpg", channel="C0PRIVATE1")
    public = ingest(core, (SAMPLES / "coffee.jpg").read_bytes(), "coffee.jpg")
    outsider, member = ["C0PUBLIC01"], ["C0PRIVATE1", "C0PUBLIC01"]

    assert core.search(f"dupes:{hidden}", channels=outsider).unseen == (hidden,)
    assert core.search(f"like:{hidden} OR dupes:{public}", channels=outsider).unseen == (hidden,)
    assert core.search("like:999999", channels=outsider).unseen == (999999,)
    assert core.search("dupes:999999").unseen == (999999,)
    assert core.search(f"like:{hidden} OR dupes:{public}", channels=member).unseen == ()
    assert core.search(f"dupes:{hidden}").unseen == ()  # the CLI sees every channel
    assert core.search("cat").unseen == ()
