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
not score and sort them all, so a page is found in rounds (``_rank``):

1. Count the matches, but only up to ``COUNT_CAP`` ("1,000+"), reading them from
   the index of one of the query's terms (``_match_ids``). Few matches
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
probes (``_Context.probe``), so that nothing is read for images outside the set.

A report's totals and top labels are aggregates over all of its matches; its
list of images is ranked like a search page (newest first, up to 10,000).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    false,
    func,
    intersect,
    literal,
    literal_column,
    not_,
    or_,
    select,
    table,
    true,
    union,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import BindParameter, UnaryExpression
from sqlalchemy.sql.operators import custom_op

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
    And,
    ChannelFilter,
    ColorFilter,
    DupesFilter,
    HasFilter,
    LabelFilter,
    LikeFilter,
    Not,
    Or,
    PeopleFilter,
    QualityFilter,
    Query,
    SeenFilter,
    SensitiveFilter,
    Term,
    TextFilter,
    UnsafeFilter,
    UserFilter,
    Word,
)
from db import channel_stats
from db.bulk_records import load_records, one_of
from db.models import (
    IMAGE_STATUSES,
    Image,
    ImageColorName,
    ImageVisual,
    LabelTerm,
    ModerationLabel,
    SearchDocument,
    SensitiveFinding,
    Sighting,
    TextDetection,
)
from db.models import Label as LabelRow

__all__ = ["COUNT_CAP", "REPORT_MAX_IMAGES", "REPORT_TOP_LABELS", "report_data", "search_images"]

REPORT_MAX_IMAGES = 10_000
REPORT_TOP_LABELS = 20
MAX_PER_PAGE = 1000
TEXT_MATCH_SCORE = 100.0  # a text match counts like a label at 100% confidence
COUNT_CAP = 1_000  # a search counts its matches up to here, then says "1,000+"
SORT_ALL_MAX = COUNT_CAP  # this many matches or fewer are ranked all at once
ESTIMATE_UP_TO = 2_000  # rows read of each way to list the matches, to pick the shortest (SQLite)
EARLY_READ = 2_500  # rows of one list read to find a count beyond the cap early (PostgreSQL)
NARROW_UP_TO = 50_000  # a second list of this many rows at most also narrows the first (SQLite)
FIRST_ROUND = 400  # candidates per index in the first round of ``_rank``; grows by ``GROWTH``
GROWTH = 8
SHARE_SAMPLE = 500  # newest images looked at to judge how many a restricted caller sees
PAIR_MAX = 5_000  # images with two label terms at once that a round brings in, at most
FIRST_PAIR_FLOOR = 0.8  # the first round's pairs: both terms this far from the threshold to 100

_FTS = table("search_fts", column("rowid", Integer), column("search_fts"))
_TOKEN = re.compile(r"[^\W_]+")
_SIGHTING_TERMS = (ChannelFilter, UserFilter, SeenFilter)


@dataclass(frozen=True)
class _Context:
    dialect: str
    label_min: float
    label_inclusive: bool
    moderation_min: float
    channels: list[str] | None
    probe: bool = False  # conditions as correlated EXISTS per image, not as IN lists
    # PostgreSQL: the text terms whose tsquery is empty (only stop words: "to be"); the lines decide.
    stop_words_only: frozenset[str] = frozenset()

    def visible(self, *, indexed: bool = False) -> list[ColumnElement[bool]]:
        """Conditions on ``sightings`` for the ones the caller may see (see ``plain`` for ``indexed``)."""
        conditions: list[ColumnElement[bool]] = [Sighting.deleted_at.is_(None)]
        if self.channels is not None:
            channel_id = Sighting.channel_id if indexed else self.plain(Sighting.channel_id)
            conditions += [Sighting.source_kind == "slack", channel_id.in_(self.channels)]
        return conditions

    def plain(self, column: Any) -> ColumnElement[Any]:
        """``column`` that SQLite will not pick an index for (unary ``+``).

        SQLite has no statistics by default; inside a subquery correlated on
        ``image_id`` it would otherwise walk ``ix_sightings_channel_id_seen_at_image_id`` for
        every image instead of the image's few sightings. PostgreSQL plans by cost.
        """
        if self.dialect != "sqlite":
            return column  # type: ignore[no-any-return]
        return UnaryExpression(column, operator=custom_op("+"), type_=column.type)

    def exists(self, statement: Select[Any]) -> ColumnElement[bool]:
        """``EXISTS (statement)``, correlated on ``images``. On PostgreSQL in probe mode with
        ``OFFSET 0``, which keeps the planner from turning it into a join that first reads
        every matching row of the other table (it cannot know the candidates are few)."""
        if self.probe and self.dialect == "postgresql":
            statement = statement.offset(0)
        return statement.exists()

    def confident(self, confidence: Any) -> ColumnElement[bool]:
        condition: ColumnElement[bool] = (
            confidence >= self.label_min if self.label_inclusive else confidence > self.label_min
        )
        return condition

    def newest(self) -> ColumnElement[Any]:
        """When the image was last posted where the caller can see it (the ranking's tie-breaker)."""
        if self.channels is None:
            return Image.last_seen_at.expression  # kept by db.queries: the newest live sighting
        return (
            select(func.max(Sighting.seen_at))
            .where(Sighting.image_id == Image.id, *self.visible())
            .scalar_subquery()
        )


