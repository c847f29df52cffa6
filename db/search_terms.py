"""A parsed query's terms as SQL over the image tables, for ``db.search``.

``build_context`` fixes what a query is compiled with (the dialect, the label threshold, the caller's
channels); ``query_conditions`` gives the query and who may see what as conditions on ``images``,
each term either as an ``IN`` list or, in probe mode (``Context.probe``), as a correlated ``EXISTS``
that reads nothing for images outside the candidates; ``score_parts`` and ``score_expression`` give
the ranking score. Every user value is a bound parameter.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
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
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import BindParameter, UnaryExpression
from sqlalchemy.sql.operators import custom_op

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
from db.bulk_records import one_of
from db.models import (
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

TEXT_MATCH_SCORE = 100.0  # a text match counts like a label at 100% confidence

FTS_TABLE = table("search_fts", column("rowid", Integer), column("search_fts"))
TOKEN = re.compile(r"[^\W_]+")
SIGHTING_TERMS = (ChannelFilter, UserFilter, SeenFilter)


@dataclass(frozen=True)
class Context:
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


def build_context(session: Session, query: Query, channels: Collection[str] | None,
                  label_min_confidence: float, moderation_min_confidence: float) -> Context:
    bind = session.get_bind()
    if query.confidence is not None:
        label_min, inclusive = float(query.confidence.value), query.confidence.inclusive
    else:
        label_min, inclusive = float(label_min_confidence), True
    stop_words_only: frozenset[str] = frozenset()
    if bind.dialect.name == "postgresql":
        english: ColumnElement[Any] = literal_column("'english'")
        for words in {" ".join(tokens) for tokens in map(text_tokens, _text_terms(query)) if tokens}:
            empty = func.numnode(func.phraseto_tsquery(english, bindparam(None, words, unique=True))) == 0
            if session.execute(select(empty)).scalar_one():
                stop_words_only |= {words}
    return Context(
        dialect=bind.dialect.name, label_min=label_min, label_inclusive=inclusive,
        moderation_min=float(moderation_min_confidence),
        channels=sorted(set(channels)) if channels is not None else None, stop_words_only=stop_words_only,
    )


def _text_terms(query: Query) -> list[str]:
    """Every text the query looks for in detected lines (negated or not)."""
    return [term.text if isinstance(term, Word) else term.phrase
            for term, _negated in query.leaves() if isinstance(term, (Word, TextFilter))]


def text_tokens(text: str) -> list[str]:
    return TOKEN.findall(normalise(text).lower())


# -- compiling terms -------------------------------------------------------------------------


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def label_candidates(word: Word) -> list[str]:
    """The label terms a free word stands for: itself and, unquoted, a naive singular (cats → cat)."""
    term = word.text.strip().lower()[:255]  # exactly how the pipeline writes label_terms
    found = [term]
    if not word.quoted and len(term) > 3 and term.endswith("s") and not term.endswith("ss"):
        found.append(term[:-1])
    return found


def _label_in(candidates: Sequence[str], ctx: Context) -> ColumnElement[bool]:
    matches = [LabelTerm.term.in_(list(candidates)), ctx.confident(LabelTerm.confidence)]
    if ctx.probe:
        return ctx.exists(select(LabelTerm.image_id).where(LabelTerm.image_id == Image.id, *matches))
    return Image.id.in_(select(LabelTerm.image_id).where(*matches))


def _label_score(candidates: Sequence[str], ctx: Context) -> ColumnElement[float]:
    best = (
        select(func.max(LabelTerm.confidence))
        .where(LabelTerm.image_id == Image.id, LabelTerm.term.in_(list(candidates)),
               ctx.confident(LabelTerm.confidence))
        .scalar_subquery()
    )
    return func.coalesce(best, 0.0)


def _line_contains(phrase: str, ctx: Context) -> ColumnElement[bool]:
    """Some detected LINE of the image contains ``phrase``, in any case (LIKE, escaped)."""
    return ctx.exists(
        select(TextDetection.id)
        .where(TextDetection.image_id == Image.id, TextDetection.kind == "LINE",
               TextDetection.text.icontains(phrase, autoescape=True))
    )


def _fts_text_phrase(tokens: list[str], ctx: Context) -> ColumnElement[bool]:
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
    match = FTS_TABLE.c.search_fts.op("MATCH", is_comparison=True)(bindparam(None, expression, unique=True))
    return Image.id.in_(select(FTS_TABLE.c.rowid).where(match))


def text_match(text: str, ctx: Context, *, exact: bool) -> ColumnElement[bool]:
    """Full-text match on the detected text; ``exact`` also checks the literal phrase in a line.

    Punctuation never reaches the full-text index (it drops ``%``), so an exact
    phrase is verified as a case-insensitive substring of a line. A phrase with no
    indexable token at all (``"%"``) is only checked as a substring.
    """
    phrase = normalise(text)
    tokens = text_tokens(text)
    if not tokens or " ".join(tokens) in ctx.stop_words_only:
        # Nothing the index knows (``"%"``, or only PostgreSQL stop words: "to be"): the lines decide.
        return _line_contains(phrase, ctx) if phrase else false()
    indexed = _fts_text_phrase(tokens, ctx)
    return and_(indexed, _line_contains(phrase, ctx)) if exact else indexed


def needs_exact(word: Word) -> bool:
    """Quoted phrases and words with punctuation (``50%``) must appear literally."""
    return word.quoted or not all(part.isalnum() for part in normalise(word.text).split())


def sighting_condition(term: Term, ctx: Context, *, indexed: bool = False) -> ColumnElement[bool]:
    """A condition on ``sightings`` columns for one of ``in:``, ``from:``, ``after:``/``before:``.

    ``indexed`` lets SQLite use the channel, user and date indexes (for an uncorrelated
    ``IN`` list); otherwise the subquery is meant to go through ``image_id``.
    Names are compared as ``lower(…)``; on SQLite the same ASCII folding is the
    column's ``NOCASE`` collation, which is what ``ix_sightings_lower_*`` index there.
    """
    def col(column: Any) -> ColumnElement[Any]:
        return column if indexed else ctx.plain(column)

    if isinstance(term, (ChannelFilter, UserFilter)):
        return or_(*(way for way in where_or_who(term, ctx, indexed=indexed) if way is not None))
    assert isinstance(term, SeenFilter)
    bounds: list[ColumnElement[bool]] = []
    if term.start is not None:
        bounds.append(col(Sighting.seen_at) >= term.start)
    if term.end is not None:
        bounds.append(col(Sighting.seen_at) < term.end)
    return and_(true(), *bounds)


def where_or_who(term: ChannelFilter | UserFilter, ctx: Context, *, indexed: bool
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


def _name_in(column: Any, names: list[str], ctx: Context, *, indexed: bool = True) -> ColumnElement[bool]:
    """``lower(column) IN names``; on SQLite the column's ``NOCASE`` collation (the same ASCII folding)."""
    if ctx.dialect == "sqlite":
        return (column if indexed else ctx.plain(column)).collate("NOCASE").in_(names)
    return func.lower(column).in_(names)


