"""The search query language: text in, a small typed ``Query`` out (or a ``QuerySyntaxError``).

    cat                      free word: a label (with its parents) or a word of the detected text
    "ice cream"              quoted phrase: the same, as one phrase
    label:dog  label:"ice cream"        a label, or anything under it (label:animal finds cats)
    text:"50% off"           text detected in the image, exactly this phrase (any case)
    unsafe  unsafe:violence  flagged by moderation (in a category)
    conf>90  conf>=90        how sure label matches must be (applies to label: and free words)
    in:#general  in:<#C0123|general>    posted in a channel (name or id)
    from:@alice  from:<@U0123>          posted by a user (name or id)
    after:2026-01-01  before:2026-02-01  on:2026-01-15   when it was posted (UTC)
    today  yesterday  last 7d  last 24h  last 2w  this week  this month  last month
    has:text  has:faces  has:labels  has:moderation
    has:secret  secret:aws   shows a secret (of a kind: aws, slack, github, private-key…)
    has:pii  pii:card        shows personal data (of a kind: email, phone, card, iban…)
    color:teal  color:teal>40    a dominant colour covering at least 10 % (or the given share)
    quality:blurry  quality:dark  quality:small
    people>3  people:0  people<=2   how many people the image shows (its Person boxes)
    dupes:42                 near-duplicates of image 42
    like:42                  ranked by how much they look like image 42
    -label:cat               leave out
    cat OR dog               either; OR binds tighter than the implicit AND
    (cat OR dog) -in:#x      parentheses group

Terms side by side must all match: ``cat OR dog in:#x`` is ``(cat OR dog) AND in:#x``.
An empty query matches everything. The parser never touches the database; ``db.search``
compiles a ``Query`` to parameterised SQL.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from bot.errors import QuerySyntaxError

__all__ = [
    "QUERY_HELP",
    "And",
    "ChannelFilter",
    "HasFilter",
    "LabelConfidence",
    "LabelFilter",
    "Not",
    "Or",
    "Query",
    "SeenFilter",
    "SensitiveFilter",
    "ColorFilter",
    "QualityFilter",
    "DupesFilter",
    "LikeFilter",
    "PeopleFilter",
    "Term",
    "TextFilter",
    "UnsafeFilter",
    "UserFilter",
    "Word",
    "parse_query",
]

EXAMPLE = 'label:dog text:"50% off" after:2026-01-01'

QUERY_HELP = """\
Search the images imgbot has seen. Terms side by side must all match.

  cat                    a label (cat, or anything under it) or a word in the image's text
  "ice cream"            a phrase, matched the same way
  label:animal           a label or its parents: label:animal finds cats and dogs
  label:"ice cream"      a label of several words
  text:"50% off"         text in the image, exactly this phrase (any case)
  unsafe                 flagged by moderation;  unsafe:violence  in one category
  conf>90                label matches at least this sure (also conf>=90)
  in:#general            posted in a channel;  from:@alice  posted by someone
  after:2026-01-01       posted on or after a day (UTC);  before:2026-02-01  before a day;  on:2026-01-15
  today  yesterday  last 24h  last 7d  last 2w  this week  this month  last month
  has:text  has:faces  has:labels  has:moderation
  has:secret             seems to show a secret;  secret:aws  secret:slack  secret:github  secret:private-key
  has:pii                shows personal data;  pii:email  pii:phone  pii:card  pii:iban
  color:teal             a colour covering at least 10 % of the image;  color:teal>40  at least 40 %
  quality:blurry         also quality:dark and quality:small (shorter than 1,024 px on its longest side)
  people>3               more than three people;  people:0  nobody;  people<=2  at most two
  dupes:42               near-duplicates of image 42 (resized, recompressed, cropped a little, captioned)
  like:42                images that look like image 42, most alike first
  -label:cat             leave out what matches
  cat OR dog             either one;  (cat OR dog) in:#pets  group with parentheses