def _context(session: Session, query: Query, channels: Collection[str] | None,
             label_min_confidence: float, moderation_min_confidence: float) -> _Context:
    bind = session.get_bind()
    if query.confidence is not None:
        label_min, inclusive = float(query.confidence.value), query.confidence.inclusive
    else:
        label_min, inclusive = float(label_min_confidence), True
    stop_words_only: frozenset[str] = frozenset()
    if bind.dialect.name == "postgresql":
        english: ColumnElement[Any] = literal_column("'english'")
        for words in {" ".join(tokens) for tokens in map(_text_tokens, _text_terms(query)) if tokens}:
            empty = func.numnode(func.phraseto_tsquery(english, bindparam(None, words, unique=True))) == 0
            if session.execute(select(empty)).scalar_one():
                stop_words_only |= {words}
    return _Context(
        dialect=bind.dialect.name, label_min=label_min, label_inclusive=inclusive,
        moderation_min=float(moderation_min_confidence),
        channels=sorted(set(channels)) if channels is not None else None, stop_words_only=stop_words_only,
    )


def _text_terms(query: Query) -> list[str]:
    """Every text the query looks for in detected lines (negated or not)."""
    return [term.text if isinstance(term, Word) else term.phrase
            for term, _negated in query.leaves() if isinstance(term, (Word, TextFilter))]


def _text_tokens(text: str) -> list[str]:
    return _TOKEN.findall(_normalise(text).lower())


# -- compiling terms -------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _label_candidates(word: Word) -> list[str]:
    """The label terms a free word stands for: itself and, unquoted, a naive singular (cats → cat)."""
    term = word.text.strip().lower()[:255]  # exactly how the pipeline writes label_terms
    found = [term]
    if not word.quoted and len(term) > 3 and term.endswith("s") and not term.endswith("ss"):
        found.append(term[:-1])
    return found


def _label_in(candidates: Sequence[str], ctx: _Context) -> ColumnElement[bool]:
    matches = [LabelTerm.term.in_(list(candidates)), ctx.confident(LabelTerm.confidence)]
    if ctx.probe:
        return ctx.exists(select(LabelTerm.image_id).where(LabelTerm.image_id == Image.id, *matches))
    return Image.id.in_(select(LabelTerm.image_id).where(*matches))


def _label_score(candidates: Sequence[str], ctx: _Context) -> ColumnElement[float]:
    best = (
        select(func.max(LabelTerm.confidence))
        .where(LabelTerm.image_id == Image.id, LabelTerm.term.in_(list(candidates)),
               ctx.confident(LabelTerm.confidence))
        .scalar_subquery()
    )
    return func.coalesce(best, 0.0)


def _line_contains(phrase: str, ctx: _Context) -> ColumnElement[bool]:
    """Some detected LINE of the image contains ``phrase``, in any case (LIKE, escaped)."""
    return ctx.exists(
        select(TextDetection.id)
        .where(TextDetection.image_id == Image.id, TextDetection.kind == "LINE",
               TextDetection.text.icontains(phrase, autoescape=True))
    )


def _fts_text_phrase(tokens: list[str], ctx: _Context) -> ColumnElement[bool]:
    """The image's text column contains these tokens as a phrase (stemmed), through the index."""
    words = " ".join(tokens)
    if ctx.dialect == "postgresql":
        english: ColumnElement[Any] = literal_column("'english'")
        tsquery = func.phraseto_tsquery(english, bindparam(None, words, unique=True))
        matched = func.to_tsvector(english, SearchDocument.text).op("@@")(tsquery)
        if ctx.probe:
            return ctx.exists(select(SearchDocument.image_id).where(SearchDocument.image_id == Image.id, matched))
        return Image.id.in_(select(SearchDocument.image_id).where(matched))
    # FTS5: a column filter and one string (its quotes doubled), bound as a parameter. Always an
    # IN list: FTS5 reads the whole list once quickly, but a MATCH per rowid costs milliseconds.
    expression = 'text : "' + words.replace('"', '""') + '"'
    match = _FTS.c.search_fts.op("MATCH", is_comparison=True)(bindparam(None, expression, unique=True))
    return Image.id.in_(select(_FTS.c.rowid).where(match))


def _text_match(text: str, ctx: _Context, *, exact: bool) -> ColumnElement[bool]:
    """Full-text match on the detected text; ``exact`` also checks the literal phrase in a line.

    Punctuation never reaches the full-text index (it drops ``%``), so an exact
    phrase is verified as a case-insensitive substring of a line. A phrase with no
    indexable token at all (``"%"``) is only checked as a substring.
    """
    phrase = _normalise(text)
    tokens = _text_tokens(text)
    if not tokens or " ".join(tokens) in ctx.stop_words_only:
        # Nothing the index knows (``"%"``, or only PostgreSQL stop words: "to be"): the lines decide.
        return _line_contains(phrase, ctx) if phrase else false()
    indexed = _fts_text_phrase(tokens, ctx)
    return and_(indexed, _line_contains(phrase, ctx)) if exact else indexed