def _seen_in(conditions: Iterable[ColumnElement[bool]], ctx: Context) -> ColumnElement[bool]:
    """Some visible, live sighting meets every condition (so ``in:#a from:@bob`` is one message).

    A correlated EXISTS: each candidate image is checked through ``ix_sightings_image_id``.
    """
    return ctx.exists(select(Sighting.id).where(Sighting.image_id == Image.id, *ctx.visible(), *conditions))


def _indexable(term: Term) -> bool:
    """A sighting term an index can find directly: a channel or user (id or name), or a time range."""
    return isinstance(term, (SeenFilter, ChannelFilter, UserFilter))


def _seen_in_list(terms: Sequence[Term], ctx: Context) -> ColumnElement[bool]:
    """The same as ``_seen_in`` as an uncorrelated ``IN`` list, which the planner can start from."""
    conditions = [sighting_condition(t, ctx, indexed=True) for t in terms]
    return Image.id.in_(select(Sighting.image_id).where(*ctx.visible(), *conditions))


def _condition(term: Term, ctx: Context, *, top: bool = False) -> ColumnElement[bool]:
    """``term`` as a condition on ``images``; ``top`` when it must hold for every result."""
    if isinstance(term, And):
        sighting_terms = [t for t in term.terms if isinstance(t, SIGHTING_TERMS)]
        others = [_condition(t, ctx) for t in term.terms if not isinstance(t, SIGHTING_TERMS)]
        if sighting_terms:
            others.append(_sightings_match(sighting_terms, ctx, top=top))
        return and_(*others)
    if isinstance(term, Or):
        return or_(*(_condition(t, ctx) for t in term.terms))
    if isinstance(term, Not):
        return not_(_condition(term.term, ctx))
    if isinstance(term, SIGHTING_TERMS):
        return _sightings_match([term], ctx, top=top)
    if isinstance(term, Word):
        return or_(_label_in(label_candidates(term), ctx), text_match(term.text, ctx, exact=needs_exact(term)))
    if isinstance(term, LabelFilter):
        return _label_in([term.name.strip().lower()[:255]], ctx)
    if isinstance(term, TextFilter):
        return text_match(term.phrase, ctx, exact=True)
    if isinstance(term, UnsafeFilter):
        return _flagged(ctx, term.category)
    if isinstance(term, (ColorFilter, QualityFilter, DupesFilter, LikeFilter)):
        return _looks(term, ctx)
    if isinstance(term, PeopleFilter):
        return people_condition(term)
    if isinstance(term, SensitiveFilter):
        if ctx.probe:
            return ctx.exists(select(SensitiveFinding.image_id).where(
                SensitiveFinding.image_id == Image.id, *sensitive_conditions(term)))
        return Image.id.in_(select(SensitiveFinding.image_id).where(*sensitive_conditions(term)))
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


def people_condition(term: PeopleFilter) -> ColumnElement[bool]:
    bounds = [Image.person_count >= term.minimum] if term.minimum else []
    if term.maximum is not None:
        bounds.append(Image.person_count <= term.maximum)
    return and_(Image.status == "done", *bounds)


