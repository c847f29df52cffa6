"""Search and report data through the database: images ingested the way the product does it,
with scripted analyser results, then found (or not) with the query language."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from bot.core.search import parse_query
from bot.core.types import Source
from bot.errors import AnalyzerError, QuerySyntaxError
from db import search as db_search
from tests.images import make_image

_files = itertools.count(1)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def slack(channel: str = "C0PUBLIC", *, name: str | None = "general", user: str = "U0ALICE",
          user_name: str | None = "alice", when: datetime | None = None, file_id: str | None = None) -> Source:
    when = when or at(10)
    return Source.slack(
        team_id="T1", channel_id=channel, user_id=user, file_id=file_id or f"F{next(_files):05d}",
        message_ts=f"{when.timestamp():.6f}", channel_name=name, user_name=user_name,
        permalink=f"https://example.slack.com/archives/{channel}/p1",
    )


@pytest.fixture
def seed(core, fake_analyzer):  # type: ignore[no-untyped-def]
    """Ingest a new image whose analysis says exactly what is given; returns its id."""

    def _seed(*, labels=(), text=(), moderation=(), faces=0, source=None, sources=()):  # type: ignore[no-untyped-def]
        data = make_image()
        fake_analyzer.faces = faces > 0
        fake_analyzer.script(data, labels=labels, text=text, moderation=moderation, faces=faces)
        first = source or (sources[0] if sources else slack())
        result = core.ingest(data, first)
        assert result.outcome == "done", result
        for extra in sources[1:]:
            core.ingest(data, extra)
        return result.image_id

    return _seed


def ids(page) -> list[int]:  # type: ignore[no-untyped-def]
    return [hit.image.id for hit in page.hits]


def found(core, query: str, **options) -> set[int]:  # type: ignore[no-untyped-def]
    page = core.search(query, per_page=100, **options)
    assert page.total == len(page.hits)
    return set(ids(page))


# -- labels ----------------------------------------------------------------------------------


def test_label_search_finds_a_cat_through_its_parent_animal(core, seed):
    cat = seed(labels=[("Cat", 97.0, ["Animal", "Pet"])])
    seed(labels=[("Car", 99.0, ["Vehicle"])])

    assert found(core, "label:animal") == {cat}
    assert found(core, "label:Cat") == {cat}
    assert found(core, "label:pet") == {cat}


def test_a_label_below_the_default_confidence_is_not_found(core, seed):
    seed(labels=[("Dog", 70.0)])  # default label_min_confidence is 75

    assert found(core, "label:dog") == set()
    assert found(core, "dog") == set()


def test_conf_raises_or_lowers_the_threshold_for_label_terms(core, seed):
    sure = seed(labels=[("Dog", 95.0)])
    exactly = seed(labels=[("Dog", 85.0)])
    unsure = seed(labels=[("Dog", 60.0)])

    assert found(core, "label:dog conf>90") == {sure}
    assert found(core, "label:dog conf>85") == {sure}
    assert found(core, "label:dog conf>=85") == {sure, exactly}
    assert found(core, "dog conf>=55") == {sure, exactly, unsure}


def test_conf_on_its_own_finds_images_with_any_label_that_sure(core, seed):
    sure = seed(labels=[("Tree", 96.0)])
    seed(labels=[("Tree", 80.0)])

    assert found(core, "conf>95") == {sure}


def test_a_multi_word_label_is_found_quoted(core, seed):
    ice = seed(labels=[("Ice Cream", 92.0, ["Dessert", "Food"])])

    assert found(core, 'label:"ice cream"') == {ice}
    assert found(core, '"ice cream"') == {ice}


def test_a_free_word_in_the_plural_finds_the_singular_label(core, seed):
    cat = seed(labels=[("Cat", 97.0)])

    assert found(core, "cats") == {cat}


# -- text ------------------------------------------------------------------------------------


def test_text_phrase_with_percent_does_not_match_the_same_words_without_it(core, seed):
    sale = seed(text=["50% OFF everything"])
    seed(text=["50 off everything"])

    assert found(core, 'text:"50% off"') == {sale}


def test_text_phrase_is_case_insensitive_and_needs_the_words_in_order(core, seed):
    sale = seed(text=["Big SALE today"])
    seed(text=["today sale big"])

    assert found(core, 'text:"big sale"') == {sale}


def test_free_words_match_detected_text_with_stemming(core, seed):
    sign = seed(text=["No dogs allowed"])

    assert found(core, "dog") == {sign}
    assert found(core, "allowed dogs") == {sign}


def test_a_free_word_matches_either_a_label_or_text(core, seed):
    by_label = seed(labels=[("Pizza", 90.0, ["Food"])])
    by_text = seed(text=["Fresh pizza here"])
    seed(labels=[("Salad", 90.0)], text=["greens"])

    assert found(core, "pizza") == {by_label, by_text}


def test_a_phrase_of_stop_words_is_still_found(core, seed):
    hamlet = seed(text=["To be or not to be"])

    assert found(core, 'text:"to be"') == {hamlet}


def test_text_of_punctuation_only_is_matched_literally(core, seed):
    stars = seed(text=["*** stars ***"])
    seed(text=["no stars"])

    assert found(core, 'text:"***"') == {stars}


def test_snippet_is_the_line_that_matched(core, seed):
    seed(labels=[("Poster", 90.0)], text=["Grand opening", "50% off all week", "Main street"])

    (hit,) = core.search('text:"50% off"').hits
    assert hit.snippet == "50% off all week"
    (hit,) = core.search("street").hits
    assert hit.snippet == "Main street"
    (hit,) = core.search("label:poster").hits
    assert hit.snippet is None


# -- OR, negation, grouping ------------------------------------------------------------------


def test_or_finds_either(core, seed):
    cat = seed(labels=[("Cat", 97.0)])
    dog = seed(labels=[("Dog", 97.0)])
    seed(labels=[("Bird", 97.0)])

    assert found(core, "label:cat OR label:dog") == {cat, dog}


def test_or_binds_tighter_than_and(core, seed):
    cat_pets = seed(labels=[("Cat", 97.0)], source=slack("C0PETS", name="pets"))
    dog_pets = seed(labels=[("Dog", 97.0)], source=slack("C0PETS", name="pets"))
    seed(labels=[("Cat", 97.0)], source=slack("C0OTHER", name="other"))

    assert found(core, "cat OR dog in:#pets") == {cat_pets, dog_pets}


def test_negation_leaves_out_what_matches(core, seed):
    cat = seed(labels=[("Cat", 97.0, ["Animal"])])
    dog = seed(labels=[("Dog", 97.0, ["Animal"])])

    assert found(core, "label:animal -label:cat") == {dog}
    assert found(core, "-label:dog") == {cat}


def test_parentheses_group_and_negate_together(core, seed):
    cat_a = seed(labels=[("Cat", 97.0)], source=slack("C0AAA", name="a"))
    seed(labels=[("Dog", 97.0)], source=slack("C0BBB", name="b"))
    cat_c = seed(labels=[("Cat", 97.0)], source=slack("C0CCC", name="c"))

    assert found(core, "cat -(in:#b OR in:#c)") == {cat_a}
    assert found(core, "(in:#a OR in:#c) cat") == {cat_a, cat_c}


# -- moderation and has: ---------------------------------------------------------------------


def test_unsafe_finds_images_flagged_at_the_moderation_threshold(core, seed):
    violent = seed(moderation=[("Graphic Violence", 91.0, "Violence")])
    rude = seed(moderation=[("Middle Finger", 80.0, "Rude Gestures")])
    seed(moderation=[("Weapons", 55.0, "Violence")])  # under the default 60
    seed(labels=[("Tree", 90.0)])

    assert found(core, "unsafe") == {violent, rude}
    assert found(core, "has:moderation") == {violent, rude}
    assert found(core, "unsafe:violence") == {violent}
    assert found(core, "unsafe:rude") == {rude}
    assert found(core, "unsafe:graphic") == {violent}


def test_has_text_faces_and_labels(core, seed):
    texty = seed(text=["hello"])
    face = seed(faces=2)
    labelled = seed(labels=[("Tree", 90.0)])

    assert found(core, "has:text") == {texty}
    assert found(core, "has:faces") == {face}
    assert found(core, "has:labels") == {labelled}


# -- sightings: in:, from:, dates ------------------------------------------------------------


def test_in_matches_channel_name_id_and_slack_escape(core, seed):
    general = seed(labels=[("Cat", 97.0)], source=slack("C0GENERAL", name="General"))
    seed(labels=[("Cat", 97.0)], source=slack("C0RANDOM", name="random"))

    for query in ("in:#general", "in:general", "in:GENERAL", "in:C0GENERAL", "in:c0general",
                  "in:<#C0GENERAL|general>", "in:<#C0GENERAL>", "cat <#C0GENERAL>"):
        assert found(core, query) == {general}, query


def test_from_matches_user_name_id_and_slack_escape(core, seed):
    alices = seed(source=slack(user="U0ALICE", user_name="alice"))
    seed(source=slack(user="U0BOB", user_name="bob"))

    for query in ("from:@alice", "from:alice", "from:Alice", "from:U0ALICE", "from:<@U0ALICE|alice>",
                  "from:<@U0ALICE>"):
        assert found(core, query) == {alices}, query


def test_in_and_from_must_hold_for_the_same_post(core, seed):
    seed(sources=[slack("C0AAA", name="a", user="U0BOB", user_name="bob"),
                  slack("C0BBB", name="b", user="U0ALICE", user_name="alice")])

    assert found(core, "in:#a from:@alice") == set()
    assert len(found(core, "in:#a from:@bob")) == 1


def test_after_before_and_on_compare_when_it_was_posted(core, seed):
    early = seed(source=slack(when=at(2)))
    middle = seed(source=slack(when=at(15)))
    late = seed(source=slack(when=at(28)))

    assert found(core, "after:2026-01-15") == {middle, late}
    assert found(core, "before:2026-01-15") == {early}
    assert found(core, "after:2026-01-10 before:2026-01-20") == {middle}
    assert found(core, "on:2026-01-15") == {middle}
    assert found(core, "after:2026-01-15T13:00Z") == {late}


def test_last_7d_finds_only_recent_posts(core, seed):
    now = datetime.now(UTC)
    recent = seed(source=slack(when=now - timedelta(days=2)))
    seed(source=slack(when=now - timedelta(days=30)))

    assert found(core, "last 7d") == {recent}
    assert found(core, "-last 7d") != {recent}


def test_file_sightings_match_dates_but_not_channels(core, seed):
    on_disk = seed(source=Source.file("photos/cat.png"))

    assert found(core, "in:#general") == set()
    assert found(core, "today") == {on_disk}


# -- who may see what ------------------------------------------------------------------------


def test_a_private_channels_image_never_reaches_someone_outside_it(core, seed):
    secret = seed(labels=[("Cat", 97.0)], text=["launch plan"], source=slack("C0PRIVATE", name="secret"))
    public = seed(labels=[("Dog", 97.0)], source=slack("C0PUBLIC", name="general"))
    outsider = {"channels": ["C0PUBLIC"]}

    for query in ("", "cat", "label:cat OR label:dog", "-label:nothing", "launch", "in:#secret",
                  "in:<#C0PRIVATE>", "cat OR in:#secret", "-in:#general", "-(-label:cat)", "unsafe OR -unsafe"):
        assert secret not in found(core, query, **outsider), query
    assert found(core, "label:cat OR label:dog", **outsider) == {public}
    assert secret in found(core, "cat", channels=["C0PRIVATE"])


def test_an_image_also_posted_publicly_shows_only_the_visible_post(core, seed):
    both = seed(labels=[("Cat", 97.0)], sources=[slack("C0PUBLIC", name="general", when=at(5)),
                                                  slack("C0PRIVATE", name="secret", when=at(9))])

    (hit,) = core.search("cat", channels=["C0PUBLIC"]).hits
    assert hit.image.id == both
    assert hit.sighting is not None and hit.sighting.channel_id == "C0PUBLIC"
    assert {s.channel_id for s in hit.image.sightings} == {"C0PUBLIC"}
    for full_records in (True, False):  # a report's records too, whichever it loads
        (listed,) = core.report("cat", channels=["C0PUBLIC"], full_records=full_records).images
        assert [s.channel_id for s in listed.sightings] == ["C0PUBLIC"]
    assert {s.channel_id for s in core.search("cat").hits[0].image.sightings} == {"C0PUBLIC", "C0PRIVATE"}
    assert found(core, "in:#secret", channels=["C0PUBLIC"]) == set()
    assert found(core, "cat -in:#secret", channels=["C0PUBLIC"]) == {both}


def test_channel_restriction_leaves_out_files_and_an_empty_list_sees_nothing(core, seed):
    seed(labels=[("Cat", 97.0)], source=Source.file("cat.png"))
    seed(labels=[("Cat", 97.0)], source=slack("C0PUBLIC"))

    assert len(found(core, "cat", channels=["C0PUBLIC"])) == 1
    assert found(core, "cat", channels=[]) == set()
    assert len(found(core, "cat")) == 2  # the CLI (no restriction) sees everything


def test_the_shown_sighting_is_the_newest_visible_one_in_the_asked_channel(core, seed):
    seed(labels=[("Cat", 97.0)], sources=[slack("C0AAA", name="a", when=at(3)),
                                          slack("C0BBB", name="b", when=at(8)),
                                          slack("C0AAA", name="a", when=at(6))])

    (hit,) = core.search("cat").hits
    assert hit.sighting.channel_id == "C0BBB"
    (hit,) = core.search("cat in:#a").hits
    assert (hit.sighting.channel_id, hit.sighting.seen_at) == ("C0AAA", at(6))


def test_deleted_posts_are_not_searched(core, seed):
    gone = seed(labels=[("Cat", 97.0)], source=slack(file_id="F0GONE"))
    kept = seed(labels=[("Cat", 97.0)], sources=[slack("C0AAA", name="a", file_id="F0DEL", when=at(20)),
                                                  slack("C0BBB", name="b", file_id="F0KEEP", when=at(4))])
    core.delete_slack_file("F0GONE")
    core.delete_slack_file("F0DEL")

    assert found(core, "cat") == {kept}
    (hit,) = core.search("cat").hits
    assert hit.sighting.file_id == "F0KEEP"
    assert found(core, "in:#a") == set()
    assert gone not in found(core, "")
    for query in ("cat in:#a", "cat in:C0AAA", "cat in:<#C0AAA>", "cat in:#b"):  # listed by label, then the post
        assert found(core, query) == ({kept} if query.endswith("#b") else set()), query


# -- status, ranking, pages ------------------------------------------------------------------


def test_only_analysed_images_are_searched(core, seed, fake_analyzer):
    done = seed(labels=[("Cat", 97.0)])
    broken = make_image()
    fake_analyzer.fail(broken, AnalyzerError("The analysis service failed."))
    assert core.ingest(broken, slack()).outcome == "failed"

    assert found(core, "") == {done}


def test_higher_label_confidence_ranks_first(core, seed):
    low = seed(labels=[("Cat", 80.0)], source=slack(when=at(20)))
    high = seed(labels=[("Cat", 99.0)], source=slack(when=at(1)))
    middle = seed(labels=[("Cat", 90.0)], source=slack(when=at(10)))

    page = core.search("cat")
    assert ids(page) == [high, middle, low]
    assert [hit.score for hit in page.hits] == [99.0, 90.0, 80.0]


def test_a_text_match_adds_to_the_score(core, seed):
    label_only = seed(labels=[("Pizza", 95.0)], source=slack(when=at(20)))
    both = seed(labels=[("Pizza", 80.0)], text=["pizza party"], source=slack(when=at(1)))

    assert ids(core.search("pizza")) == [both, label_only]


def test_ties_rank_newest_post_first(core, seed):
    old = seed(labels=[("Cat", 97.0)], source=slack(when=at(1)))
    new = seed(labels=[("Cat", 97.0)], source=slack(when=at(25)))
    mid = seed(labels=[("Cat", 97.0)], source=slack(when=at(12)))

    assert ids(core.search("cat")) == [new, mid, old]
    assert ids(core.search("")) == [new, mid, old]


def test_pages_cover_every_match_once_in_a_stable_order(core, seed):
    made = [seed(labels=[("Cat", 97.0)], source=slack(when=at(1 + i % 5))) for i in range(23)]

    pages = [core.search("cat", page=n, per_page=10) for n in (1, 2, 3)]
    assert [p.total for p in pages] == [23, 23, 23]
    assert [len(p.hits) for p in pages] == [10, 10, 3]
    assert [p.has_more for p in pages] == [True, True, False]
    seen = [i for p in pages for i in ids(p)]
    assert sorted(seen) == sorted(made)
    assert ids(core.search("cat", page=2, per_page=10)) == ids(pages[1])
    assert core.search("cat", page=4, per_page=10).hits == ()


def test_the_page_echoes_the_query_text(core, seed):
    seed(labels=[("Cat", 97.0)])
    page = core.search("cat  OR dog", page=1, per_page=5)
    assert (page.query, page.page, page.per_page) == ("cat  OR dog", 1, 5)


# -- safety ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    "'; DROP TABLE images; --", '"', "*", "NEAR(a b)", '"NEAR("', "text:NEAR(x", '"a" OR "b"',
    'text:"\\" OR 1=1 --"', "label:%", "label:_", "in:%", "from:_", "unsafe:%", '"text : x"', "^cat", "-*",
    "AND OR", "ÅÄÖ 日本語 🐱",
])
def test_hostile_queries_return_normally_and_touch_nothing(core, seed, query):
    seed(labels=[("Cat", 97.0)], text=["plain text"])
    try:
        page = core.search(query)
    except QuerySyntaxError as err:
        assert "Example:" in err.user_message
    else:
        assert page.total == len(page.hits)
        assert all(hit.image.labels[0].name == "Cat" for hit in page.hits)
    assert "images" in inspect(core.database.engine).get_table_names()
    assert len(found(core, "")) == 1


def test_like_wildcards_in_filters_are_literal(core, seed):
    seed(labels=[("Cat", 97.0)], text=["plain text"], moderation=[("Violence", 90.0)],
         source=slack("C0AAA", name="a"))

    for query in ("label:%", "label:_", "in:%", "from:%", 'text:"%"', "unsafe:%", "unsafe:_"):
        assert found(core, query) == set(), query


# -- report data -----------------------------------------------------------------------------


def test_report_counts_top_labels_at_the_threshold_across_done_images(core, seed, fake_analyzer):
    seed(labels=[("Cat", 97.0, ["Animal"]), ("Grass", 80.0)])
    seed(labels=[("Cat", 88.0, ["Animal"])])
    seed(labels=[("Dog", 90.0, ["Animal"]), ("Grass", 60.0)])  # grass under 75 is not counted
    broken = make_image()
    fake_analyzer.fail(broken, AnalyzerError("The analysis service failed."))
    core.ingest(broken, slack())

    data = core.report("")
    assert [(c.name, c.images) for c in data.top_labels] == [("Cat", 2), ("Dog", 1), ("Grass", 1)]
    assert len(data.images) == 4
    assert len(data.analysed) == 3 and len(data.failed) == 1
    assert data.failed[0].failure_reason
    assert data.note is None


def test_report_applies_the_query_and_channel_restriction(core, seed):
    cat = seed(labels=[("Cat", 97.0)], source=slack("C0PUBLIC"))
    seed(labels=[("Cat", 97.0)], source=slack("C0PRIVATE", name="secret"))
    seed(labels=[("Dog", 97.0)], source=slack("C0PUBLIC"))

    data = core.report("label:cat", channels=["C0PUBLIC"], title="Cats")
    assert [i.id for i in data.images] == [cat]
    assert [(c.name, c.images) for c in data.top_labels] == [("Cat", 1)]
    assert (data.title, data.query) == ("Cats", "label:cat")
    assert all(s.channel_id == "C0PUBLIC" for i in data.images for s in i.sightings)


def test_report_lists_newest_first_and_notes_a_cap(core, seed, monkeypatch):
    old = seed(labels=[("Cat", 97.0)], source=slack(when=at(1)))
    new = seed(labels=[("Cat", 97.0)], source=slack(when=at(9)))
    assert [i.id for i in core.report("").images] == [new, old]

    monkeypatch.setattr(db_search, "REPORT_MAX_IMAGES", 1)
    data = core.report("")
    assert [i.id for i in data.images] == [new]
    assert data.note and "1 of 2" in data.note
    assert [(c.name, c.images) for c in data.top_labels] == [("Cat", 2)]


def test_report_of_a_period_uses_the_date_shorthands(core, seed):
    now = datetime.now(UTC)
    recent = seed(source=slack(when=now - timedelta(hours=3)))
    seed(source=slack(when=now - timedelta(days=20)))

    assert [i.id for i in core.report("last 24h").images] == [recent]


def test_search_functions_accept_a_parsed_query_directly(core, seed):
    cat = seed(labels=[("Cat", 97.0)])
    with core.database.transaction() as session:
        page = db_search.search_images(
            session, parse_query("cat"), query_text="cat", channels=None, page=1, per_page=10,
            label_min_confidence=75.0, moderation_min_confidence=60.0)
    assert ids(page) == [cat]