def _needs_exact(word: Word) -> bool:
    """Quoted phrases and words with punctuation (``50%``) must appear literally."""
    return word.quoted or not all(part.isalnum() for part in _normalise(word.text).split())


def _sighting_condition(term: Term, ctx: _Context, *, indexed: bool = False) -> ColumnElement[bool]:
    """A condition on ``sightings`` columns for one of ``in:``, ``from:``, ``after:``/``before:``.

    ``indexed`` lets SQLite use the channel, user and date indexes (for an uncorrelated
    ``IN`` list); otherwise the subquery is meant to go through ``image_id``.
    Names are compared as ``lower(…)``; on SQLite the same ASCII folding is the
    column's ``NOCASE`` collation, which is what ``ix_sightings_lower_*`` index there.
    """
    def col(column: Any) -> ColumnElement[Any]:
        return column if indexed else ctx.plain(column)

    if isinstance(term, (ChannelFilter, UserFilter)):
        return or_(*(way for way in _where_or_who(term, ctx, indexed=indexed) if way is not None))
    assert isinstance(term, SeenFilter)
    bounds: list[ColumnElement[bool]] = []
    if term.start is not None:
        bounds.append(col(Sighting.seen_at) >= term.start)
    if term.end is not None:
        bounds.append(col(Sighting.seen_at) < term.end)
    return and_(true(), *bounds)


def _where_or_who(term: ChannelFilter | UserFilter, ctx: _Context, *, indexed: bool
                  ) -> tuple[ColumnElement[bool] | None, ColumnElement[bool] | None]:
    """The conditions on ``sightings`` for an ``in:`` or ``from:`` term's post, by id and by name,
    either of which will do; None for one the value cannot be (``design`` is no channel id)."""
    channel = isinstance(term, ChannelFilter)
    id_attribute, name_column = ((Sighting.channel_id, Sighting.channel_name) if channel
                                 else (Sighting.user_id, Sighting.user_name))
    id_column: Any = id_attribute if indexed else ctx.plain(id_attribute)
    value = term.channel if isinstance(term, ChannelFilter) else term.user
    if term.is_id:
        return id_column == value, None
    name = value.lower()
    by_name = _name_in(name_column, [name, ("#" if channel else "@") + name], ctx, indexed=indexed)
    if not _could_be_slack_id(value):
        return None, by_name
    return id_column.in_(sorted({value, value.upper()})), by_name


_SLACK_ID = re.compile(r"[CGDUW][A-Z0-9]*[0-9][A-Z0-9]*", re.IGNORECASE)


def _could_be_slack_id(value: str) -> bool:
    """Slack ids (C0123ABCD, U0ALICE…) start with their kind's letter and have a digit; a name
    without one (``in:design``) is only looked up as a name."""
    return len(value) >= 7 and _SLACK_ID.fullmatch(value) is not None


def _name_in(column: Any, names: list[str], ctx: _Context, *, indexed: bool = True) -> ColumnElement[bool]:
    """``lower(column) IN names``; on SQLite the column's ``NOCASE`` collation (the same ASCII folding)."""
    if ctx.dialect == "sqlite":
        return (column if indexed else ctx.plain(column)).collate("NOCASE").in_(names)
    return func.lower(column).in_(names)


def _seen_in(conditions: Iterable[ColumnElement[bool]], ctx: _Context) -> ColumnElement[bool]:
    """Some visible, live sighting meets every condition (so ``in:#a from:@bob`` is one message).

    A correlated EXISTS: each candidate image is checked through ``ix_sightings_image_id``.
    """
    return ctx.exists(select(Sighting.id).where(Sighting.image_id == Image.id, *ctx.visible(), *conditions))


def _indexable(term: Term) -> bool:
    """A sighting term an index can find directly: a channel or user (id or name), or a time range."""
    return isinstance(term, (SeenFilter, ChannelFilter, UserFilter))


def _seen_in_list(terms: Sequence[Term], ctx: _Context) -> ColumnElement[bool]:
    """The same as ``_seen_in`` as an uncorrelated ``IN`` list, which the planner can start from."""
    conditions = [_sighting_condition(t, ctx, indexed=True) for t in terms]
    return Image.id.in_(select(Sighting.image_id).where(*ctx.visible(), *conditions))


