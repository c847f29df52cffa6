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
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    column,
    distinct,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from bot.core.records import ImageRecord, LabelCount, ReportData, SearchHit, SearchPage, SightingRecord
from bot.core.search import (
    And,
    ChannelFilter,
    HasFilter,
    LabelFilter,
    Not,
    Or,
    Query,
    SeenFilter,
    Term,
    TextFilter,
    UnsafeFilter,
    UserFilter,
    Word,
)
from db import queries
from db.models import Image, LabelTerm, ModerationLabel, SearchDocument, Sighting, TextDetection
from db.models import Label as LabelRow

__all__ = ["REPORT_MAX_IMAGES", "REPORT_TOP_LABELS", "report_data", "search_images"]

REPORT_MAX_IMAGES = 10_000
REPORT_TOP_LABELS = 20
MAX_PER_PAGE = 1000
TEXT_MATCH_SCORE = 100.0  # a text match counts like a label at 100% confidence

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
        ``image_id`` it would otherwise walk ``ix_sightings_channel_id_seen_at`` for
        every image instead of the image's few sightings. PostgreSQL plans by cost.
        """
        if self.dialect != "sqlite":
            return column  # type: ignore[no-any-return]
        return UnaryExpression(column, operator=custom_op("+"), type_=column.type)

    def confident(self, confidence: Any) -> ColumnElement[bool]:
        condition: ColumnElement[bool] = (
            confidence >= self.label_min if self.label_inclusive else confidence > self.label_min
        )
        return condition


def _context(session: Session, query: Query, channels: Collection[str] | None,
             label_min_confidence: float, moderation_min_confidence: float) -> _Context:
    bind = session.get_bind()
    if query.confidence is not None:
        label_min, inclusive = float(query.confidence.value), query.confidence.inclusive
    else:
        label_min, inclusive = float(label_min_confidence), True
    return _Context(
        dialect=bind.dialect.name, label_min=label_min, label_inclusive=inclusive,
        moderation_min=float(moderation_min_confidence),
        channels=sorted(set(channels)) if channels is not None else None,
    )


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
    return Image.id.in_(
        select(LabelTerm.image_id).where(LabelTerm.term.in_(list(candidates)), ctx.confident(LabelTerm.confidence))
    )


def _label_score(candidates: Sequence[str], ctx: _Context) -> ColumnElement[float]:
    best = (
        select(func.max(LabelTerm.confidence))
        .where(LabelTerm.image_id == Image.id, LabelTerm.term.in_(list(candidates)),
               ctx.confident(LabelTerm.confidence))
        .scalar_subquery()
    )
    return func.coalesce(best, 0.0)


def _line_contains(phrase: str) -> ColumnElement[bool]:
    """Some detected LINE of the image contains ``phrase``, in any case (LIKE, escaped)."""
    return (
        select(TextDetection.id)
        .where(TextDetection.image_id == Image.id, TextDetection.kind == "LINE",
               TextDetection.text.icontains(phrase, autoescape=True))
        .exists()
    )


def _fts_text_phrase(tokens: list[str], ctx: _Context) -> ColumnElement[bool]:
    """The image's text column contains these tokens as a phrase (stemmed), through the index."""
    words = " ".join(tokens)
    if ctx.dialect == "postgresql":
        english: ColumnElement[Any] = literal_column("'english'")
        tsquery = func.phraseto_tsquery(english, bindparam(None, words, unique=True))
        return Image.id.in_(
            select(SearchDocument.image_id).where(func.to_tsvector(english, SearchDocument.text).op("@@")(tsquery))
        )
    # FTS5: a column filter and one string (its quotes doubled), bound as a parameter.
    expression = 'text : "' + words.replace('"', '""') + '"'
    return Image.id.in_(
        select(_FTS.c.rowid).where(_FTS.c.search_fts.op("MATCH", is_comparison=True)(
            bindparam(None, expression, unique=True)))
    )


def _text_match(text: str, ctx: _Context, *, exact: bool) -> ColumnElement[bool]:
    """Full-text match on the detected text; ``exact`` also checks the literal phrase in a line.

    Punctuation never reaches the full-text index (it drops ``%``), so an exact
    phrase is verified as a case-insensitive substring of a line. A phrase with no
    indexable token at all (``"%"``) is only checked as a substring.
    """
    phrase = _normalise(text)
    tokens = _TOKEN.findall(phrase.lower())
    if not tokens:
        return _line_contains(phrase) if phrase else false()
    indexed = _fts_text_phrase(tokens, ctx)
    if ctx.dialect == "postgresql":
        # Only stop words ("to be"): the tsquery is empty and matches nothing, so the lines decide.
        english: ColumnElement[Any] = literal_column("'english'")
        empty = func.numnode(func.phraseto_tsquery(english, bindparam(None, " ".join(tokens), unique=True))) == 0
        indexed = or_(indexed, empty) if exact else or_(indexed, and_(empty, _line_contains(phrase)))
    return and_(indexed, _line_contains(phrase)) if exact else indexed


