"""How searches run, on SQLite and PostgreSQL: the indexes their plans use, the bounded rounds that
rank wide queries (the same answers as ranking every match), and ``images.last_seen_at``, the
newest live post that recency is read from."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import column, insert, select, table

from bot.config import Settings
from bot.core.types import Source
from bot.wiring import build_core
from db import models, queries, search_plan
from db import search as db_search
from db.base import UTCDateTime
from db.bulk_records import load_records
from db.migrate import upgrade
from db.plans import captured_statements, explain
from db.session import Database
from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database
from tests.images import make_image

_files = itertools.count(1)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def slack(channel: str = "C0PUBLIC", *, name: str = "general", user: str = "U0ALICE", user_name: str = "alice",
          when: datetime | None = None, file_id: str | None = None) -> Source:
    when = when or at(10)
    return Source.slack(
        team_id="T1", channel_id=channel, user_id=user, file_id=file_id or f"F{next(_files):05d}",
        message_ts=f"{when.timestamp():.6f}", channel_name=name, user_name=user_name,
        permalink=f"https://example.slack.com/archives/{channel}/p1",
    )


def seeder(core, fake_analyzer):  # type: ignore[no-untyped-def]
    """Ingest a new image whose analysis says exactly what is given; returns its id."""

    def _seed(*, labels=(), text=(), moderation=(), faces=0, sources=()):  # type: ignore[no-untyped-def]
        data = make_image()
        fake_analyzer.faces = faces > 0
        fake_analyzer.script(data, labels=labels, text=text, moderation=moderation, faces=faces)
        sources = list(sources) or [slack()]
        result = core.ingest(data, sources[0])
        assert result.outcome == "done", result
        for extra in sources[1:]:
            core.ingest(data, extra)
        return result.image_id

    return _seed


@pytest.fixture
def seed(core, fake_analyzer):  # type: ignore[no-untyped-def]
    return seeder(core, fake_analyzer)


def last_seen(core, image_id: int) -> datetime | None:  # type: ignore[no-untyped-def]
    with core.database.transaction() as session:
        return session.execute(select(models.Image.last_seen_at).where(models.Image.id == image_id)).scalar_one()


def plans(core, query: str, channels: list[str] | None = None) -> str:  # type: ignore[no-untyped-def]
    """Every plan line of every statement a search runs."""
    with captured_statements(core.database.engine) as statements:
        core.search(query, channels=channels)
    assert statements
    engine = core.database.engine
    return "\n".join(line for statement in statements for line in explain(engine, statement, avoid_scans=True))


def scans_images(plan: str) -> bool:
    """A read of the whole ``images`` table (SQLite ``SCAN images``, PostgreSQL ``Seq Scan on images``)."""
    return bool(re.search(r"^\s*SCAN images$|Seq Scan on images\b", plan, re.MULTILINE))


# -- last_seen_at ----------------------------------------------------------------------------------


def test_a_repost_moves_last_seen_at_to_the_newest_post(core, fake_analyzer):
    data = make_image()
    fake_analyzer.script(data, labels=[("Cat", 97.0)])
    image_id = core.ingest(data, slack(when=at(5))).image_id
    assert last_seen(core, image_id) == at(5)

    core.ingest(data, slack("C0OTHER", name="other", when=at(9)))
    assert last_seen(core, image_id) == at(9)

    core.ingest(data, slack(when=at(2)))  # an older post found later changes nothing
    assert last_seen(core, image_id) == at(9)


def test_deleting_the_newest_post_falls_back_to_the_next_newest(core, seed):
    image_id = seed(labels=[("Cat", 97.0)], sources=[slack(when=at(5), file_id="F0OLD"),
                                                     slack(when=at(9), file_id="F0NEW")])
    assert last_seen(core, image_id) == at(9)

    core.delete_slack_file("F0NEW")
    assert last_seen(core, image_id) == at(5)

    core.delete_slack_file("F0OLD")
    assert last_seen(core, image_id) is None
    assert core.search("cat").hits == ()


def test_deleting_an_older_post_keeps_last_seen_at(core, seed):
    image_id = seed(sources=[slack(when=at(5), file_id="F0OLD"), slack(when=at(9), file_id="F0NEW")])

    core.delete_slack_file("F0OLD")
    assert last_seen(core, image_id) == at(9)




def test_the_migration_fills_last_seen_at_from_the_live_posts(empty_database):
    upgrade(empty_database.engine, "0001")
    images = table("images", *(column(name) for name in (
        "id", "sha256", "byte_size", "status", "failure_retryable", "attempts", "label_count", "text_line_count",
        "face_count", "max_moderation_confidence")), column("created_at", UTCDateTime()),
        column("updated_at", UTCDateTime()))
    sightings = table("sightings", column("image_id"), column("source_kind"), column("source_key"), column("name"),
                      column("seen_at", UTCDateTime()), column("deleted_at", UTCDateTime()))
    with empty_database.engine.begin() as connection:
        for image_id in (1, 2):
            connection.execute(insert(images).values(
                id=image_id, sha256=f"{image_id:064x}", byte_size=1, status="done", failure_retryable=False,
                attempts=1, label_count=0, text_line_count=0, face_count=0, max_moderation_confidence=0.0,
                created_at=at(1), updated_at=at(1)))
        for image_id, day, deleted in ((1, 3, None), (1, 7, None), (1, 9, at(10)), (2, 4, at(5))):
            connection.execute(insert(sightings).values(
                image_id=image_id, source_kind="file", source_key=f"file:{image_id}-{day}", name="x.png",
                seen_at=at(day), deleted_at=deleted))

    upgrade(empty_database.engine)

    with empty_database.transaction() as session:
        rows = session.execute(select(models.Image.id, models.Image.last_seen_at))
        found = {row.id: row.last_seen_at for row in rows}
    assert found == {1: at(7), 2: None}


# -- plans -----------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def quiet_core(request, tmp_path, storage, fake_analyzer):  # type: ignore[no-untyped-def]
    """A Core on a database of its own. On PostgreSQL without autovacuum, so no table ever has
    statistics: the planner costs every table alike, as it does SQLite's without ``ANALYZE``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/plans.db"
    else:
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL tests need IMGBOT_TEST_POSTGRES_URL (bash .ci/run sets it up)")
        url = create_postgres_database()
        database = Database(url)
        database.ensure_schema()
        with database.engine.begin() as connection:
            tables = connection.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for name in tables.scalars().all():
                connection.exec_driver_sql(f'ALTER TABLE "{name}" SET (autovacuum_enabled = false)')
        database.dispose()
    built = build_core(Settings(database_url=url, storage_url=f"file://{tmp_path}/images"), storage=storage,
                       analyzer_factory=lambda: fake_analyzer)
    yield built
    built.database.dispose()
    if request.param == "postgresql":
        drop_postgres_database(url)