def _condition(term: Term, ctx: _Context, *, top: bool = False) -> ColumnElement[bool]:
    """``term`` as a condition on ``images``; ``top`` when it must hold for every result."""
    if isinstance(term, And):
        sighting_terms = [t for t in term.terms if isinstance(t, _SIGHTING_TERMS)]
        others = [_condition(t, ctx) for t in term.terms if not isinstance(t, _SIGHTING_TERMS)]
        if sighting_terms:
            others.append(_sightings_match(sighting_terms, ctx, top=top))
        return and_(*others)
    if isinstance(term, Or):
        return or_(*(_condition(t, ctx) for t in term.terms))
    if isinstance(term, Not):
        return not_(_condition(term.term, ctx))
    if isinstance(term, _SIGHTING_TERMS):
        return _sightings_match([term], ctx, top=top)
    if isinstance(term, Word):
        return or_(_label_in(_label_candidates(term), ctx), _text_match(term.text, ctx, exact=_needs_exact(term)))
    if isinstance(term, LabelFilter):
        return _label_in([term.name.strip().lower()[:255]], ctx)
    if isinstance(term, TextFilter):
        return _text_match(term.phrase, ctx, exact=True)
    if isinstance(term, UnsafeFilter):
        return _flagged(ctx, term.category)
    if isinstance(term, (ColorFilter, QualityFilter, DupesFilter, LikeFilter)):
        return _looks(term, ctx)
    if isinstance(term, PeopleFilter):
        return _people(term)
    if isinstance(term, SensitiveFilter):
        if ctx.probe:
            return ctx.exists(select(SensitiveFinding.image_id).where(
                SensitiveFinding.image_id == Image.id, *_sensitive(term)))
        return Image.id.in_(select(SensitiveFinding.image_id).where(*_sensitive(term)))
    if isinstance(term, HasFilter):
        if term.what == "text":
            return Image.text_line_count > 0
        if term.what == "faces":
            return Image.face_count > 0
        if term.what == "moderation":
            return _flagged(ctx, None)
        if ctx.probe:
            return ctx.exists(select(LabelTerm.image_id).where(
                LabelTerm.image_id == Image.id, ctx.confident(LabelTerm.confidence)))
        return Image.id.in_(select(LabelTerm.image_id).where(ctx.confident(LabelTerm.confidence)))
    raise TypeError(f"unknown query term {term!r}")  # pragma: no cover - the parser makes only the above


def _people(term: PeopleFilter) -> ColumnElement[bool]:
    bounds = [Image.person_count >= term.minimum] if term.minimum else []
    if term.maximum is not None:
        bounds.append(Image.person_count <= term.maximum)
    return and_(Image.status == "done", *bounds)


def _looks_select(term: ColorFilter | QualityFilter | DupesFilter | LikeFilter, ctx: _Context
                  ) -> Select[Any] | None:
    """The ids an index lists for a colour, quality or near-duplicate term (None: a condition on the image row)."""
    from bot.core.visual import BLURRY_BELOW, DARK_BELOW, FLAT_BELOW

    if isinstance(term, ColorFilter):
        keys = list(term.keys)
        return select(ImageColorName.image_id.label("image_id")).where(
            ImageColorName.name.in_(keys), ImageColorName.percent >= term.min_percent)
    if isinstance(term, (DupesFilter, LikeFilter)):
        return None
    if term.what == "blurry":
        return select(ImageVisual.image_id.label("image_id")).where(
            ImageVisual.sharpness < BLURRY_BELOW, ImageVisual.contrast >= FLAT_BELOW)
    if term.what == "dark":
        return select(ImageVisual.image_id.label("image_id")).where(ImageVisual.brightness < DARK_BELOW)
    return None


def _looks(term: ColorFilter | QualityFilter | DupesFilter | LikeFilter, ctx: _Context) -> ColumnElement[bool]:
    from bot.core.visual import SMALL_BELOW_PX

    if isinstance(term, (DupesFilter, LikeFilter)):
        # The image asked about must itself be visible to the caller, or what looks like it says nothing.
        shown = select(Sighting.id).where(Sighting.image_id == term.image_id, *ctx.visible()).exists()
        return and_(one_of(Image.id, _looked_up(term), ctx.dialect), shown, Image.id != term.image_id)
    listed = _looks_select(term, ctx)
    if listed is None:  # quality:small: the stored size decides
        return and_(Image.width < SMALL_BELOW_PX, Image.height < SMALL_BELOW_PX)
    if ctx.probe:
        return ctx.exists(listed.where(listed.selected_columns[0] == Image.id))
    return Image.id.in_(listed)


def _looked_up(term: DupesFilter | LikeFilter) -> list[int]:
    if isinstance(term, DupesFilter):
        return list(term.candidates or ())
    return [image_id for image_id, _ in term.scores or ()]


def _sensitive(term: SensitiveFilter) -> list[ColumnElement[bool]]:
    """A finding of the category, and of the kind or a kind it starts (``aws`` → ``aws-secret-key``)."""
    conditions = [SensitiveFinding.category == term.category]
    if term.kind:  # the parser allows only [a-z0-9-], so the LIKE pattern holds no wildcard of its own
        conditions.append(or_(SensitiveFinding.kind == term.kind, SensitiveFinding.kind.like(f"{term.kind}-%")))
    return conditions


def _sightings_match(terms: Sequence[Term], ctx: _Context, *, top: bool) -> ColumnElement[bool]:
    """One visible sighting meets all ``terms``: an ``IN`` list the planner can start from when the
    terms are required and indexable (``in:<#C0123>``, dates), else a correlated EXISTS."""
    if top and not ctx.probe and all(_indexable(t) for t in terms):
        return _seen_in_list(terms, ctx)
    return _seen_in([_sighting_condition(t, ctx) for t in terms], ctx)