def looks_select(term: ColorFilter | QualityFilter | DupesFilter | LikeFilter, ctx: Context
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


def _looks(term: ColorFilter | QualityFilter | DupesFilter | LikeFilter, ctx: Context) -> ColumnElement[bool]:
    from bot.core.visual import SMALL_BELOW_PX

    if isinstance(term, (DupesFilter, LikeFilter)):
        # The image asked about must itself be visible to the caller, or what looks like it says nothing.
        shown = select(Sighting.id).where(Sighting.image_id == term.image_id, *ctx.visible()).exists()
        return and_(one_of(Image.id, looked_up_ids(term), ctx.dialect), shown, Image.id != term.image_id)
    listed = looks_select(term, ctx)
    if listed is None:  # quality:small: the stored size decides
        return and_(Image.width < SMALL_BELOW_PX, Image.height < SMALL_BELOW_PX)
    if ctx.probe:
        return ctx.exists(listed.where(listed.selected_columns[0] == Image.id))
    return Image.id.in_(listed)


def looked_up_ids(term: DupesFilter | LikeFilter) -> list[int]:
    if isinstance(term, DupesFilter):
        return list(term.candidates or ())
    return [image_id for image_id, _ in term.scores or ()]


def sensitive_conditions(term: SensitiveFilter) -> list[ColumnElement[bool]]:
    """A finding of the category, and of the kind or a kind it starts (``aws`` → ``aws-secret-key``)."""
    conditions = [SensitiveFinding.category == term.category]
    if term.kind:  # the parser allows only [a-z0-9-], so the LIKE pattern holds no wildcard of its own
        conditions.append(or_(SensitiveFinding.kind == term.kind, SensitiveFinding.kind.like(f"{term.kind}-%")))
    return conditions


def _sightings_match(terms: Sequence[Term], ctx: Context, *, top: bool) -> ColumnElement[bool]:
    """One visible sighting meets all ``terms``: an ``IN`` list the planner can start from when the
    terms are required and indexable (``in:<#C0123>``, dates), else a correlated EXISTS."""
    if top and not ctx.probe and all(_indexable(t) for t in terms):
        return _seen_in_list(terms, ctx)
    return _seen_in([sighting_condition(t, ctx) for t in terms], ctx)


def _flagged(ctx: Context, category: str | None) -> ColumnElement[bool]:
    if not category:
        # save_analysis keeps the strongest stored moderation label's confidence on the image.
        return Image.max_moderation_confidence >= ctx.moderation_min
    word = normalise(category)
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
class LabelPart:
    """A positive label term of the query: scores the best confidence among ``terms``."""

    terms: tuple[str, ...]


@dataclass(frozen=True)
class LikePart:
    """A positive ``like:`` term: scores each of its images by cosine × 100 (0 for any other)."""

    image_id: int
    scores: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class TextPart:
    """A positive text term of the query: scores ``TEXT_MATCH_SCORE`` when it matches."""

    text: str
    exact: bool


def score_parts(query: Query) -> list[LabelPart | TextPart | LikePart]:
    """What the score adds up: the positive label, text and ``like:`` terms, in query order."""
    parts: list[LabelPart | TextPart | LikePart] = []
    for term, negated in query.leaves():
        if negated:
            continue
        if isinstance(term, LabelFilter):
            parts.append(LabelPart((term.name.strip().lower()[:255],)))
        elif isinstance(term, Word):
            parts.append(LabelPart(tuple(label_candidates(term))))
            parts.append(TextPart(term.text, needs_exact(term)))
        elif isinstance(term, TextFilter):
            parts.append(TextPart(term.phrase, True))
        elif isinstance(term, LikeFilter) and term.scores:
            parts.append(LikePart(term.image_id, term.scores))
    return parts


def _like_score(part: LikePart, ctx: Context) -> ColumnElement[float]:
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


def score_expression(parts: Sequence[LabelPart | TextPart | LikePart], ctx: Context) -> ColumnElement[float]:
    """Matched label confidence plus ``TEXT_MATCH_SCORE`` per matched text term (positive terms only)."""
    scores: list[ColumnElement[float]] = []
    for part in parts:
        if isinstance(part, LabelPart):
            scores.append(_label_score(part.terms, ctx))
        elif isinstance(part, LikePart):
            scores.append(_like_score(part, ctx))
        else:
            scores.append(case((text_match(part.text, ctx, exact=part.exact), TEXT_MATCH_SCORE), else_=0.0))
    if not scores:
        return cast(literal(0.0), Float)
    total = scores[0]
    for part_score in scores[1:]:
        total = total + part_score
    return cast(total, Float)


def query_conditions(query: Query, ctx: Context, statuses: Sequence[str], *,
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
    for term in top_level_sighting_terms(query):
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



def top_level_sighting_terms(query: Query) -> list[Term]:
    where = query.where
    if where is None:
        return []
    terms = where.terms if isinstance(where, And) else (where,)
    return [t for t in terms if isinstance(t, SIGHTING_TERMS)]