@pytest.fixture
def collection(quiet_core, fake_analyzer):  # type: ignore[no-untyped-def]
    seed = seeder(quiet_core, fake_analyzer)
    seed(labels=[("Cat", 97.0, ["Animal"])], text=["Big sale today"],
         sources=[slack("C0DESIGN", name="design", user="U0BOB", user_name="bob", when=at(3))])
    seed(labels=[("Dog", 91.0, ["Animal"])], moderation=[("Weapons", 80.0, "Violence")],
         sources=[slack("C0PUBLIC", when=at(12))])
    seed(labels=[("Car", 88.0)], text=["sale"], sources=[slack("C0PUBLIC", when=at(20))])
    return quiet_core


@pytest.mark.parametrize(("query", "index"), [
    ("label:cat", "ix_label_terms_term_confidence_image_id"),
    ("label:animal", "ix_label_terms_term_confidence_image_id"),
    ("cat", "ix_label_terms_term_confidence_image_id"),
    ("in:#design", "ix_sightings_lower_channel_name"),
    ("from:@bob", "ix_sightings_lower_user_name"),
    ("in:<#C0DESIGN>", "ix_sightings_channel_id_seen_at_image_id"),
    ("after:2026-01-15", "ix_sightings_seen_at_image_id"),
    ("unsafe", "ix_images_max_moderation_confidence"),
])
def test_typical_queries_are_answered_from_their_index(collection, query, index):
    plan = plans(collection, query)

    if collection.database.dialect == "sqlite" or not index.startswith("ix_images_"):
        # (On a few rows PostgreSQL may read images through another of its indexes instead.)
        assert index in plan
    assert not scans_images(plan)