def _flagged(ctx: _Context, category: str | None) -> ColumnElement[bool]:
    if not category:
        # save_analysis keeps the strongest stored moderation label's confidence on the image.
        return Image.max_moderation_confidence >= ctx.moderation_min
    word = _normalise(category)
    # Flagged in a category implies flagged at all: the range on the image row lets a database
    # start from ix_images_max_moderation_confidence, with the category checked per image.
    at_all = Image.max_moderation_confidence >= ctx.moderation_min
    conditions: list[ColumnElement[bool]] = [
        ModerationLabel.confidence >= ctx.moderation_min,
        or_(ModerationLabel.name.icontains(word, autoescape=True),
            ModerationLabel.parent_name.icontains(word, autoescape=True)),
    ]
    if ctx.probe:
        return and_(at_all, ctx.exists(select(ModerationLabel.id).where(ModerationLabel.image_id == Image.id,
                                                                         *conditions)))
    return and_(at_all, Image.id.in_(select(ModerationLabel.image_id).where(*conditions)))


# -- scoring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LabelPart:
    """A positive label term of the query: scores the best confidence among ``terms``."""

    terms: tuple[str, ...]


@dataclass(frozen=True)
class _LikePart:
    """A positive ``like:`` term: scores each of its images by cosine × 100 (0 for any other)."""

    image_id: int
    scores: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class _TextPart:
    """A positive text term of the query: scores ``TEXT_MATCH_SCORE`` when it matches."""

    text: str
    exact: bool


def _score_parts(query: Query) -> list[_LabelPart | _TextPart | _LikePart]:
    """What the score adds up: the positive label, text and ``like:`` terms, in query order."""
    parts: list[_LabelPart | _TextPart | _LikePart] = []
    for term, negated in query.leaves():
        if negated:
            continue
        if isinstance(term, LabelFilter):
            parts.append(_LabelPart((term.name.strip().lower()[:255],)))
        elif isinstance(term, Word):
            parts.append(_LabelPart(tuple(_label_candidates(term))))
            parts.append(_TextPart(term.text, _needs_exact(term)))
        elif isinstance(term, TextFilter):
            parts.append(_TextPart(term.phrase, True))
        elif isinstance(term, LikeFilter) and term.scores:
            parts.append(_LikePart(term.image_id, term.scores))
    return parts


def _like_score(part: _LikePart, ctx: _Context) -> ColumnElement[float]:
    """Cosine × 100 of the image, looked up in one JSON parameter (a CASE of 500 ids binds 1,000)."""
    scores: BindParameter[str] = bindparam(
        None, json.dumps({str(i): round(100.0 * s, 3) for i, s in part.scores}), unique=True)
    found: ColumnElement[Any]
    if ctx.dialect == "postgresql":
        found = cast(scores, postgresql.JSONB).op("->>")(cast(Image.id, Text))
    else:
        found = func.json_extract(scores, literal('$."') + cast(Image.id, Text) + literal('"'))
    # Only when the caller may see the image asked about: else the order of other results
    # (``like:42 OR has:labels``) would tell what a hidden image looks like.
    shown = select(Sighting.id).where(Sighting.image_id == part.image_id, *ctx.visible()).exists()
    return case((shown, func.coalesce(cast(found, Float), 0.0)), else_=0.0)


def _score(parts: Sequence[_LabelPart | _TextPart | _LikePart], ctx: _Context) -> ColumnElement[float]:
    """Matched label confidence plus ``TEXT_MATCH_SCORE`` per matched text term (positive terms only)."""
    scores: list[ColumnElement[float]] = []
    for part in parts:
        if isinstance(part, _LabelPart):
            scores.append(_label_score(part.terms, ctx))
        elif isinstance(part, _LikePart):
            scores.append(_like_score(part, ctx))
        else:
            scores.append(case((_text_match(part.text, ctx, exact=part.exact), TEXT_MATCH_SCORE), else_=0.0))
    if not scores:
        return cast(literal(0.0), Float)
    total = scores[0]
    for part_score in scores[1:]:
        total = total + part_score
    return cast(total, Float)