Examples:
  label:dog text:"50% off" after:2026-01-01
  cat OR dog in:#pets -unsafe
  label:animal conf>90 last 7d
  has:text from:@alice this month
"""


# -- the AST ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """A free word or quoted phrase: matches a label term or the detected text."""

    text: str
    quoted: bool = False


@dataclass(frozen=True)
class LabelFilter:
    """``label:dog``: a label, one of its parents or aliases (compared lower-case)."""

    name: str


@dataclass(frozen=True)
class TextFilter:
    """``text:"50% off"``: this phrase appears in a detected line of text (any case)."""

    phrase: str


@dataclass(frozen=True)
class UnsafeFilter:
    """``unsafe`` (any category) or ``unsafe:violence`` (name or parent name contains the word)."""

    category: str | None = None


@dataclass(frozen=True)
class ChannelFilter:
    """``in:``: a channel id when ``is_id`` (from Slack's ``<#C0123|name>``), else an id or a name."""

    channel: str
    is_id: bool = False


@dataclass(frozen=True)
class UserFilter:
    """``from:``: a user id when ``is_id`` (from Slack's ``<@U0123>``), else an id or a name."""

    user: str
    is_id: bool = False


@dataclass(frozen=True)
class SeenFilter:
    """Posted in ``[start, end)``; either bound may be open. Both are aware UTC datetimes."""

    start: datetime | None = None
    end: datetime | None = None


HasWhat = Literal["text", "faces", "labels", "moderation"]


@dataclass(frozen=True)
class HasFilter:
    """``has:text`` / ``has:faces`` / ``has:labels`` / ``has:moderation``."""

    what: HasWhat


@dataclass(frozen=True)
class SensitiveFilter:
    """``has:secret`` / ``secret:aws`` / ``has:pii`` / ``pii:card``: a finding of the category (and kind).

    A kind matches itself and the kinds it starts: ``secret:aws`` is ``aws-access-key`` and
    ``aws-secret-key``; ``pii:card`` is the number, and a card's code or expiry when Comprehend read them."""

    category: Literal["secret", "pii"]
    kind: str | None = None


@dataclass(frozen=True)
class ColorFilter:
    """``color:teal`` (a dominant colour covering at least 10 %) or ``color:teal>40``.

    ``keys`` are the simplified and CSS colour names the word stands for (``grey`` and ``gray``)."""

    name: str
    keys: tuple[str, ...]
    min_percent: float = 10.0


QualityWhat = Literal["blurry", "dark", "small"]


@dataclass(frozen=True)
class QualityFilter:
    """``quality:blurry`` / ``quality:dark`` / ``quality:small`` (thresholds in ``bot.core.visual``)."""

    what: QualityWhat


@dataclass(frozen=True)
class PeopleFilter:
    """``people>3`` / ``people:0`` / ``people<=2``: how many people the image shows, as an inclusive range."""

    minimum: int = 0
    maximum: int | None = None


@dataclass(frozen=True)
class DupesFilter:
    """``dupes:42``: images whose perceptual hash is near image 42's (never image 42 itself).

    ``candidates`` are filled in by the core from its hash index before the query is compiled."""

    image_id: int
    candidates: tuple[int, ...] | None = None


@dataclass(frozen=True)
class LikeFilter:
    """``like:42``: images ranked by how much they look like image 42 (by embedding), 42 itself left out.

    ``scores`` ((image id, cosine), best first) are filled in by the core before the query is compiled."""

    image_id: int
    scores: tuple[tuple[int, float], ...] | None = None


@dataclass(frozen=True)
class Not:
    term: Term


@dataclass(frozen=True)
class And:
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class Or:
    terms: tuple[Term, ...]


Term = (Word | LabelFilter | TextFilter | UnsafeFilter | ChannelFilter | UserFilter | SeenFilter | HasFilter
        | SensitiveFilter | ColorFilter | QualityFilter | PeopleFilter | DupesFilter | LikeFilter | Not | And | Or)


@dataclass(frozen=True)
class LabelConfidence:
    """``conf>90`` (``inclusive=False``) or ``conf>=90``: replaces the default label threshold."""

    value: float
    inclusive: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed query. ``where`` is ``None`` for the empty query, which matches everything."""

    where: Term | None = None
    confidence: LabelConfidence | None = None

    @property
    def is_empty(self) -> bool:
        return self.where is None and self.confidence is None

    def leaves(self) -> Iterator[tuple[Term, bool]]:
        """Every leaf term with whether it sits under an odd number of negations."""
        if self.where is not None:
            yield from _leaves(self.where, False)


def _leaves(term: Term, negated: bool) -> Iterator[tuple[Term, bool]]:
    if isinstance(term, Not):
        yield from _leaves(term.term, not negated)
    elif isinstance(term, (And, Or)):
        for sub in term.terms:
            yield from _leaves(sub, negated)
    else:
        yield term, negated


# -- errors ----------------------------------------------------------------------------------

FILTERS = ("label", "text", "unsafe", "in", "from", "after", "before", "on", "has", "conf", "secret", "pii", "color",
           "colour", "quality", "people", "dupes", "like")
QUALITY_VALUES: dict[str, QualityWhat] = {"blurry": "blurry", "blur": "blurry", "dark": "dark", "small": "small"}
#: Kinds of secret (and the families that group them) ``secret:`` knows.
SECRET_KINDS = (
    "aws", "aws-access-key", "aws-secret-key", "slack", "slack-token", "slack-webhook", "github", "github-token",
    "google", "google-api-key", "stripe", "stripe-live-key", "jwt", "private-key", "password", "pin",
)
#: Common kinds of personal data for hints; ``pii:`` also takes Comprehend's other types (``pii:name``).
PII_KINDS = ("email", "phone", "card", "iban", "name", "address", "ssn")
HAS_VALUES: dict[str, HasWhat] = {
    "text": "text", "faces": "faces", "face": "faces", "labels": "labels", "label": "labels",
    "moderation": "moderation", "flags": "moderation", "flag": "moderation",
}
MAX_TERMS = 50
MAX_DEPTH = 10
MAX_LENGTH = 2000


def _error(problem: str, example: str = EXAMPLE, *, query: str = "") -> QuerySyntaxError:
    return QuerySyntaxError(f"{problem} Example: {example}", detail=f"{problem} in query {query!r}")


# -- scanning --------------------------------------------------------------------------------

OPEN_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201d": "\u201d", "\u201e": "\u201c", "\u00ab": "\u00bb"}
CLOSE_QUOTES = {'"', "\u201c", "\u201d", "\u00bb"}
_MENTION = re.compile(r"<([#@!])([^<>|\s]+)(?:\|([^<>]*))?>")
_LINK = re.compile(r"<([^<>|\s#@!][^<>|\s]*)(?:\|([^<>]*))?>")
_FILTER_NAME = re.compile(r"[A-Za-z_]+")
_CONF = re.compile(r"(?i)conf(?:idence)?(>=|=>|>|<=|=<|<|:|=)(.*)")
_PEOPLE = re.compile(r"(?i)people(>=|=>|>|<=|=<|<|:|=)(.*)")
MAX_PEOPLE = 10_000
_SPAN = re.compile(r"(\d+)\s*([A-Za-z]+)")
_SPAN_UNITS = {
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "wk": "weeks", "wks": "weeks", "week": "weeks", "weeks": "weeks",
}


@dataclass(frozen=True)
class _Tok:
    kind: Literal["(", ")", "-", "OR", "AND", "word", "phrase", "mention", "filter"]
    text: str = ""
    # filter: name and value; mention: sigil ('#', '@', '!', '') and id/label
    name: str = ""
    value: str = ""
    quoted: bool = False
    mention: tuple[str, str, str] | None = None


def _unescape_slack(text: str) -> str:
    """Slash-command text arrives with &, < and > escaped as entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _read_quoted(s: str, i: int) -> tuple[str, int, bool]:
    """``s[i]`` opens a quote: the content, the index after it, and whether the quote was closed.

    A quote left open runs to the end of the query, as web search engines do.
    """
    j = i + 1
    while j < len(s) and s[j] not in CLOSE_QUOTES:
        j += 1
    return s[i + 1:j], j + 1, j < len(s)


def _scan(s: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(_Tok(c))  # type: ignore[arg-type]
            i += 1
        elif c == "-" and i + 1 < n and not s[i + 1].isspace() and s[i + 1] not in ")-":
            tokens.append(_Tok("-"))
            i += 1
        elif c in OPEN_QUOTES:
            start = i
            content, i, closed = _read_quoted(s, i)
            if not closed and not content.strip():
                tokens.append(_Tok("word", text=s[start:].strip()))  # a lone quote mark is just a character
            else:
                tokens.append(_Tok("phrase", text=content, quoted=True))
        elif c == "<" and (m := _MENTION.match(s, i) or _LINK.match(s, i)):
            tokens.append(_mention_token(m))
            i = m.end()
        else:
            j = i
            while j < n and not s[j].isspace() and s[j] not in "()":
                if s[j] == ":" and _FILTER_NAME.fullmatch(s[i:j]):
                    break
                j += 1
            if j < n and s[j] == ":":
                name = s[i:j]
                k = j + 1
                if k < n and s[k] in OPEN_QUOTES:
                    value, k, _closed = _read_quoted(s, k)
                    tokens.append(_Tok("filter", text=s[i:k], name=name, value=value, quoted=True))
                elif k < n and s[k] == "<" and (m := _MENTION.match(s, k) or _LINK.match(s, k)):
                    mention = _mention_token(m).mention
                    tokens.append(_Tok("filter", text=s[i:m.end()], name=name, mention=mention))
                    k = m.end()
                else:
                    while k < n and not s[k].isspace() and s[k] not in "()":
                        k += 1
                    tokens.append(_Tok("filter", text=s[i:k], name=name, value=s[j + 1:k]))
                i = k
                continue
            word = s[i:j]
            if word == "OR":
                tokens.append(_Tok("OR", text=word))
            elif word == "AND":
                tokens.append(_Tok("AND", text=word))
            else:
                tokens.append(_Tok("word", text=word))
            i = j
    return tokens


def _mention_token(m: re.Match[str]) -> _Tok:
    if m.re is _MENTION:
        sigil, ident, label = m.group(1), m.group(2), m.group(3) or ""
    else:
        sigil, ident, label = "", m.group(1), m.group(2) or ""
    return _Tok("mention", text=m.group(0), mention=(sigil, ident, label))


# -- parsing ---------------------------------------------------------------------------------


class _Marker:
    """A ``conf>`` term: it sets the query's label threshold rather than filtering by itself."""

    def __init__(self, confidence: LabelConfidence, text: str) -> None:
        self.confidence = confidence
        self.text = text


_Node = Term | _Marker


class _Parser:
    def __init__(self, tokens: list[_Tok], query: str, now: datetime) -> None:
        self.tokens = tokens
        self.pos = 0
        self.query = query
        self.now = now
        self.confidence: LabelConfidence | None = None
        self.depth = 0
        self.count = 0
        self.markers = 0

    def error(self, problem: str, example: str = EXAMPLE) -> QuerySyntaxError:
        return _error(problem, example, query=self.query)

    def peek(self, offset: int = 0) -> _Tok | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    # query := sequence EOF
    def parse(self) -> Query:
        terms = self.sequence()
        tok = self.peek()
        if tok is not None:  # only a stray ")" can stop a top-level sequence
            raise self.error('There is a ")" without a matching "(".', "(cat OR dog) in:#pets")
        return Query(where=_all(terms), confidence=self.confidence)

    # sequence := (AND? either)*   -- juxtaposition is AND
    def sequence(self) -> list[Term]:
        terms: list[Term] = []
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind == "AND":
                self.take()
                nxt = self.peek()
                if not terms or nxt is None or nxt.kind in (")", "AND", "OR"):
                    raise self.error("AND needs a search term on both sides.", "cat AND dog")
                continue
            node = self.either()
            if isinstance(node, _Marker):
                self.markers += 1
                if self.confidence is not None and self.confidence != node.confidence:
                    raise self.error("Give conf> only once per search.", "label:dog conf>90")
                self.confidence = node.confidence
            else:
                terms.append(node)
        return terms

    # either := unary (OR unary)*
    def either(self) -> _Node:
        first = self.unary()
        options = [first]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR", "AND"):
                raise self.error("OR needs a search term on both sides.", "cat OR dog")
            options.append(self.unary())
        if len(options) == 1:
            return first
        if any(isinstance(o, _Marker) for o in options):
            raise self.error("conf> applies to the whole search; it cannot be one side of OR.",
                             "(cat OR dog) conf>90")
        flat: list[Term] = []
        for option in options:
            assert not isinstance(option, _Marker)
            flat.extend(option.terms if isinstance(option, Or) else (option,))
        return Or(tuple(flat))

    # unary := "-" unary | "(" sequence ")" | term
    def unary(self) -> _Node:
        tok = self.peek()
        if tok is None:  # pragma: no cover - callers check first
            raise self.error("The search ends too early.")
        if tok.kind == "OR":
            raise self.error("OR needs a search term on both sides.", "cat OR dog")
        if tok.kind == "-":
            self.take()
            if self.peek() is None or self.peek().kind in (")", "OR", "AND"):  # type: ignore[union-attr]
                raise self.error('"-" must be followed by the term to leave out, with no space.', "cat -label:dog")
            inner = self.unary()
            if isinstance(inner, _Marker):
                raise self.error("conf> cannot be negated; use a lower number instead.", "label:dog conf>90")
            return inner.term if isinstance(inner, Not) else Not(inner)
        if tok.kind == "(":
            self.take()
            self.depth += 1
            markers_before = self.markers
            if self.depth > MAX_DEPTH:
                raise self.error(f"Too many nested parentheses (at most {MAX_DEPTH}).", "(cat OR dog) in:#pets")
            terms = self.sequence()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise self.error('A "(" is not closed: add the ")".', "(cat OR dog) in:#pets")
            self.take()
            self.depth -= 1
            if not terms:
                if self.markers > markers_before and self.confidence is not None:
                    return _Marker(self.confidence, "conf")
                raise self.error("There is nothing between the parentheses.", "(cat OR dog) in:#pets")
            return _all(terms)  # type: ignore[return-value]
        if tok.kind == ")":
            raise self.error('There is a ")" without a matching "(".', "(cat OR dog) in:#pets")
        self.take()
        self.count += 1
        if self.count > MAX_TERMS:
            raise self.error(f"That search has too many terms (at most {MAX_TERMS}).")
        return self.term(tok)

    def term(self, tok: _Tok) -> _Node:
        if tok.kind == "phrase":
            text = tok.text.strip()
            if not text:
                raise self.error("The quotes are empty: put the words to find between them.", '"ice cream"')
            return Word(text, quoted=True)
        if tok.kind == "mention":
            return self.mention(tok, None)
        if tok.kind == "filter":
            return self.filter(tok)
        return self.word(tok)

    def word(self, tok: _Tok) -> _Node:
        text = tok.text
        lowered = text.lower()
        if text == "-":
            raise self.error('"-" must be followed by the term to leave out, with no space.', "cat -label:dog")
        if (m := _CONF.fullmatch(text)) is not None:
            return self.conf(m.group(1), m.group(2), text)
        if (m := _PEOPLE.fullmatch(text)) is not None:
            return self.people(m.group(1), m.group(2), text)
        if lowered == "unsafe":
            return UnsafeFilter()
        if lowered in ("today", "yesterday"):
            start = datetime.combine(self.now.date(), time(), tzinfo=UTC)
            if lowered == "yesterday":
                start -= timedelta(days=1)
            return SeenFilter(start, start + timedelta(days=1))
        nxt = self.peek()
        if lowered in ("last", "this", "past") and nxt is not None and nxt.kind == "word":
            after = self.peek(1)
            if (lowered != "this" and nxt.text.isdigit() and after is not None and after.kind == "word"
                    and after.text.lower() in _SPAN_UNITS and len(after.text) > 1):
                period = self.period(lowered, nxt.text + after.text)  # "last 2 weeks"
                self.take()
                self.take()
                return period  # type: ignore[return-value]
            period = self.period(lowered, nxt.text)
            if period is not None:
                self.take()
                return period
        return Word(text)

    def period(self, which: str, what: str) -> SeenFilter | None:
        """``last 7d``, ``this month``, ``last week``…; ``None`` if ``what`` is not a period."""
        what_l = what.lower()
        today = datetime.combine(self.now.date(), time(), tzinfo=UTC)
        week_start = today - timedelta(days=today.weekday())
        month_start = today.replace(day=1)
        year_start = today.replace(month=1, day=1)
        if which in ("last", "past") and (m := _SPAN.fullmatch(what)) is not None:
            amount, unit = int(m.group(1)), m.group(2).lower()
            if unit not in _SPAN_UNITS:
                raise self.error(f'"{what}" is not a time span: use h (hours), d (days) or w (weeks).', "last 7d")
            if amount <= 0 or amount > 100_000:
                raise self.error(f'"{what}" is not a usable time span.', "last 7d")
            return SeenFilter(self.now - timedelta(**{_SPAN_UNITS[unit]: amount}), None)
        if which == "past":
            return None
        if which == "this":
            starts = {"week": (week_start, _add_weeks(week_start, 1)),
                      "month": (month_start, _add_months(month_start, 1)),
                      "year": (year_start, year_start.replace(year=year_start.year + 1))}
        else:
            starts = {"week": (_add_weeks(week_start, -1), week_start),
                      "month": (_add_months(month_start, -1), month_start),
                      "year": (year_start.replace(year=year_start.year - 1), year_start)}
        if what_l in starts:
            start, end = starts[what_l]
            return SeenFilter(start, end)
        return None

    def conf(self, op: str, raw: str, text: str) -> _Marker:
        if op in ("<", "<=", "=<"):
            raise self.error("conf can only ask for at least a confidence: use conf> or conf>=.", "label:dog conf>90")
        value = raw.strip().rstrip("%")
        try:
            number = float(value)
        except ValueError:
            raise self.error(f'"{text}" needs a number from 0 to 100 after {op}.', "label:dog conf>90") from None
        if not 0 <= number <= 100 or number != number:
            raise self.error(f'"{text}" needs a number from 0 to 100.', "label:dog conf>90")
        return _Marker(LabelConfidence(number, inclusive=op != ">"), text)

    def people(self, op: str, raw: str, text: str) -> PeopleFilter:
        value = raw.strip()
        if not value.isdigit() or int(value) > MAX_PEOPLE:
            raise self.error(f'"{text}" needs a whole number of people after {op}.', "people>3")
        count = int(value)
        if op == ">":
            return PeopleFilter(count + 1)
        if op in (">=", "=>"):
            return PeopleFilter(count)
        if op == "<":
            if count == 0:
                raise self.error(f'"{text}" can never match: use people:0 for images without people.', "people:0")
            return PeopleFilter(0, count - 1)
        if op in ("<=", "=<"):
            return PeopleFilter(0, count)
        return PeopleFilter(count, count)

    def mention(self, tok: _Tok, wanted: str | None) -> Term:
        assert tok.mention is not None
        sigil, ident, label = tok.mention
        if sigil == "#" and wanted in (None, "in"):
            return ChannelFilter(ident, is_id=True)
        if sigil == "@" and wanted in (None, "from"):
            return UserFilter(ident, is_id=True)
        if wanted == "in":
            raise self.error("in: needs a channel.", "cat in:#general")
        if wanted == "from":
            raise self.error("from: needs a person.", "cat from:@alice")
        return Word(label or ident, quoted=True)

    def filter(self, tok: _Tok) -> _Node:
        name = tok.name.lower()
        value = tok.value.strip()
        if name in ("conf", "confidence"):
            return self.conf(":", value, tok.text)
        if name == "people" and value:
            return self.people(":", value, tok.text)
        if name not in FILTERS:
            close = difflib.get_close_matches(name, FILTERS, n=1, cutoff=0.6)
            hint = f' Did you mean "{close[0]}:"?' if close else (
                " Filters are label:, text:, unsafe:, in:, from:, after:, before:, on:, has:, secret:, pii:, "
                "color:, quality:, people:, dupes:, like: and conf>.")
            raise self.error(
                f'Unknown filter "{tok.name}:".{hint} To search for "{tok.text}" as words, put it in quotes.')
        if tok.mention is not None:
            if name in ("in", "from"):
                return self.mention(tok, name)
            value = tok.mention[2] or tok.mention[1]
        if not value:
            raise self.error(*_EMPTY[name])
        if name == "label":
            return LabelFilter(value)
        if name == "text":
            return TextFilter(value)
        if name == "unsafe":
            return UnsafeFilter(value)
        if name == "in":
            channel = value.lstrip("#").strip()
            if not channel:
                raise self.error(*_EMPTY[name])
            return ChannelFilter(channel)
        if name == "from":
            user = value.lstrip("@").strip()
            if not user:
                raise self.error(*_EMPTY[name])
            return UserFilter(user)
        if name == "has":
            if value.lower() in ("secret", "secrets", "pii"):
                return SensitiveFilter("pii" if value.lower() == "pii" else "secret")
            what = HAS_VALUES.get(value.lower())
            if what is None:
                raise self.error(
                    f'has: can be text, faces, labels, moderation, secret or pii, not "{value}".', "has:text")
            return HasFilter(what)
        if name in ("secret", "pii"):
            return self.sensitive(name, value)
        if name in ("color", "colour"):
            return self.color(value)
        if name == "quality":
            quality = QUALITY_VALUES.get(value.lower())
            if quality is None:
                raise self.error(f'quality: can be blurry, dark or small, not "{value}".', "quality:blurry")
            return QualityFilter(quality)
        if name in ("dupes", "like"):
            if not re.fullmatch(r"#?\d{1,15}", value):
                raise self.error(f'{name}: needs an image number (a result\'s #id), not "{value}".', f"{name}:42")
            image_id = int(value.lstrip("#"))
            return DupesFilter(image_id) if name == "dupes" else LikeFilter(image_id)
        # after / before / on
        start, is_day = self.when(name, value)
        if name == "after":
            return SeenFilter(start, None)
        if name == "before":
            return SeenFilter(None, start)
        day = datetime.combine(start.date(), time(), tzinfo=UTC) if not is_day else start
        return SeenFilter(day, day + timedelta(days=1))

    def color(self, value: str) -> ColorFilter:
        from bot.core.visual import SIMPLIFIED_COLORS, color_matches

        share = re.fullmatch(r"(.+?)\s*>=?\s*(\d+(?:\.\d+)?)\s*%?", value)
        name = (share.group(1) if share else value).strip().strip('"')
        minimum = float(share.group(2)) if share else 10.0
        after = self.peek()
        if share is None and after is not None and after.kind == "word" and (
                quoted_share := re.fullmatch(r">=?(\d+(?:\.\d+)?)%?", after.text)):
            self.take()  # color:"light blue">40: the share came as a word of its own
            minimum = float(quoted_share.group(1))
        if not 0 <= minimum <= 100:
            raise self.error(f'color: takes a share from 0 to 100, not "{value}".', "color:teal>40")
        keys = color_matches(name)
        if not keys:
            close = difflib.get_close_matches(name.lower(), SIMPLIFIED_COLORS, n=1, cutoff=0.6)
            hint = f' Did you mean "color:{close[0]}"?' if close else (
                f" Colours are {', '.join(SIMPLIFIED_COLORS)} or a CSS colour name.")
            raise self.error(f'color: does not know "{name}".{hint}', "color:teal")
        return ColorFilter(name.lower(), tuple(sorted(keys)), minimum)

    def sensitive(self, name: str, value: str) -> SensitiveFilter:
        kind = re.sub(r"[\s_]+", "-", value.strip().lower())
        known = SECRET_KINDS if name == "secret" else PII_KINDS
        if name == "secret" and kind not in SECRET_KINDS or not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", kind):
            close = difflib.get_close_matches(kind, known, n=1, cutoff=0.6)
            hint = f' Did you mean "{name}:{close[0]}"?' if close else f" Kinds include {', '.join(known[:8])}."
            raise self.error(f'{name}: does not know "{value}".{hint}', f"{name}:{known[0]}")
        return SensitiveFilter("secret" if name == "secret" else "pii", kind)

    def when(self, name: str, value: str) -> tuple[datetime, bool]:
        """A day (midnight UTC) or an instant; naive times are UTC."""
        problem = (f'{name}: needs a date like 2026-01-31 (or a time like 2026-01-31T09:30), not "{value}".')
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                day = date.fromisoformat(value)
            except ValueError:
                raise self.error(problem, f"{name}:2026-01-01") from None
            return datetime.combine(day, time(), tzinfo=UTC), True
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ][0-9:.,]+(Z|[+-]\d{2}:?\d{2})?", value, re.IGNORECASE):
            raise self.error(problem, f"{name}:2026-01-01")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise self.error(problem, f"{name}:2026-01-01") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC), False