@pytest.mark.parametrize("quiet_core", ["sqlite"], indirect=True)  # PostgreSQL plans the check by cost
@pytest.mark.parametrize(("query", "look_up"), [
    ("label:cat in:#design", "COVERING INDEX ix_sightings_lower_channel_name (channel_name=? AND image_id=?)"),
    ("label:cat in:<#C0DESIGN>", "INDEX ix_sightings_live_channel_id_image_id (channel_id=? AND image_id=?)"),
    ("label:cat from:@bob", "COVERING INDEX ix_sightings_lower_user_name (user_name=? AND image_id=?)"),
    ("label:cat from:<@U0BOB>", "COVERING INDEX ix_sightings_user_id_image_id (user_id=? AND image_id=?)"),
])
def test_sqlite_turns_away_images_from_other_channels_and_users_from_an_index(collection, query, look_up):
    # ``label:cat`` lists the images; each is checked for the channel or user in that index alone
    # before its posts are read (``quality:blurry in:#design`` at a million images: 176 -> 89 ms).
    for channels in (None, ["C0PUBLIC", "C0DESIGN"]):
        assert look_up in plans(collection, query, channels=channels)


def test_text_is_found_through_the_full_text_index(collection):
    plan = plans(collection, 'text:"sale"')
    full_text = "search_fts" if collection.database.dialect == "sqlite" else "ix_search_documents_text_tsv"

    assert full_text in plan
    assert not scans_images(plan)


def test_a_slack_users_search_starts_from_their_channels_posts(collection, monkeypatch):
    monkeypatch.setattr(search_plan, "SORT_ALL_MAX", 0)  # rank in rounds, as a wide query at scale does
    monkeypatch.setattr(search_plan, "FIRST_ROUND", 1)

    plan = plans(collection, "", channels=["C0PUBLIC", "C0DESIGN"])

    assert "ix_sightings_channel_id_seen_at_image_id" in plan or "ix_sightings_live_channel_id_image_id" in plan
    assert "ix_images_status_last_seen_at" in plan


def test_a_wide_search_reads_the_newest_images_from_the_index(collection, monkeypatch):
    monkeypatch.setattr(search_plan, "SORT_ALL_MAX", 0)
    monkeypatch.setattr(search_plan, "FIRST_ROUND", 1)

    plan = plans(collection, "")

    assert "ix_images_status_last_seen_at" in plan


# -- ranking in rounds -----------------------------------------------------------------------------


QUERIES = ["", "cat", "label:animal", "cat OR dog", "sale", "-label:cat", "cat OR sale", "label:cat label:animal",
           "in:<#C0A>", "unsafe", "dog -in:<#C0B>", "(cat OR bird) after:2026-01-10", "conf>90", '"big sale"']


@pytest.fixture
def varied(seed):  # type: ignore[no-untyped-def]
    """40 images with labels, text, flags and posts drawn at random (the same every run)."""
    rng = random.Random(7)
    kinds = [("Cat", ["Animal", "Pet"]), ("Dog", ["Animal", "Pet"]), ("Bird", ["Animal"]), ("Car", ["Vehicle"])]
    for _ in range(40):
        chosen = rng.sample(kinds, rng.randint(0, 3))
        labels = [(name, round(rng.uniform(60, 100), 1), parents) for name, parents in chosen]
        text = rng.choice([[], [], ["Big sale today"], ["cat cafe"], ["sale", "dog walk"]])
        moderation = [("Weapons", 85.0, "Violence")] if rng.random() < 0.2 else []
        sources = [slack(rng.choice(["C0A", "C0B", "C0C"]), name="x", when=at(rng.randint(1, 28), rng.randint(0, 23)))
                   for _ in range(rng.randint(1, 3))]
        seed(labels=labels, text=text, moderation=moderation, sources=sources)