def _filters(query: Query, ctx: _Context, statuses: Sequence[str], *,
             visible_list: bool = False) -> list[ColumnElement[bool]]:
    """``query`` and who may see what, as conditions on ``images``. ``visible_list``: the caller's
    channels as one list of their posts (for a report over all of them) rather than a probe per image."""
    visible: ColumnElement[bool]
    if ctx.channels is None:
        # Unrestricted, visible is "some live sighting", which ``last_seen_at`` records.
        visible = Image.last_seen_at.is_not(None)
    elif visible_list:
        visible = Image.id.in_(select(Sighting.image_id).where(*ctx.visible(indexed=True)))
    else:
        visible = _seen_in([], ctx)
    filters: list[ColumnElement[bool]] = [
        ctx.plain(Image.status).in_(list(statuses)),  # let SQLite start from a selective term instead
        visible,  # its own top-level condition: nothing inside the query can undo it
    ]
    for term in _top_level_sighting_terms(query):
        if isinstance(term, SeenFilter) and term.start is not None:
            # Implied (the newest live post is at least as new as any visible one) and read off the
            # image row itself, so most images outside the period are turned away without a probe.
            filters.append(ctx.plain(Image.last_seen_at) >= term.start)
    if query.where is not None:
        filters.append(_condition(query.where, ctx, top=True))
    if query.confidence is not None and not any(
        isinstance(term, (LabelFilter, Word)) for term, _negated in query.leaves()
    ):
        # conf>90 on its own: images with some label that sure.
        filters.append(_condition(HasFilter("labels"), ctx))
    return filters


# -- where the matches come from ---------------------------------------------------------------
#
# Counting "up to 1,001" must not read every match of ``label:animal`` (300,000 images) or
# ``after:`` (a month of posts). The matches are read from *drivers*: lists of image ids from one
# index each (repeats allowed) that include every match, e.g. ``label_terms`` for ``label:dog``,
# the channel's posts for ``in:#pets``; each image they lead to is then checked with the probes.
# SQLite would turn ``images.id IN (list)`` into a temporary table of the whole list before reading
# a row, so there the shortest driver is read in order and the count stops when it has enough.
# PostgreSQL gets every driver as a semi-join, which it plans by cost, and the probes fenced off
# (``_Context.exists``) so that a wrong row estimate cannot make it hash a whole table.


def _driver(term: Term, ctx: _Context) -> list[list[Select[Any]]]:
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
        text = _text_driver(term.text, ctx)
        return [[_label_driver(_label_candidates(term), ctx), text]] if text is not None else []
    if isinstance(term, TextFilter):
        text = _text_driver(term.phrase, ctx)
        return [[text]] if text is not None else []
    if isinstance(term, (DupesFilter, LikeFilter)):
        return [[select(Image.id.label("image_id")).where(one_of(Image.id, _looked_up(term), ctx.dialect))]]
    if isinstance(term, (ColorFilter, QualityFilter)):
        listed = _looks_select(term, ctx)
        return [[listed]] if listed is not None else []
    if isinstance(term, PeopleFilter) and term.minimum > 0:  # images with people: the count's index lists them
        return [[select(Image.id.label("image_id")).where(_people(term))]]
    if isinstance(term, SensitiveFilter):  # few images show any: the findings' index lists them
        return [[select(SensitiveFinding.image_id.label("image_id")).where(*_sensitive(term))]]
    if isinstance(term, UnsafeFilter) or (isinstance(term, HasFilter) and term.what == "moderation"):
        if ctx.dialect != "sqlite":
            return []  # a range on the image row itself, which PostgreSQL's planner reads directly
        return [[select(Image.id.label("image_id")).where(Image.max_moderation_confidence >= ctx.moderation_min)]]
    if isinstance(term, _SIGHTING_TERMS):
        # ``+image_id``: so that SQLite reads the term's index rather than ix_sightings_image_id
        # (which would hand the ids over in order, for the DISTINCT, after reading every post).
        return [[select(ctx.plain(Sighting.image_id).label("image_id"))
                 .where(_sighting_condition(term, ctx, indexed=True))]]
    return []


def _label_driver(candidates: Sequence[str], ctx: _Context) -> Select[Any]:
    return select(LabelTerm.image_id).where(LabelTerm.term.in_(list(candidates)), ctx.confident(LabelTerm.confidence))


def _text_driver(text: str, ctx: _Context) -> Select[Any] | None:
    tokens = _text_tokens(text)
    if not tokens or " ".join(tokens) in ctx.stop_words_only:
        return None
    words = " ".join(tokens)
    if ctx.dialect == "postgresql":
        english: ColumnElement[Any] = literal_column("'english'")
        tsquery = func.phraseto_tsquery(english, bindparam(None, words, unique=True))
        return select(SearchDocument.image_id).where(func.to_tsvector(english, SearchDocument.text).op("@@")(tsquery))
    expression = 'text : "' + words.replace('"', '""') + '"'
    match = _FTS.c.search_fts.op("MATCH", is_comparison=True)(bindparam(None, expression, unique=True))
    return select(_FTS.c.rowid.label("image_id")).where(match)


def _count_rows(session: Session, statement: Select[Any], cap: int | None) -> int:
    """How many rows ``statement`` returns, reading no further than ``cap + 1``."""
    if cap is not None:
        statement = statement.limit(cap + 1)
    return int(session.execute(select(func.count()).select_from(statement.subquery())).scalar_one())