def _needs_exact(word: Word) -> bool:
    """Quoted phrases and words with punctuation (``50%``) must appear literally."""
    return word.quoted or not all(part.isalnum() for part in _normalise(word.text).split())


def _sighting_condition(term: Term, ctx: _Context, *, indexed: bool = False) -> ColumnElement[bool]:
    """A condition on ``sightings`` columns for one of ``in:``, ``from:``, ``after:``/``before:``.

    ``indexed`` lets SQLite use the channel, user and date indexes (for an uncorrelated
    ``IN`` list); otherwise the subquery is meant to go through ``image_id``.
    """
    def col(column: Any) -> ColumnElement[Any]:
        return column if indexed else ctx.plain(column)

    if isinstance(term, ChannelFilter):
        if term.is_id:
            return col(Sighting.channel_id) == term.channel
        name = term.channel.lower()
        return or_(col(Sighting.channel_id).in_(sorted({term.channel, term.channel.upper()})),
                   func.lower(Sighting.channel_name).in_([name, "#" + name]))
    if isinstance(term, UserFilter):
        if term.is_id:
            return col(Sighting.user_id) == term.user
        name = term.user.lower()
        return or_(col(Sighting.user_id).in_(sorted({term.user, term.user.upper()})),
                   func.lower(Sighting.user_name).in_([name, "@" + name]))
    assert isinstance(term, SeenFilter)
    bounds: list[ColumnElement[bool]] = []
    if term.start is not None:
        bounds.append(col(Sighting.seen_at) >= term.start)
    if term.end is not None:
        bounds.append(col(Sighting.seen_at) < term.end)
    return and_(true(), *bounds)


def _seen_in(conditions: Iterable[ColumnElement[bool]], ctx: _Context) -> ColumnElement[bool]:
    """Some visible, live sighting meets every condition (so ``in:#a from:@bob`` is one message).

    A correlated EXISTS: each candidate image is checked through ``ix_sightings_image_id``.
    """
    return select(Sighting.id).where(Sighting.image_id == Image.id, *ctx.visible(), *conditions).exists()


def _indexable(term: Term) -> bool:
    """A sighting term an index can find directly: a channel or user id, or a time range."""
    return isinstance(term, SeenFilter) or (isinstance(term, (ChannelFilter, UserFilter)) and term.is_id)


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
    if isinstance(term, HasFilter):
        if term.what == "text":
            return Image.text_line_count > 0
        if term.what == "faces":
            return Image.face_count > 0
        if term.what == "moderation":
            return _flagged(ctx, None)
        return Image.id.in_(select(LabelTerm.image_id).where(ctx.confident(LabelTerm.confidence)))
    raise TypeError(f"unknown query term {term!r}")  # pragma: no cover - the parser makes only the above


def _sightings_match(terms: Sequence[Term], ctx: _Context, *, top: bool) -> ColumnElement[bool]:
    """One visible sighting meets all ``terms``: an ``IN`` list the planner can start from when the
    terms are required and indexable (``in:<#C0123>``, dates), else a correlated EXISTS."""
    if top and all(_indexable(t) for t in terms):
        return _seen_in_list(terms, ctx)
    return _seen_in([_sighting_condition(t, ctx) for t in terms], ctx)


def _flagged(ctx: _Context, category: str | None) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [ModerationLabel.confidence >= ctx.moderation_min]
    if category:
        word = _normalise(category)
        conditions.append(or_(ModerationLabel.name.icontains(word, autoescape=True),
                              ModerationLabel.parent_name.icontains(word, autoescape=True)))
    return Image.id.in_(select(ModerationLabel.image_id).where(*conditions))


def _score(query: Query, ctx: _Context) -> ColumnElement[float]:
    """Matched label confidence plus ``TEXT_MATCH_SCORE`` per matched text term (positive terms only)."""
    parts: list[ColumnElement[float]] = []
    for term, negated in query.leaves():
        if negated:
            continue
        if isinstance(term, LabelFilter):
            parts.append(_label_score([term.name.strip().lower()[:255]], ctx))
        elif isinstance(term, Word):
            parts.append(_label_score(_label_candidates(term), ctx))
            parts.append(_text_score(_text_match(term.text, ctx, exact=_needs_exact(term))))
        elif isinstance(term, TextFilter):
            parts.append(_text_score(_text_match(term.phrase, ctx, exact=True)))
    if not parts:
        return cast(literal(0.0), Float)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return cast(total, Float)


