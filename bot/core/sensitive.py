"""Secrets and personal data in the text read from an image, found and masked.

Screenshots show API keys, tokens, card numbers and email addresses. The text reader
gives lines and words, and OCR splits and misreads them: a key comes back as
``AKIA IOSF ODNN 7EXA MPLE`` or broken over two lines. So the detectors look at *windows of
consecutive tokens* across the lines in reading order, joined without spaces: a window
that is exactly a key is found however the reader cut it, while a key-like run inside
a longer word (``xAKIA…``) is not, since a window starts and ends at token edges.

The secret patterns come from detect-secrets (AWS access key ids, Slack tokens and
webhooks, GitHub tokens, Stripe live keys, private-key blocks, JSON Web Tokens), with
what it lacks added here: AWS secret access keys next to their name, Google API keys,
and ``password: …`` pairs. Personal data: email addresses, phone numbers (parsed by
``phonenumbers``), payment card numbers that pass the Luhn check, IBANs that pass their
mod-97 check. A finding keeps its kind, a masked form (never the value) and where it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector

from bot.core.types import MASKED_PII, Category, Finding, Span, TextDetection

#: The most tokens one window joins: a 40-character key read as 4-character chunks is 10.
MAX_WINDOW = 12
_EDGE_PUNCTUATION = "\"'`,;()[]{}<>"
_ASSIGNMENT = re.compile(r"=|:(?!//)")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class _Token:
    text: str
    line_id: int
    start: int
    end: int


# -- secrets ------------------------------------------------------------------------------------------


def _whole(pattern: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern.pattern})", pattern.flags)


#: (kind, pattern a whole window must match). detect-secrets' own patterns first.
_TOKEN_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws-access-key", _whole(AWSKeyDetector.denylist[0])),
    ("slack-token", _whole(SlackDetector.denylist[0])),
    ("slack-webhook", _whole(SlackDetector.denylist[1])),
    ("github-token", _whole(GitHubTokenDetector.denylist[0])),
    ("stripe-live-key", _whole(StripeDetector.denylist[0])),
    # detect-secrets' JWT pattern also takes a bare "eyJ…" header; a token needs all three parts.
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_=-]{8,}\.eyJ[A-Za-z0-9_=-]{8,}\.[A-Za-z0-9_.+/=-]{8,}")),
    ("google-api-key", re.compile(r"AIza[0-9A-Za-z_-]{35}")),
)
#: What each token secret starts with (lower case): a window is tried only where one begins, and a
#: scan of text with none of them (most text) tries no window at all.
_TOKEN_PREFIXES: dict[str, tuple[str, ...]] = {
    "aws-access-key": ("a3t", "abia", "acca", "akia", "asia"),
    "slack-token": ("xox",),
    "slack-webhook": ("https://hooks.slack.com",),
    "github-token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "stripe-live-key": ("rk_live_", "sk_live_"),
    "jwt": ("eyj",),
    "google-api-key": ("aiza",),
}
_PRIVATE_KEY = re.compile("|".join(re.escape(p.pattern) for p in PrivateKeyDetector.denylist))
#: ``aws_secret_access_key = …`` (any separator): 40 characters of base64 after the name.
_AWS_SECRET = re.compile(r"aws.{0,20}?secret.{0,20}?[:=]\s*[\"']?([0-9A-Za-z/+]{40})(?![0-9A-Za-z/+])",
                         re.IGNORECASE)
_BARE_AWS_SECRET = re.compile(r"[0-9A-Za-z/+]{40}")
_PASSWORD = re.compile(r"\b(?:password|passwd|pwd|passphrase|pass)\s*[:=]\s*(\S{4,})", re.IGNORECASE)


# -- personal data ------------------------------------------------------------------------------------

_PHONE_LIKE = re.compile(r"(?:\d[\s().+/-]{0,3}){7}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2 == 1:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# -- masks --------------------------------------------------------------------------------------------


def mask(kind: str, value: str) -> str:
    """A form of ``value`` that names it without giving it away."""
    compact = value.replace(" ", "")
    if kind == "card":
        return f"•••• {re.sub(r'[^0-9]', '', compact)[-4:]}"
    if kind == "iban":
        return f"{compact[:2]}•• •••• {compact[-4:]}"
    if kind == "email":
        local, _, domain = compact.partition("@")
        return f"{local[:1]}•••@{domain}"
    if kind == "phone":
        digits = re.sub(r"[^0-9]", "", compact)
        return f"•••• {digits[-2:]}"
    if kind in {"password", "private-key"} or len(compact) < 12:
        return "••••"
    return f"{compact[:4]}…{compact[-4:]}"


# -- finding ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scan:
    """What a scan found. ``values`` are the compact values to scrub from stored copies: memory only."""

    findings: tuple[Finding, ...]
    values: frozenset[str]


def _tokens(lines: Sequence[TextDetection]) -> list[_Token]:
    tokens = []
    for line in lines:
        for word in _WORD.finditer(line.text):
            if "=" in (text := word.group()) or ":" in text:
                cuts = [word.start(), *(m for a in _ASSIGNMENT.finditer(text) for m in
                                        (word.start() + a.start(), word.start() + a.end())), word.end()]
            else:
                cuts = [word.start(), word.end()]
            for begin, end in zip(cuts[::2], cuts[1::2], strict=True):  # NAME=value holds two tokens
                part = line.text[begin:end]
                cleaned = part.lstrip(_EDGE_PUNCTUATION)
                begin += len(part) - len(cleaned)
                cleaned = cleaned.rstrip(_EDGE_PUNCTUATION)
                if cleaned:
                    tokens.append(_Token(cleaned, line.id, begin, begin + len(cleaned)))
    return tokens


def _token_spans(tokens: Sequence[_Token]) -> tuple[Span, ...]:
    """One span per line the tokens cover, from the first token's start to the last one's end."""
    spans: list[Span] = []
    for token in tokens:
        if spans and spans[-1][0] == token.line_id:
            spans[-1] = (token.line_id, spans[-1][1], token.end)
        else:
            spans.append((token.line_id, token.start, token.end))
    return tuple(spans)


#: The exact shapes of tokens whose loose patterns run on (a Slack bot or user token has a fixed tail).
_EXACT_SHAPES: dict[str, re.Pattern[str]] = {
    "slack-token": re.compile(r"xox[bp]-\d{8,14}-\d{8,14}-[A-Za-z0-9]{24}|xoxp-\d+-\d+-\d+-[a-f0-9]{32}"),
}
_RANDOM_LOOKING = re.compile(r"[0-9_./+=-]|[a-z].*[A-Z]|[A-Z].*[a-z]")
#: A piece this long of a token's characters also continues it, however plain it looks: words that
#: long are rare next to a key, and leaving a tail in clear is the worse mistake.
_LONG_PIECE = re.compile(r"[A-Za-z0-9_-]{10,}")


def _continues_token(text: str) -> bool:
    return bool(_RANDOM_LOOKING.search(text) or _LONG_PIECE.fullmatch(text))


def _token_secret_starts(tokens: Sequence[_Token]) -> Iterator[tuple[int, list[tuple[str, re.Pattern[str]]]]]:
    """Each token where a token secret may start, with the kinds that may: those whose prefix starts there."""
    compact = "".join(token.text for token in tokens).lower()
    kinds = [(kind, pattern, _TOKEN_PREFIXES[kind]) for kind, pattern in _TOKEN_SECRETS
             if any(prefix in compact for prefix in _TOKEN_PREFIXES[kind])]
    if not kinds:
        return
    offset = 0
    for start, token in enumerate(tokens):
        here = [(kind, pattern) for kind, pattern, prefixes in kinds
                if any(compact.startswith(prefix, offset) for prefix in prefixes)]
        if here:
            yield start, here
        offset += len(token.text)


def _token_secrets_at(tokens: Sequence[_Token], start: int, kinds: Sequence[tuple[str, re.Pattern[str]]]
                      ) -> Iterator[tuple[str, Sequence[_Token]]]:
    """Each of ``kinds`` of token secret that starts at ``tokens[start]``, with the tokens it covers.

    Loose patterns (a Slack token, a JWT) keep matching when a window runs on into the next
    words, so a window that matches an exact known shape wins; otherwise the shortest match is
    taken and extended only by pieces that look random or are long runs of a token's characters (a
    key's tail cut off by the reader), never by an ordinary word such as the next line's ``card``."""
    end_limit = min(len(tokens), start + MAX_WINDOW)
    for kind, pattern in kinds:
        exact = _EXACT_SHAPES.get(kind)
        joined, found, extending = "", None, True
        for end in range(start, end_limit):
            joined += tokens[end].text
            if exact is not None and exact.fullmatch(joined):
                found = end
                break
            if not extending:
                if exact is None:
                    break
                continue
            if pattern.fullmatch(joined):
                if found is None or _continues_token(tokens[end].text):
                    found = end
                else:
                    extending = False
            elif found is not None:
                extending = False
        if found is not None:
            yield kind, tokens[start:found + 1]


def _looks_like_aws_secret(joined: str, tokens: Sequence[_Token], start: int, key_id_shown: bool) -> bool:
    """40 base64 characters are an AWS secret key next to a key id, or after the word "secret" (the console's
    "Secret access key", a credentials file's name) when they look random."""
    if key_id_shown and any(c in joined for c in "/+"):
        return True
    named = any("secret" in token.text.lower() for token in tokens[max(0, start - 4):start])
    return named and bool(re.search(r"[0-9/+]", joined)) and joined.lower() != joined and joined.upper() != joined


@dataclass(frozen=True)
class _Text:
    """One line, or two consecutive lines joined by a space, with where each line starts in it."""

    text: str
    parts: tuple[tuple[int, int, int], ...]  # (line id, offset in text, length)

    def spans(self, start: int, end: int) -> tuple[Span, ...]:
        found = []
        for line_id, offset, length in self.parts:
            first, last = max(start, offset), min(end, offset + length)
            if first < last:
                found.append((line_id, first - offset, last - offset))
        return tuple(found)


def _texts(lines: Sequence[TextDetection]) -> list[_Text]:
    texts = [_Text(line.text, ((line.id, 0, len(line.text)),)) for line in lines]
    texts += [_Text(f"{a.text} {b.text}", ((a.id, 0, len(a.text)), (b.id, len(a.text) + 1, len(b.text))))
              for a, b in zip(lines, lines[1:], strict=False)]
    return texts


def _private_key_spans(lines: Sequence[TextDetection], index: int, start: int) -> tuple[Span, ...]:
    """The marker line from the marker on, and the key's body up to its END line (or where base64 stops)."""
    spans: list[Span] = [(lines[index].id, start, len(lines[index].text))]
    for line in lines[index + 1:]:
        if "-----END" in line.text:
            spans.append((line.id, 0, len(line.text)))
            break
        if not _KEY_BODY.fullmatch(line.text.strip()):
            break
        spans.append((line.id, 0, len(line.text)))
    return tuple(spans)


_KEY_BODY = re.compile(r"[A-Za-z0-9+/=\s]{16,}")


def scan(detections: Sequence[TextDetection]) -> Scan:
    """Every secret and piece of personal data in the LINEs of ``detections``, each once, with every place it is."""
    lines = [d for d in detections if d.kind == "LINE"]
    found: dict[tuple[str, str], tuple[Category, str, set[Span]]] = {}

    def add(category: Category, kind: str, value: str, spans: tuple[Span, ...]) -> None:
        key = (kind, re.sub(r"\s", "", value))
        entry = found.setdefault(key, (category, mask(kind, value), set()))
        entry[2].update(spans)

    tokens = _tokens(lines)
    for start, kinds in _token_secret_starts(tokens):
        for kind, window in _token_secrets_at(tokens, start, kinds):
            add("secret", kind, "".join(t.text for t in window), _token_spans(window))
    for index, line in enumerate(lines):
        if marker := _PRIVATE_KEY.search(line.text):
            add("secret", "private-key", "private key", _private_key_spans(lines, index, marker.start()))
    for text in _texts(lines):
        for match in _AWS_SECRET.finditer(text.text):
            add("secret", "aws-secret-key", match.group(1), text.spans(*match.span(1)))
        for match in _PASSWORD.finditer(text.text):
            add("secret", "password", match.group(1), text.spans(*match.span(1)))
        for match in _EMAIL.finditer(text.text):
            add("pii", "email", match.group(0), text.spans(*match.span()))
        for match in _CARD.finditer(text.text):
            digits = re.sub(r"[^0-9]", "", match.group(0))
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                add("pii", "card", digits, text.spans(*match.span()))
        for match in _IBAN.finditer(text.text):
            if iban_ok(match.group(0)):
                add("pii", "iban", match.group(0), text.spans(*match.span()))
        if not _PHONE_LIKE.search(text.text):
            continue  # the parser is the costly part of a scan: only where 7 digits run together
        for number in phonenumbers.PhoneNumberMatcher(text.text, "US"):
            digits = re.sub(r"[^0-9]", "", number.raw_string)
            if not any(kind == "card" and digits in value for kind, value in found):
                add("pii", "phone", number.raw_string, text.spans(number.start, number.end))
    key_id_shown = any(kind == "aws-access-key" for kind, _ in found)
    # A secret key read in pieces, or with its name on another line: only beside a key id or the word.
    maybe_secret_key = key_id_shown or any("secret" in token.text.lower() for token in tokens)
    for start in range(len(tokens) if maybe_secret_key else 0):
        joined = ""
        for end in range(start, min(len(tokens), start + MAX_WINDOW)):
            joined += tokens[end].text
            if len(joined) >= 40:
                if len(joined) == 40 and _BARE_AWS_SECRET.fullmatch(joined) and _looks_like_aws_secret(
                        joined, tokens, start, key_id_shown):
                    add("secret", "aws-secret-key", joined, _token_spans(tokens[start:end + 1]))
                break
    findings = tuple(
        Finding(category, kind, masked, tuple(sorted(spans)))
        for (kind, _), (category, masked, spans) in found.items()
    )
    values = frozenset(value for (kind, value), (category, _, _) in found.items()
                       if (category == "secret" or kind in MASKED_PII) and kind != "private-key")
    return Scan(findings, values)


def find_sensitive(detections: Sequence[TextDetection]) -> list[Finding]:
    """Every secret and piece of personal data in the LINEs of ``detections``, each once."""
    return list(scan(detections).findings)