@pytest.mark.parametrize("channels", [None, ["C0A", "C0B"]])
def test_ranking_in_rounds_gives_the_same_pages_as_ranking_every_match(core, varied, monkeypatch, channels):
    def pages(query: str) -> list[tuple[int, list[tuple[int, float]]]]:
        found = []
        for number in (1, 2, 3):
            page = core.search(query, channels=channels, page=number, per_page=4)
            found.append((page.total, [(hit.image.id, hit.score) for hit in page.hits]))
        return found

    everything = {query: pages(query) for query in QUERIES}
    monkeypatch.setattr(search_plan, "SORT_ALL_MAX", 0)  # always in rounds,
    monkeypatch.setattr(search_plan, "FIRST_ROUND", 1)  # starting from windows of one image,
    monkeypatch.setattr(search_plan, "GROWTH", 2)
    monkeypatch.setattr(search_plan, "PAIR_MAX", 2)  # and often too many images in two terms to bring in

    for query in QUERIES:
        assert pages(query) == everything[query], query


@pytest.mark.parametrize("first_pair_floor", [0.0, 0.99, 1.0])
def test_the_first_pair_floor_changes_the_cost_but_never_the_pages(core, varied, monkeypatch, first_pair_floor):
    queries = ["cat OR dog", "label:cat OR label:dog OR label:bird", "(cat OR bird) after:2026-01-10"]
    everything = {query: [(h.image.id, h.score) for h in core.search(query, per_page=12).hits] for query in queries}
    monkeypatch.setattr(search_plan, "SORT_ALL_MAX", 0)
    monkeypatch.setattr(search_plan, "FIRST_ROUND", 1)
    monkeypatch.setattr(search_plan, "FIRST_PAIR_FLOOR", first_pair_floor)  # 1.0: pairs at 100, too high to help

    for query in queries:
        assert [(h.image.id, h.score) for h in core.search(query, per_page=12).hits] == everything[query], query


@pytest.mark.parametrize("early_read", [1, 3, 100])
def test_a_count_found_beyond_the_cap_early_is_the_same_count(core, seed, monkeypatch, early_read):
    for channel in ("C0HIDDEN", "C0HIDDEN", "C0A", "C0A", "C0A", "C0A", "C0A"):  # two cats in a channel not shown
        seed(labels=[("Cat", 97.0)], sources=[slack(channel)])
    seed(labels=[("Dog", 90.0)], sources=[slack("C0A")])
    monkeypatch.setattr(db_search, "COUNT_CAP", 3)
    monkeypatch.setattr(search_plan, "EARLY_READ", early_read)
    early = search_plan.beyond_cap_early
    answers: list[bool] = []
    monkeypatch.setattr(db_search, "beyond_cap_early", lambda *a: answers.append(early(*a)) or answers[-1])

    capped = core.search("cat OR dog", channels=["C0A"], per_page=1)
    deep = core.search("cat OR dog", channels=["C0A", "C0B"], per_page=1, page=6)  # the cap is then 6

    assert (capped.total, capped.total_is_estimate) == (3, True)
    assert (deep.total, deep.total_is_estimate, len(deep.hits)) == (6, False, 1)
    # PostgreSQL: only a head holding all seven cats (five shown) is found beyond the cap early.
    on_postgres = core.database.engine.dialect.name == "postgresql"
    assert answers == [on_postgres and early_read == 100, False]


