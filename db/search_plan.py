"""How a search reads its matches without reading them all, for ``db.search``: counting them (up to
a cap) from the one index that lists them best, and ranking a page in rounds (see ``db.search``'s
docstring for the rounds and why a page they find is exact).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    exists,
    func,
    intersect,
    literal_column,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.orm import Session

from bot.core.search import (
    And,
    ChannelFilter,
    ColorFilter,
    DupesFilter,
    HasFilter,
    LabelFilter,
    LikeFilter,
    Or,
    PeopleFilter,
    QualityFilter,
    Query,
    SensitiveFilter,
    Term,
    TextFilter,
    UnsafeFilter,
    UserFilter,
    Word,
)
from db.bulk_records import one_of
from db.models import (
    Image,
    LabelTerm,
    SearchDocument,
    SensitiveFinding,
    Sighting,
)
from db.search_terms import (
    FTS_TABLE,
    SIGHTING_TERMS,
    TEXT_MATCH_SCORE,
    Context,
    LabelPart,
    LikePart,
    TextPart,
    label_candidates,
    looked_up_ids,
    looks_select,
    people_condition,
    query_conditions,
    score_expression,
    score_parts,
    sensitive_conditions,
    sighting_condition,
    text_match,
    text_tokens,
    top_level_sighting_terms,
    where_or_who,
)

COUNT_CAP = 1_000  # a search counts its matches up to here, then says "1,000+"
SORT_ALL_MAX = COUNT_CAP  # this many matches or fewer are ranked all at once
ESTIMATE_UP_TO = 2_000  # rows read of each way to list the matches, to pick the shortest (SQLite)
EARLY_READ = 2_500  # rows of one list read to find a count beyond the cap early (PostgreSQL)
NARROW_UP_TO = 50_000  # a second list of this many rows at most also narrows the first (SQLite)
FIRST_ROUND = 400  # candidates per index in the first round of ``rank_matches``; grows by ``GROWTH``
GROWTH = 8
SHARE_SAMPLE = 500  # newest images looked at to judge how many a restricted caller sees
PAIR_MAX = 5_000  # images with two label terms at once that a round brings in, at most
FIRST_PAIR_FLOOR = 0.8  # the first round's pairs: both terms this far from the threshold to 100


# -- where the matches come from ---------------------------------------------------------------
#
# Counting "up to 1,001" must not read every match of ``label:animal`` (300,000 images) or
# ``after:`` (a month of posts). The matches are read from *drivers*: lists of image ids from one
# index each (repeats allowed) that include every match, e.g. ``label_terms`` for ``label:dog``,
# the channel's posts for ``in:#pets``; each image they lead to is then checked with the probes.
# SQLite would turn ``images.id IN (list)`` into a temporary table of the whole list before reading
# a row, so there the shortest driver is read in order and the count stops when it has enough.
# PostgreSQL gets every driver as a semi-join, which it plans by cost, and the probes fenced off
# (``Context.exists``) so that a wrong row estimate cannot make it hash a whole table.


def _driver(term: Term, ctx: Context) -> list[list[Select[Any]]]:
    """Ways to list (a superset of) the images ``term`` matches, each way the parts of one
    ``UNION ALL`` read from indexes; none when only a scan of ``images`` would do (``-label:cat``)."""
    if isinstance(term, And):
        return [way for t in term.terms for way in _driver(t, ctx)]
    if isinstance(term, Or):
        branches = [_driver(t, ctx) for t in term.terms]
        return [[part for ways in branches for part in ways[0]]] if all(branches) else []
    if isinstance(term, LabelFilter):
        return [[_label_driver([term.name.strip().lower()[:255]], ctx)]]
    if isinstance(term, Word):
        text = text_driver(term.text, ctx)
        return [[_label_driver(label_candidates(term), ctx), text]] if text is not None else []
    if isinstance(term, TextFilter):
        text = text_driver(term.phrase, ctx)
        return [[text]] if text is not None else []
    if isinstance(term, (DupesFilter, LikeFilter)):
        return [[select(Image.id.label("image_id")).where(one_of(Image.id, looked_up_ids(term), ctx.dialect))]]
    if isinstance(term, (ColorFilter, QualityFilter)):
        listed = looks_select(term, ctx)
        return [[listed]] if listed is not None else []
    if isinstance(term, PeopleFilter) and term.minimum > 0:  # images with people: the count's index lists them
        return [[select(Image.id.label("image_id")).where(people_condition(term))]]
    if isinstance(term, SensitiveFilter):  # few images show any: the findings' index lists them
        return [[select(SensitiveFinding.image_id.label("image_id")).where(*sensitive_conditions(term))]]
    if isinstance(term, UnsafeFilter) or (isinstance(term, HasFilter) and term.what == "moderation"):
        if ctx.dialect != "sqlite":
            return []  # a range on the image row itself, which PostgreSQL's planner reads directly
        return [[select(Image.id.label("image_id")).where(Image.max_moderation_confidence >= ctx.moderation_min)]]
    if isinstance(term, SIGHTING_TERMS):
        # ``+image_id``: so that SQLite reads the term's index rather than ix_sightings_image_id
        # (which would hand the ids over in order, for the DISTINCT, after reading every post).
        return [[select(ctx.plain(Sighting.image_id).label("image_id"))
                 .where(sighting_condition(term, ctx, indexed=True))]]
    return []


def _label_driver(candidates: Sequence[str], ctx: Context) -> Select[Any]:
    return select(LabelTerm.image_id).where(LabelTerm.term.in_(list(candidates)), ctx.confident(LabelTerm.confidence))


def text_driver(text: str, ctx: Context) -> Select[Any] | None:
    tokens = text_tokens(text)
    if not tokens or " ".join(tokens) in ctx.stop_words_only:
        return None
    words = " ".join(tokens)
    if ctx.dialect == "postgresql":
        english: ColumnElement[Any] = literal_column("'english'")
        tsquery = func.phraseto_tsquery(english, bindparam(None, words, unique=True))
        return select(SearchDocument.image_id).where(func.to_tsvector(english, SearchDocument.text).op("@@")(tsquery))
    expression = 'text : "' + words.replace('"', '""') + '"'
    match = FTS_TABLE.c.search_fts.op("MATCH", is_comparison=True)(bindparam(None, expression, unique=True))
    return select(FTS_TABLE.c.rowid.label("image_id")).where(match)


def count_rows(session: Session, statement: Select[Any], cap: int | None) -> int:
    """How many rows ``statement`` returns, reading no further than ``cap + 1``."""
    if cap is not None:
        statement = statement.limit(cap + 1)
    return int(session.execute(select(func.count()).select_from(statement.subquery())).scalar_one())


def match_ids(session: Session, query: Query, ctx: Context, statuses: Sequence[str]) -> Select[Any]:
    """The ids of the images ``query`` matches, as a statement that reads no more rows than it returns
    (up to a LIMIT) on either database; see above."""
    filters = query_conditions(query, dataclasses.replace(ctx, probe=True), statuses)
    if ctx.dialect != "sqlite":
        # Every way as a semi-join: PostgreSQL reads each list from its index (hashing them when
        # there are several, for label:dog in:#pets), then probes the images it leads to.
        lists = [Image.id.in_(parts[0] if len(parts) == 1 else union_all(*parts))
                 for parts in (_driver(query.where, ctx) if query.where is not None else [])]
        return select(Image.id).where(*lists, *filters)
    ways: list[Select[Any]] = [
        parts[0] if len(parts) == 1 else union_all(*parts)  # type: ignore[misc]
        for parts in (_driver(query.where, ctx) if query.where is not None else [])
    ]
    visible = None
    if ctx.channels is not None:  # a restricted caller sees only these channels' posts
        visible = select(ctx.plain(Sighting.image_id).label("image_id")).where(Sighting.channel_id.in_(ctx.channels))
        ways.append(visible)
    if not ways:
        return select(Image.id).where(*filters)
    # The shortest way first, judged by reading at most ESTIMATE_UP_TO rows of each (then ten
    # times as many, when the shortest had more).
    sizes = [0] * len(ways)
    for cap in (ESTIMATE_UP_TO, 10 * ESTIMATE_UP_TO):
        if len(ways) == 1 or min(sizes) > 0 and min(sizes) <= cap // 10:
            break
        sizes = [count_rows(session, way, cap) for way in ways]
        ways, sizes = map(list, zip(*sorted(zip(ways, sizes, strict=True), key=lambda pair: pair[1]), strict=True))
    listed = ways[0].subquery()
    narrowed: list[ColumnElement[bool]] = []
    if (len(ways) > 1 and sizes[0] > ESTIMATE_UP_TO and ways[1] is not visible
            and count_rows(session, ways[1], NARROW_UP_TO) <= NARROW_UP_TO):
        # Two long lists (label:dog in:#pets): read the first only where the second has the image,
        # the second made into a temporary table once, if that is not too long itself.
        narrowed.append(listed.c.image_id.in_(ways[1]))
    checked = select(Image.id).where(Image.id == listed.c.image_id, *filters).exists()
    return select(listed.c.image_id).where(*narrowed, *_named_first(query, listed.c.image_id, ctx), checked).distinct()


def _named_first(query: Query, image_id: Any, ctx: Context) -> list[ColumnElement[bool]]:
    """SQLite: each top-level ``in:``/``from:`` term as a look-up of its own (name or id, image)
    index for a listed image, before the image's row and posts are read.

    Implied by the full check (which also wants the post live and visible, so it reads the
    post's row): ``quality:blurry in:#design`` turns away the nine in ten blurry images from
    other channels with one index look-up each, where the full check read their posts."""
    probes: list[ColumnElement[bool]] = []
    for term in top_level_sighting_terms(query):
        if not isinstance(term, (ChannelFilter, UserFilter)):
            continue
        by_id, by_name = where_or_who(term, ctx, indexed=True)
        if by_id is not None and isinstance(term, ChannelFilter):
            # Live posts only: ``ix_sightings_live_channel_id_image_id`` has the channel and the
            # image; the other channel index would be read through the whole channel.
            by_id = and_(by_id, Sighting.deleted_at.is_(None))
        probes.append(or_(*(exists(select(Sighting.id).where(Sighting.image_id == image_id, way))
                            for way in (by_id, by_name) if way is not None)))  # each way its own index
    return probes


def beyond_cap_early(session: Session, query: Query, ctx: Context, statuses: Sequence[str], cap: int) -> bool:
    """PostgreSQL: whether the first ``EARLY_READ`` rows of one list the matches come from already
    hold more than ``cap`` of them (``cat OR dog``: the first cats will do).

    PostgreSQL reads a query's lists as one semi-join, so it first hashes every row of all of
    them (110,000 for ``cat OR dog``) to drop repeats, however few matches the count needs. A
    short head of one list is hashed in no time; when it holds enough matches the count is known
    to be capped, else the whole count runs as before."""
    if ctx.dialect != "postgresql" or query.where is None:
        return False
    ways = _driver(query.where, ctx)
    if len(ways) != 1:  # several lists ANDed (``(cat OR dog) last 30d``): few rows of one list match
        return False
    filters = query_conditions(query, dataclasses.replace(ctx, probe=True), statuses)
    for part in ways[0]:
        if count_rows(session, part, cap) <= cap:
            continue  # too short to hold more than cap matches
        head = select(Image.id).where(Image.id.in_(part.limit(EARLY_READ)), *filters)
        if count_rows(session, head, cap) > cap:
            return True
    return False


# -- ranking in rounds -------------------------------------------------------------------------


def _horizon(session: Session, n: int) -> datetime | None:
    """When the ``n``-th most recently posted image was last posted (None: fewer images)."""
    found: datetime | None = session.execute(
        select(Image.last_seen_at)
        .where(Image.status == "done", Image.last_seen_at.is_not(None))
        .order_by(Image.last_seen_at.desc())
        .offset(n - 1)
        .limit(1)
    ).scalar()
    return found


def _first_window(session: Session, ctx: Context, k: int) -> int:
    """How many of the newest images the first round of ``rank_matches`` starts from: ``2k``, or for a
    restricted caller and a long list (a report's 10,000) as many as hold about ``2k`` they can
    see, judged by how many of the newest ``SHARE_SAMPLE`` images they can see.

    Without it a Slack user who sees 45 % of the images got 9,000 of their 10,000 from the first
    round, and the second round read them all again (0.14 s of a 1.5 s report)."""
    n = max(FIRST_ROUND, 2 * k)
    if ctx.channels is None or k <= FIRST_ROUND:
        return n  # a page of 10: the first round nearly always holds it
    newest = (select(Image.id).where(Image.status == "done", Image.last_seen_at.is_not(None))
              .order_by(Image.last_seen_at.desc()).limit(SHARE_SAMPLE).subquery())
    probe = dataclasses.replace(ctx, probe=True)
    sampled, seen = session.execute(
        select(func.count(), func.count().filter(select(Sighting.id).where(
            Sighting.image_id == newest.c.id, *probe.visible()).exists())).select_from(newest)
    ).one()
    if not sampled:
        return n
    return math.ceil(n * min(GROWTH, sampled / max(seen, 1)))


@dataclass(frozen=True)
class _Candidates:
    """Image ids to rank, and what any image outside them can at most reach."""

    ids: list[Select[Any]]
    horizon: datetime  # images outside were last posted (where the caller sees them) before this
    label_reach: list[float]  # per label term still cut off: images outside have less than this
    text_reach: float  # what text terms too common to bring in whole can add
    paired: bool  # every image with two label terms at or above the pair floor is in
    cut: tuple[LabelPart, ...] = ()  # the label terms with more images than the round brought in

    def bound(self, pair_floor: float | None, ctx: Context) -> float:
        """The best score an image outside can have. Without pairs, every label term at once
        (cat 99 + dog 99); with them, one term up to its cut-off and the others below the floor
        (nothing, when the floor is the label threshold itself)."""
        if not self.label_reach:
            return self.text_reach
        if pair_floor is None or not self.paired:
            return self.text_reach + sum(self.label_reach)
        below = 0.0 if pair_floor <= ctx.label_min else pair_floor
        rest = sorted(self.label_reach)[:-1]
        return self.text_reach + max(self.label_reach) + sum(min(below, reach) for reach in rest)


def _candidates(session: Session, parts: Sequence[LabelPart | TextPart | LikePart], ctx: Context,
                statuses: Sequence[str], n: int, horizon: datetime, pair_floor: float | None) -> _Candidates:
    if ctx.channels is None:
        window = select(Image.id).where(Image.status.in_(list(statuses)), Image.last_seen_at >= horizon)
    else:  # the caller's channels' posts since then, through ix_sightings_channel_id_seen_at_image_id
        window = select(Sighting.image_id).where(Sighting.channel_id.in_(ctx.channels), Sighting.seen_at >= horizon)
    ids: list[Select[Any]] = [window]
    label_reach: list[float] = []
    cut: list[LabelPart] = []  # label terms with more images than the round brings in
    text_reach = 0.0
    for part in parts:
        if isinstance(part, LabelPart):
            # Per term, the n surest rows: an image left out has less than the n-th's confidence.
            most = 0.0
            for term in part.terms:
                surest = [LabelTerm.term == term, ctx.confident(LabelTerm.confidence)]
                nth = session.execute(
                    select(LabelTerm.confidence).where(*surest)
                    .order_by(LabelTerm.confidence.desc()).offset(n - 1).limit(1)
                ).scalar()
                if nth is not None:
                    surest.append(LabelTerm.confidence >= nth)
                    most = max(most, float(nth))
                ids.append(select(LabelTerm.image_id).where(*surest))
            if most:
                label_reach.append(most)
                cut.append(part)
        elif isinstance(part, LikePart):  # every image it scores is brought in: nothing outside reaches it
            ids.append(select(Image.id).where(one_of(Image.id, [i for i, _ in part.scores], ctx.dialect)))
        else:
            listed = text_driver(part.text, ctx)  # every match is in it
            if listed is not None and count_rows(session, listed, n) <= n:
                ids.append(select(Image.id).where(text_match(part.text, ctx, exact=part.exact)))
            else:  # too common: only the window brings its images in
                text_reach += TEXT_MATCH_SCORE
    found = _Candidates(ids, horizon, label_reach, text_reach, paired=False, cut=tuple(cut))
    return _with_pairs(session, found, pair_floor, ctx) if pair_floor is not None else found


def _with_pairs(session: Session, found: _Candidates, pair_floor: float, ctx: Context) -> _Candidates:
    """``found`` plus the images with two cut label terms at or above ``pair_floor``, when they are few.

    An image left out with two label terms can add them up (cat 80 + dog 80 beats a cat at 99.9)."""
    if len(found.cut) < 2:
        return found
    ids = list(found.ids)
    for first, second in itertools.combinations(found.cut, 2):
        both = intersect(*(  # two covering index ranges, intersected
            select(LabelTerm.image_id).where(LabelTerm.term.in_(part.terms), LabelTerm.confidence >= pair_floor,
                                             ctx.confident(LabelTerm.confidence))
            for part in (first, second)
        ))
        paired = set(session.execute(both.limit(PAIR_MAX + 1)).scalars())
        if len(paired) > PAIR_MAX:
            return dataclasses.replace(found, paired=False)
        if paired:
            ids.append(select(Image.id).where(Image.id.in_(sorted(paired))))
    return dataclasses.replace(found, ids=ids, paired=True)


def _first_pair_floor(ctx: Context) -> float:
    """Where the pairs start when two or more label terms are cut (``cat OR dog``): high, so that
    the first round ranks only the few images sure of two terms at once instead of every image
    with both. When the page's last score still does not beat what one sure term plus one just
    under the floor can reach, the next round lowers the floor to what that score needs; only
    the cost depends on this guess, the bound check keeps the page exact."""
    return ctx.label_min + FIRST_PAIR_FLOOR * (100.0 - ctx.label_min)


def rank_matches(session: Session, query: Query, ctx: Context, statuses: Sequence[str], k: int,
                 *, total: int | None, matches: Select[Any], scored: bool = True) -> list[Any]:
    """The first ``k`` matches as (id, score, newest), best first. ``total`` is the exact number of
    matches when known, ``matches`` their ids (``match_ids``). See the module docstring for the rounds."""
    probe = dataclasses.replace(ctx, probe=True)
    parts = score_parts(query) if scored else []
    score = score_expression(parts, probe).label("score")
    newest = probe.newest().label("newest")

    def best(filters: Sequence[ColumnElement[bool]]) -> list[Any]:
        return list(session.execute(
            select(Image.id, score, newest).where(*filters)
            .order_by(score.desc(), newest.desc(), Image.id.desc()).limit(k)
        ).all())

    if total is not None and total <= SORT_ALL_MAX:
        return best([Image.id.in_(matches)])
    n = _first_window(session, ctx, k)
    pair_floor: float | None = None
    while True:
        horizon = _horizon(session, n)
        if horizon is None:  # the window is the whole collection
            return best(query_conditions(query, probe, statuses))
        found = _candidates(session, parts, ctx, statuses, n, horizon, pair_floor)
        if pair_floor is None and len(found.cut) >= 2:
            pair_floor = _first_pair_floor(ctx)
            found = _with_pairs(session, found, pair_floor, ctx)
        rows = best([Image.id.in_(union(*found.ids)), *query_conditions(query, probe, statuses)])
        if total is not None and len(rows) == total:
            return rows  # every match is among the candidates
        if len(rows) == k:
            last_score, last_newest = float(rows[-1].score), rows[-1].newest
            bound = found.bound(pair_floor, ctx)
            if last_score > bound or (
                last_score >= bound and last_newest is not None and last_newest >= found.horizon
            ):
                return rows
            if len(found.label_reach) >= 2:
                # Beaten only by what two label terms could add up to: bring in the images with two
                # of them at or above the floor that makes the bound fall below this round's k-th
                # (lower than the first guess, or the round is run again with the same pairs).
                floor = (last_score - found.text_reach - max(found.label_reach)) / (len(found.label_reach) - 1)
                lowered = max(floor, ctx.label_min)
                if floor > 0 and (pair_floor is None or lowered < pair_floor):
                    pair_floor = lowered
                    continue
        # Short of k: widen by about what was missing (a report's 10,000 rarely needs 8 times the window).
        n *= max(2, min(GROWTH, math.ceil(1.5 * k / max(len(rows), 1))))