_EMPTY: dict[str, tuple[str, str]] = {
    "label": ("label: needs a label name after it.", 'label:dog or label:"ice cream"'),
    "text": ("text: needs the text to find after it.", 'text:"50% off"'),
    "unsafe": ("unsafe: needs a category after it, or use unsafe on its own.", "unsafe:violence"),
    "in": ("in: needs a channel after it.", "cat in:#general"),
    "from": ("from: needs a person after it.", "cat from:@alice"),
    "after": ("after: needs a date after it.", "after:2026-01-01"),
    "before": ("before: needs a date after it.", "before:2026-02-01"),
    "on": ("on: needs a date after it.", "on:2026-01-15"),
    "has": ("has: needs text, faces, labels, moderation, secret or pii after it.", "has:text"),
    "secret": ("secret: needs a kind after it, or use has:secret.", "secret:aws"),
    "pii": ("pii: needs a kind after it, or use has:pii.", "pii:email"),
    "color": ("color: needs a colour after it.", "color:teal"),
    "colour": ("colour: needs a colour after it.", "color:teal"),
    "quality": ("quality: needs blurry, dark or small after it.", "quality:blurry"),
    "people": ("people: needs a number after it.", "people:0"),
    "dupes": ("dupes: needs an image number after it.", "dupes:42"),
    "like": ("like: needs an image number after it.", "like:42"),
}


def _all(terms: list[Term]) -> Term | None:
    if not terms:
        return None
    if len(terms) == 1:
        return terms[0]
    flat: list[Term] = []
    for term in terms:
        flat.extend(term.terms if isinstance(term, And) else (term,))
    return And(tuple(flat))


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1)


def _add_weeks(moment: datetime, weeks: int) -> datetime:
    return moment + timedelta(weeks=weeks)


def parse_query(text: str, *, now: datetime | None = None) -> Query:
    """Parse the query language; raise ``QuerySyntaxError`` with an example when it is malformed.

    ``now`` (default: the current time) anchors ``today``, ``last 7d``, ``this month``…;
    a naive ``now`` is taken as UTC.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    else:
        now = now.astimezone(UTC)
    if len(text) > MAX_LENGTH:
        raise _error(f"That search is too long (at most {MAX_LENGTH} characters).", query=text[:100])
    tokens = _scan(_unescape_slack(text))
    return _Parser(tokens, text, now).parse()