def test_a_count_beyond_the_cap_is_an_estimate(core, seed, monkeypatch):
    for _ in range(3):
        seed(labels=[("Cat", 97.0)])
    monkeypatch.setattr(db_search, "COUNT_CAP", 2)

    page = core.search("cat", per_page=1)
    assert (page.total, page.total_is_estimate, page.has_more) == (2, True, True)
    last = core.search("cat", page=3, per_page=1)
    assert (last.total, last.total_is_estimate, last.has_more, len(last.hits)) == (3, False, False, 1)


# -- records and reports ---------------------------------------------------------------------------


def test_records_read_in_bulk_equal_the_orm_ones(core, seed):
    ids = [
        seed(labels=[("Cat", 97.0, ["Animal"]), ("Grass", 80.0)], text=["Big sale", "today"],
             moderation=[("Weapons", 80.0, "Violence")], faces=2,
             sources=[slack(when=at(3)), slack("C0B", name="b", when=at(8))]),
        seed(),
    ]
    core.record_moderation_decision(ids[0], "confirmed", "U0MOD")

    with core.database.transaction() as session:
        assert load_records(session, [*reversed(ids), 999]) == queries.load_image_records(session, ids[::-1])


def test_markdown_and_csv_reports_from_narrow_records_equal_those_from_full_ones(core, varied):
    full = core.report("", channels=None)
    # Made a moment later, perhaps in the next second: the same "generated at", so only the records differ.
    narrow = dataclasses.replace(core.report("", channels=None, full_records=False), generated_at=full.generated_at)

    assert narrow.images and narrow.totals == full.totals
    for fmt in ("md", "csv"):
        assert core.render_report(narrow, fmt) == core.render_report(full, fmt)


def test_report_totals_count_every_match_beyond_the_listed_ones(core, seed, monkeypatch):
    seed(labels=[("Cat", 97.0)], text=["hello"], sources=[slack(when=at(1))])
    seed(labels=[("Cat", 90.0)], moderation=[("Weapons", 80.0, "Violence")], sources=[slack(when=at(9))])
    monkeypatch.setattr(db_search, "REPORT_MAX_IMAGES", 1)

    for channels in (None, ["C0PUBLIC"]):
        data = core.report("", channels=channels)
        assert len(data.images) == 1
        assert data.totals is not None
        assert (data.totals.images, data.totals.analysed, data.totals.with_text, data.totals.flagged) == (2, 2, 1, 1)
        assert [(c.name, c.images) for c in data.top_labels] == [("Cat", 2)]


@pytest.mark.parametrize("share_sample", [500, 10])
def test_a_report_for_someone_in_one_of_five_channels_is_listed_in_one_round(core, seed, monkeypatch, share_sample):
    # The first round starts from as many of the newest images as hold twice the list *they* can
    # see (judged from the newest share_sample), not twice the list of everyone's images.
    for n in range(30):
        seed(labels=[("Cat", 90.0)], sources=[slack(f"C0{'ABCDE'[n % 5]}", when=at(1 + n % 28, n % 24))])
    monkeypatch.setattr(db_search, "REPORT_MAX_IMAGES", 5)
    listed = [record.id for record in core.report("", channels=["C0A"]).images]
    monkeypatch.setattr(search_plan, "SORT_ALL_MAX", 0)
    monkeypatch.setattr(search_plan, "FIRST_ROUND", 1)
    monkeypatch.setattr(search_plan, "SHARE_SAMPLE", share_sample)

    with captured_statements(core.database.engine) as statements:
        data = core.report("", channels=["C0A"])

    assert [record.id for record in data.images] == listed
    assert len(listed) == 5
    assert len([s for s in statements if " AS score" in s.sql]) == 1


@pytest.mark.postgres
def test_postgresql_connections_run_without_jit(migrated_postgres_url):
    """JIT compiling added 15-40 ms to statements that take milliseconds (measured at 1,000,000 images)."""
    database = Database(migrated_postgres_url)
    try:
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW jit").scalar() == "off"
    finally:
        database.dispose()