def _match_ids(session: Session, query: Query, ctx: _Context, statuses: Sequence[str]) -> Select[Any]:
    """The ids of the images ``query`` matches, as a statement that reads no more rows than it returns
    (up to a LIMIT) on either database; see above."""
    filters = _filters(query, dataclasses.replace(ctx, probe=True), statuses)
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
        sizes = [_count_rows(session, way, cap) for way in ways]
        ways, sizes = map(list, zip(*sorted(zip(ways, sizes, strict=True), key=lambda pair: pair[1]), strict=True))
    listed = ways[0].subquery()
    narrowed: list[ColumnElement[bool]] = []
    if (len(ways) > 1 and sizes[0] > ESTIMATE_UP_TO and ways[1] is not visible
            and _count_rows(session, ways[1], NARROW_UP_TO) <= NARROW_UP_TO):
        # Two long lists (label:dog in:#pets): read the first only where the second has the image,
        # the second made into a temporary table once, if that is not too long itself.
        narrowed.append(listed.c.image_id.in_(ways[1]))
    checked = select(Image.id).where(Image.id == listed.c.image_id, *filters).exists()
    return select(listed.c.image_id).where(*narrowed, *_named_first(query, listed.c.image_id, ctx), checked).distinct()


def _named_first(query: Query, image_id: Any, ctx: _Context) -> list[ColumnElement[bool]]:
    """SQLite: each top-level ``in:``/``from:`` term as a look-up of its own (name or id, image)
    index for a listed image, before the image's row and posts are read.

    Implied by the full check (which also wants the post live and visible, so it reads the
    post's row): ``quality:blurry in:#design`` turns away the nine in ten blurry images from
    other channels with one index look-up each, where the full check read their posts."""
    probes: list[ColumnElement[bool]] = []
    for term in _top_level_sighting_terms(query):
        if not isinstance(term, (ChannelFilter, UserFilter)):
            continue
        by_id, by_name = _where_or_who(term, ctx, indexed=True)
        if by_id is not None and isinstance(term, ChannelFilter):
            # Live posts only: ``ix_sightings_live_channel_id_image_id`` has the channel and the
            # image; the other channel index would be read through the whole channel.
            by_id = and_(by_id, Sighting.deleted_at.is_(None))
        probes.append(or_(*(exists(select(Sighting.id).where(Sighting.image_id == image_id, way))
                            for way in (by_id, by_name) if way is not None)))  # each way its own index
    return probes


def _beyond_cap_early(session: Session, query: Query, ctx: _Context, statuses: Sequence[str], cap: int) -> bool:
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
    filters = _filters(query, dataclasses.replace(ctx, probe=True), statuses)
    for part in ways[0]:
        if _count_rows(session, part, cap) <= cap:
            continue  # too short to hold more than cap matches
        head = select(Image.id).where(Image.id.in_(part.limit(EARLY_READ)), *filters)
        if _count_rows(session, head, cap) > cap:
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


