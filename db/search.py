"""Runs a parsed ``Query`` (``bot.core.search``) against the database: search pages and report data.

The query is compiled to SQLAlchemy expressions, so every user value is a bound
parameter (the FTS5 MATCH expression and the tsquery text included). Most terms
become ``images.id IN (SELECT image_id FROM … WHERE …)`` over an indexed column,
which both SQLite and PostgreSQL can drive from the index.

Who may see what is not part of the query: when ``channels`` is given, an image
must have a live Slack sighting in one of them, as a separate top-level condition,
and sighting filters (``in:``, ``from:``, ``after:``…) only look at such sightings,
so no query (with ``OR`` or ``-``) learns anything about other channels. The
records handed back keep only the visible sightings.

Full text lives in ``search_documents`` (labels with parents and aliases; the
detected lines). SQLite searches it through the FTS5 table ``search_fts``;
PostgreSQL through GIN indexes on ``to_tsvector('english', …)``.

Ranking without sorting every match. Results are ordered by score (matched label
confidence, plus ``TEXT_MATCH_SCORE`` per matched text term), then by the newest
post the caller may see, then by id. A wide query (``cat`` at 50,000 matches) must
not score and sort them all, so a page is found in rounds (``db.search_plan.rank_matches``):

1. Count the matches, but only up to ``COUNT_CAP`` ("1,000+"), reading them from
   the index of one of the query's terms (``db.search_plan.match_ids``). Few matches
   (``SORT_ALL_MAX``): rank them all in one statement.
2. Otherwise gather a bounded set of candidates from indexes: the ``n`` newest
   images (``images.last_seen_at``, or the caller's channels' posts since then),
   the ``n`` surest images for every label term (``label_terms`` by confidence),
   and every image of a text term that has at most ``n`` of them. Only those are
   checked against the query (per row, through ``image_id`` indexes), scored and
   sorted.
3. An image left out scores less than the sum of the thresholds that left it out
   and was posted before the window, so once the page's last row beats that bound
   the page is exact. When only two label terms added up could beat it
   (``cat OR dog``), the images with both at or above a floor are brought in;
   else ``n`` grows and the round is run again. (``tests/test_search_plans.py``
   checks the pages against ranking every match.)

Conditions therefore come in two forms: as ``IN`` lists (a report's totals over
every match) and, for counting and for the candidates, as correlated ``EXISTS``
probes (``db.search_terms.Context.probe``), so that nothing is read for images outside the set.

A report's totals and top labels are aggregates over all of its matches; its
list of images is ranked like a search page (newest first, up to 10,000).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    func,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from bot.core.nearby import Likeness, duplicate_groups
from bot.core.records import (
    ImageRecord,
    LabelCount,
    ReportData,
    ReportTotals,
    SearchHit,
    SearchPage,
    SightingRecord,
)
from bot.core.search import (
    DupesFilter,
    LikeFilter,
    Query,
    TextFilter,
    Word,
)
from db import channel_stats
from db.bulk_records import load_records
from db.models import (
    IMAGE_STATUSES,
    Image,
    Sighting,
)
from db.models import Label as LabelRow
from db.search_plan import (
    COUNT_CAP,
    beyond_cap_early,
    count_rows,
    match_ids,
    rank_matches,
)
from db.search_terms import (
    TOKEN,
    Context,
    build_context,
    needs_exact,
    normalise,
    query_conditions,
    sighting_condition,
    top_level_sighting_terms,
)

__all__ = ["COUNT_CAP", "REPORT_MAX_IMAGES", "REPORT_TOP_LABELS", "report_data", "search_images"]

REPORT_MAX_IMAGES = 10_000
REPORT_TOP_LABELS = 20
MAX_PER_PAGE = 1000


# -- shaping the records ---------------------------------------------------------------------


def _display_sightings(session: Session, image_ids: list[int], query: Query, ctx: Context) -> dict[int, int]:
    """For each image, the id of the newest visible sighting, preferring one that meets the query's
    top-level ``in:``/``from:``/date terms (so ``in:#design`` shows the #design post)."""
    chosen: dict[int, int] = {}
    if not image_ids:
        return chosen
    preferred = [sighting_condition(t, ctx) for t in top_level_sighting_terms(query)]  # via image_id
    for conditions in ([*preferred], []) if preferred else ([],):
        missing = [i for i in image_ids if i not in chosen]
        if not missing:
            break
        rows = session.execute(
            select(Sighting.image_id, Sighting.id)
            .where(Sighting.image_id.in_(missing), *ctx.visible(), *conditions)
            .order_by(Sighting.seen_at.desc(), Sighting.id.desc())
        )
        for image_id, sighting_id in rows:
            chosen.setdefault(image_id, sighting_id)
    return chosen


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _tokens_match(wanted: list[str], line_tokens: list[str]) -> bool:
    """Loose token match standing in for the stemmer: dog ~ dogs, run ~ running."""
    def same(a: str, b: str) -> bool:
        if a == b:
            return True
        short, long_ = sorted((a, b), key=len)
        return len(short) >= 3 and long_.startswith(short)

    return all(any(same(w, t) for t in line_tokens) for w in wanted)


def _snippet(record: ImageRecord, query: Query) -> str | None:
    """The first detected line that matched a positive text or free-word term."""
    wanted: list[tuple[str, bool]] = []
    for term, negated in query.leaves():
        if negated:
            continue
        if isinstance(term, TextFilter):
            wanted.append((term.phrase, True))
        elif isinstance(term, Word):
            wanted.append((term.text, needs_exact(term)))
    if not wanted:
        return None
    for line in record.lines:
        folded = _fold(line.text)
        line_tokens = TOKEN.findall(folded)
        for text, exact in wanted:
            needle = _fold(normalise(text))
            if exact:
                if needle and needle in folded:
                    return line.text
            elif _tokens_match(TOKEN.findall(needle), line_tokens):
                return line.text
    return None


# -- the two entry points --------------------------------------------------------------------


def _no_jit(session: Session) -> None:
    """PostgreSQL compiles statements it estimates as costly; for these bounded, index-driven ones
    (correlated probes make the estimates high) compiling takes longer than running them."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql("SET LOCAL jit = off")


def search_images(
    session: Session,
    query: Query,
    *,
    query_text: str,
    channels: Collection[str] | None,
    page: int = 1,
    per_page: int = 10,
    label_min_confidence: float,
    moderation_min_confidence: float,
) -> SearchPage:
    """One page of analysed images matching ``query``, best first, then newest sighting first.

    ``total`` counts up to ``COUNT_CAP`` (or to the end of the page asked for); beyond
    that it is the cap and ``total_is_estimate`` is set.
    """
    page = max(1, int(page))
    per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
    _no_jit(session)
    ctx = build_context(session, query, channels, label_min_confidence, moderation_min_confidence)
    statuses = ("done",)
    cap = max(COUNT_CAP, page * per_page)
    matches = match_ids(session, query, ctx, statuses)
    counted = cap + 1 if beyond_cap_early(session, query, ctx, statuses, cap) else count_rows(session, matches, cap)
    estimate = counted > cap
    total = cap if estimate else counted

    rows = []
    if (page - 1) * per_page < counted:
        rows = rank_matches(session, query, ctx, statuses, page * per_page, total=None if estimate else total,
                            matches=matches)
    rows = rows[(page - 1) * per_page:]
    ids = [int(row.id) for row in rows]
    scores = {int(row.id): float(row.score or 0.0) for row in rows}
    records = load_records(session, ids, channels=ctx.channels)
    shown = _display_sightings(session, ids, query, ctx)
    hits = []
    for record in records:
        by_id = {s.id: s for s in record.sightings}
        sighting: SightingRecord | None = by_id.get(shown.get(record.id, -1))
        hits.append(SearchHit(image=record, score=round(scores[record.id], 2), sighting=sighting,
                              snippet=_snippet(record, query)))
    return SearchPage(query=query_text, hits=tuple(hits), page=page, per_page=per_page, total=total,
                      total_is_estimate=estimate, unseen=_unseen(session, query, ctx))


def _unseen(session: Session, query: Query, ctx: Context) -> tuple[int, ...]:
    """The images ``like:``/``dupes:`` name that are not analysed images the caller can see."""
    named = sorted({term.image_id for term, _ in query.leaves() if isinstance(term, (DupesFilter, LikeFilter))})
    if not named:
        return ()
    visible = (Image.last_seen_at.is_not(None) if ctx.channels is None
               else select(Sighting.id).where(Sighting.image_id == Image.id, *ctx.visible()).exists())
    seen = set(session.execute(select(Image.id).where(Image.id.in_(named), Image.status == "done", visible)).scalars())
    return tuple(image_id for image_id in named if image_id not in seen)


def report_data(
    session: Session,
    query: Query,
    *,
    query_text: str,
    channels: Collection[str] | None,
    title: str,
    label_min_confidence: float,
    moderation_min_confidence: float,
    now: datetime,
    full_records: bool = True,
    side_session: Callable[[], AbstractContextManager[Session]] | None = None,
    likeness: Callable[[Sequence[int]], Likeness] | None = None,
) -> ReportData:
    """Everything a report shows: done and failed images matching ``query`` (newest first,
    at most ``REPORT_MAX_IMAGES``), and over all of them the totals and the most common labels.

    The totals and top labels are aggregates over every match, each one statement that reads
    the matches as lists (the caller's channels' posts, the label index…), or the counts kept
    per channel; the listed images are found like a search page, in rounds from the newest.
    With ``side_session`` (a factory of a second session) the aggregates are counted on it, on
    another thread, while this one lists the images: the database's work and Python's overlap.
    The listed images' near-duplicate groups follow ``dupes:``'s rule: by hash and, with
    ``likeness`` (their embeddings, by id), by embedding."""
    _no_jit(session)
    ctx = build_context(session, query, channels, label_min_confidence, moderation_min_confidence)
    statuses = ("done", "failed")

    def aggregates(on: Session) -> tuple[ReportTotals, tuple[LabelCount, ...]]:
        _no_jit(on)
        return _report_aggregates(on, query, ctx, statuses, label_min_confidence)

    def listed(total: int | None) -> tuple[ImageRecord, ...]:
        rows = rank_matches(session, query, ctx, statuses, REPORT_MAX_IMAGES, total=total,
                            matches=match_ids(session, query, ctx, statuses), scored=False)
        return tuple(load_records(session, [int(row.id) for row in rows], narrow=not full_records,
                                  label_min=label_min_confidence, channels=ctx.channels))

    if side_session is None:
        totals, top = aggregates(session)
        records = listed(totals.images)
    else:
        def on_side() -> tuple[ReportTotals, tuple[LabelCount, ...]]:
            with side_session() as other:
                return aggregates(other)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imgbot-report") as pool:
            counting = pool.submit(on_side)
            records = listed(None)
            totals, top = counting.result()
    # After the rest, not beside it: the two cores are already busy while the records are built.
    hashes = {record.id: record.phash for record in records if record.status == "done" and record.phash is not None}
    groups: tuple[tuple[int, ...], ...] = ()
    if len(hashes) > 1:
        alike = likeness(list(hashes)) if likeness is not None else None
        groups = tuple(tuple(group) for group in duplicate_groups(hashes, alike))
    note = None
    if totals.images > len(records):
        note = (f"Showing the newest {len(records):,} of {totals.images:,} matching images; "
                "totals and top labels count all of them.")
    return ReportData(
        title=title, query=query_text, generated_at=now, label_min_confidence=label_min_confidence,
        moderation_min_confidence=moderation_min_confidence, images=records, top_labels=top, note=note,
        totals=totals, duplicate_groups=groups,
    )


def _report_aggregates(session: Session, query: Query, ctx: Context, statuses: Sequence[str],
                       label_min_confidence: float) -> tuple[ReportTotals, tuple[LabelCount, ...]]:
    """The totals and the top labels over every match."""
    kept = _kept_channel_totals(session, query, ctx)
    if kept is not None:
        ranked = sorted(kept.labels.items(), key=lambda item: (-item[1], item[0]))[:REPORT_TOP_LABELS]
        return (ReportTotals(images=kept.images, analysed=kept.analysed, failed=kept.failed,
                             with_text=kept.with_text, flagged=kept.flagged),
                tuple(LabelCount(name=name, images=images) for name, images in ranked))
    every = query_conditions(query, ctx, statuses, visible_list=True)
    whole = query.is_empty and ctx.channels is None  # every image with a live post
    return (_report_totals(session, ctx, every),
            _top_labels(session, None if whole else select(Image.id).where(*every), label_min_confidence))


def _kept_channel_totals(session: Session, query: Query, ctx: Context) -> channel_stats.ChannelTotals | None:
    """A report over everything in some channels reads the counts kept per channel
    (``db/channel_stats.py``) instead of counting every image; they keep whole-number
    floors of confidences, so only whole-number thresholds can use them."""
    if not query.is_empty or ctx.channels is None or not ctx.label_inclusive:
        return None
    if ctx.label_min != int(ctx.label_min) or ctx.moderation_min != int(ctx.moderation_min):
        return None
    return channel_stats.totals(session, ctx.channels, label_floor=int(ctx.label_min),
                                moderation_floor=int(ctx.moderation_min))


def _report_totals(session: Session, ctx: Context, every: Sequence[ColumnElement[bool]]) -> ReportTotals:
    """Images, analysed, failed, with text and flagged among all the matches, in one statement."""
    done = Image.status == "done"
    images, analysed, failed, with_text, flagged, with_people, people = session.execute(select(
        func.count(),
        func.coalesce(func.sum(case((done, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Image.status == "failed", 1), else_=0)), 0),
        func.coalesce(func.sum(case((done & (Image.text_line_count > 0), 1), else_=0)), 0),
        func.coalesce(func.sum(case((done & (Image.max_moderation_confidence >= ctx.moderation_min), 1), else_=0)), 0),
        func.coalesce(func.sum(case((done & (Image.person_count > 0), 1), else_=0)), 0),
        func.coalesce(func.sum(case((done, Image.person_count), else_=0)), 0),
    ).where(*every)).one()
    return ReportTotals(images=int(images), analysed=int(analysed), failed=int(failed), with_text=int(with_text),
                        flagged=int(flagged), with_people=int(with_people), people=int(people))


def _top_labels(session: Session, matches: Select[Any] | None, label_min_confidence: float) -> tuple[LabelCount, ...]:
    """The most common labels at or above the threshold among the matches (``None``: every image
    with a live post). An analysis names each label once (one DetectLabels entry per label, a dict
    of names in the local engine), so label rows are counted: ``ix_labels_name_confidence`` alone
    answers, where counting distinct images would sort millions of rows."""
    sure = LabelRow.confidence >= label_min_confidence
    per_label = func.count().label("images")
    if matches is not None:
        rows = session.execute(
            select(LabelRow.name, per_label).where(LabelRow.image_id.in_(matches), sure)
            .group_by(LabelRow.name).order_by(per_label.desc(), LabelRow.name).limit(REPORT_TOP_LABELS)
        ).all()
        return tuple(LabelCount(name=row.name, images=int(row.images)) for row in rows)
    # Every label, less those of the few images without a live post or not analysed (both from indexes).
    counts: dict[str, int] = {
        name: int(images)
        for name, images in session.execute(select(LabelRow.name, per_label).where(sure).group_by(LabelRow.name))
    }
    reported = ("done", "failed")
    gone = union_all(
        select(Image.id).where(Image.status.in_(reported), Image.last_seen_at.is_(None)),
        select(Image.id).where(Image.status.in_([s for s in IMAGE_STATUSES if s not in reported])),
    )
    for name, images in session.execute(
        select(LabelRow.name, per_label).where(sure, LabelRow.image_id.in_(gone)).group_by(LabelRow.name)
    ):
        counts[name] -= int(images)
    ranked = sorted(((name, images) for name, images in counts.items() if images > 0), key=lambda c: (-c[1], c[0]))
    return tuple(LabelCount(name=name, images=images) for name, images in ranked[:REPORT_TOP_LABELS])