def _text_score(matched: ColumnElement[bool]) -> ColumnElement[float]:
    return case((matched, TEXT_MATCH_SCORE), else_=0.0)


def _filters(query: Query, ctx: _Context, statuses: Sequence[str]) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [
        ctx.plain(Image.status).in_(list(statuses)),  # let SQLite start from a selective term instead
        # Visibility is its own top-level condition: nothing inside the query can undo it.
        _seen_in([], ctx),
    ]
    if query.where is not None:
        filters.append(_condition(query.where, ctx, top=True))
    if query.confidence is not None and not any(
        isinstance(term, (LabelFilter, Word)) for term, _negated in query.leaves()
    ):
        # conf>90 on its own: images with some label that sure.
        filters.append(_condition(HasFilter("labels"), ctx))
    return filters


def _newest_visible_seen_at(ctx: _Context) -> ColumnElement[datetime]:
    return (
        select(func.max(Sighting.seen_at))
        .where(Sighting.image_id == Image.id, *ctx.visible())
        .scalar_subquery()
    )


# -- shaping the records ---------------------------------------------------------------------


def _visible_only(record: ImageRecord, ctx: _Context) -> ImageRecord:
    """A restricted caller gets only the sightings it may see (never another channel's)."""
    if ctx.channels is None:
        return record
    allowed = set(ctx.channels)
    kept = tuple(s for s in record.sightings
                 if not s.deleted and s.source_kind == "slack" and s.channel_id in allowed)
    return dataclasses.replace(record, sightings=kept)


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
    """One page of analysed images matching ``query``, best first, then newest sighting first."""
    page = max(1, int(page))
    per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
    ctx = _context(session, query, channels, label_min_confidence, moderation_min_confidence)
    filters = _filters(query, ctx, ("done",))

    total = int(session.execute(select(func.count()).select_from(Image).where(*filters)).scalar_one())
    score = _score(query, ctx).label("score")
    newest = _newest_visible_seen_at(ctx).label("newest")
    rows = session.execute(
        select(Image.id, score, newest)
        .where(*filters)
        .order_by(score.desc(), newest.desc(), Image.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    ids = [int(row.id) for row in rows]
    scores = {int(row.id): float(row.score or 0.0) for row in rows}
    records = [_visible_only(r, ctx) for r in queries.load_image_records(session, ids)]
    shown = _display_sightings(session, ids, query, ctx)
    hits = []
    for record in records:
        by_id = {s.id: s for s in record.sightings}
        sighting: SightingRecord | None = by_id.get(shown.get(record.id, -1))
        hits.append(SearchHit(image=record, score=round(scores[record.id], 2), sighting=sighting,
                              snippet=_snippet(record, query)))
    return SearchPage(query=query_text, hits=tuple(hits), page=page, per_page=per_page, total=total)


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
) -> ReportData:
    """Everything a report shows: done and failed images matching ``query`` (newest first,
    at most ``REPORT_MAX_IMAGES``) and the most common labels across all of them."""
    ctx = _context(session, query, channels, label_min_confidence, moderation_min_confidence)
    filters = _filters(query, ctx, ("done", "failed"))
    matching = select(Image.id).where(*filters)

    total = int(session.execute(select(func.count()).select_from(Image).where(*filters)).scalar_one())
    ids = [int(i) for i in session.execute(
        matching.order_by(_newest_visible_seen_at(ctx).desc(), Image.id.desc()).limit(REPORT_MAX_IMAGES)
    ).scalars()]
    records = tuple(_visible_only(r, ctx) for r in queries.load_image_records(session, ids))

    images_with_label = func.count(distinct(LabelRow.image_id))
    top = session.execute(
        select(LabelRow.name, images_with_label.label("images"))
        .where(LabelRow.image_id.in_(matching), LabelRow.confidence >= label_min_confidence)
        .group_by(LabelRow.name)
        .order_by(images_with_label.desc(), LabelRow.name)
        .limit(REPORT_TOP_LABELS)
    ).all()
    note = None
    if total > len(records):
        note = (f"Showing the newest {len(records):,} of {total:,} matching images; "
                "top labels count all of them.")
    return ReportData(
        title=title, query=query_text, generated_at=now, label_min_confidence=label_min_confidence,
        moderation_min_confidence=moderation_min_confidence, images=records,
        top_labels=tuple(LabelCount(name=row.name, images=int(row.images)) for row in top),
        note=note,
    )