def _first_window(session: Session, ctx: _Context, k: int) -> int:
    """How many of the newest images the first round of ``_rank`` starts from: ``2k``, or for a
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
    cut: tuple[_LabelPart, ...] = ()  # the label terms with more images than the round brought in

    def bound(self, pair_floor: float | None, ctx: _Context) -> float:
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


def _candidates(session: Session, parts: Sequence[_LabelPart | _TextPart | _LikePart], ctx: _Context,
                statuses: Sequence[str], n: int, horizon: datetime, pair_floor: float | None) -> _Candidates:
    if ctx.channels is None:
        window = select(Image.id).where(Image.status.in_(list(statuses)), Image.last_seen_at >= horizon)
    else:  # the caller's channels' posts since then, through ix_sightings_channel_id_seen_at_image_id
        window = select(Sighting.image_id).where(Sighting.channel_id.in_(ctx.channels), Sighting.seen_at >= horizon)
    ids: list[Select[Any]] = [window]
    label_reach: list[float] = []
    cut: list[_LabelPart] = []  # label terms with more images than the round brings in
    text_reach = 0.0
    for part in parts:
        if isinstance(part, _LabelPart):
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
        elif isinstance(part, _LikePart):  # every image it scores is brought in: nothing outside reaches it
            ids.append(select(Image.id).where(one_of(Image.id, [i for i, _ in part.scores], ctx.dialect)))
        else:
            listed = _text_driver(part.text, ctx)  # every match is in it
            if listed is not None and _count_rows(session, listed, n) <= n:
                ids.append(select(Image.id).where(_text_match(part.text, ctx, exact=part.exact)))
            else:  # too common: only the window brings its images in
                text_reach += TEXT_MATCH_SCORE
    found = _Candidates(ids, horizon, label_reach, text_reach, paired=False, cut=tuple(cut))
    return _with_pairs(session, found, pair_floor, ctx) if pair_floor is not None else found


def _with_pairs(session: Session, found: _Candidates, pair_floor: float, ctx: _Context) -> _Candidates:
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


def _first_pair_floor(ctx: _Context) -> float:
    """Where the pairs start when two or more label terms are cut (``cat OR dog``): high, so that
    the first round ranks only the few images sure of two terms at once instead of every image
    with both. When the page's last score still does not beat what one sure term plus one just
    under the floor can reach, the next round lowers the floor to what that score needs; only
    the cost depends on this guess, the bound check keeps the page exact."""
    return ctx.label_min + FIRST_PAIR_FLOOR * (100.0 - ctx.label_min)


def _rank(session: Session, query: Query, ctx: _Context, statuses: Sequence[str], k: int,
          *, total: int | None, matches: Select[Any], scored: bool = True) -> list[Any]:
    """The first ``k`` matches as (id, score, newest), best first. ``total`` is the exact number of
    matches when known, ``matches`` their ids (``_match_ids``). See the module docstring for the rounds."""
    probe = dataclasses.replace(ctx, probe=True)
    parts = _score_parts(query) if scored else []
    score = _score(parts, probe).label("score")
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
            return best(_filters(query, probe, statuses))
        found = _candidates(session, parts, ctx, statuses, n, horizon, pair_floor)
        if pair_floor is None and len(found.cut) >= 2:
            pair_floor = _first_pair_floor(ctx)
            found = _with_pairs(session, found, pair_floor, ctx)
        rows = best([Image.id.in_(union(*found.ids)), *_filters(query, probe, statuses)])
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


# -- shaping the records ---------------------------------------------------------------------


def _top_level_sighting_terms(query: Query) -> list[Term]:
    where = query.where
    if where is None:
        return []
    terms = where.terms if isinstance(where, And) else (where,)
    return [t for t in terms if isinstance(t, _SIGHTING_TERMS)]


def _display_sightings(session: Session, image_ids: list[int], query: Query, ctx: _Context) -> dict[int, int]:
    """For each image, the id of the newest visible sighting, preferring one that meets the query's
    top-level ``in:``/``from:``/date terms (so ``in:#design`` shows the #design post)."""
    chosen: dict[int, int] = {}
    if not image_ids:
        return chosen
    preferred = [_sighting_condition(t, ctx) for t in _top_level_sighting_terms(query)]  # via image_id
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
            wanted.append((term.text, _needs_exact(term)))
    if not wanted:
        return None
    for line in record.lines:
        folded = _fold(line.text)
        line_tokens = _TOKEN.findall(folded)
        for text, exact in wanted:
            needle = _fold(_normalise(text))
            if exact:
                if needle and needle in folded:
                    return line.text
            elif _tokens_match(_TOKEN.findall(needle), line_tokens):
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
    ctx = _context(session, query, channels, label_min_confidence, moderation_min_confidence)
    statuses = ("done",)
    cap = max(COUNT_CAP, page * per_page)
    matches = _match_ids(session, query, ctx, statuses)
    counted = cap + 1 if _beyond_cap_early(session, query, ctx, statuses, cap) else _count_rows(session, matches, cap)
    estimate = counted > cap
    total = cap if estimate else counted

    rows = []
    if (page - 1) * per_page < counted:
        rows = _rank(session, query, ctx, statuses, page * per_page, total=None if estimate else total,
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
                      total_is_estimate=estimate)


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
    ctx = _context(session, query, channels, label_min_confidence, moderation_min_confidence)
    statuses = ("done", "failed")

    def aggregates(on: Session) -> tuple[ReportTotals, tuple[LabelCount, ...]]:
        _no_jit(on)
        return _report_aggregates(on, query, ctx, statuses, label_min_confidence)

    def listed(total: int | None) -> tuple[ImageRecord, ...]:
        rows = _rank(session, query, ctx, statuses, REPORT_MAX_IMAGES, total=total,
                     matches=_match_ids(session, query, ctx, statuses), scored=False)
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


def _report_aggregates(session: Session, query: Query, ctx: _Context, statuses: Sequence[str],
                       label_min_confidence: float) -> tuple[ReportTotals, tuple[LabelCount, ...]]:
    """The totals and the top labels over every match."""
    kept = _kept_channel_totals(session, query, ctx)
    if kept is not None:
        ranked = sorted(kept.labels.items(), key=lambda item: (-item[1], item[0]))[:REPORT_TOP_LABELS]
        return (ReportTotals(images=kept.images, analysed=kept.analysed, failed=kept.failed,
                             with_text=kept.with_text, flagged=kept.flagged),
                tuple(LabelCount(name=name, images=images) for name, images in ranked))
    every = _filters(query, ctx, statuses, visible_list=True)
    whole = query.is_empty and ctx.channels is None  # every image with a live post
    return (_report_totals(session, ctx, every),
            _top_labels(session, None if whole else select(Image.id).where(*every), label_min_confidence))


def _kept_channel_totals(session: Session, query: Query, ctx: _Context) -> channel_stats.ChannelTotals | None:
    """A report over everything in some channels reads the counts kept per channel
    (``db/channel_stats.py``) instead of counting every image; they keep whole-number
    floors of confidences, so only whole-number thresholds can use them."""
    if not query.is_empty or ctx.channels is None or not ctx.label_inclusive:
        return None
    if ctx.label_min != int(ctx.label_min) or ctx.moderation_min != int(ctx.moderation_min):
        return None
    return channel_stats.totals(session, ctx.channels, label_floor=int(ctx.label_min),
                                moderation_floor=int(ctx.moderation_min))


def _report_totals(session: Session, ctx: _Context, every: Sequence[ColumnElement[bool]]) -> ReportTotals:
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
