"""Which OCR lines are plausible text, so that a photo without legible text gets none.

PP-OCR's detector takes any crisp, high-contrast shape for text (a cup seen from above,
the rim of a lens, a mirrored name tag) and its recogniser then names the glyphs nearest
to it with a score that looks confident: ``8`` for a coffee cup at 0.82-0.99, ``0000`` on
a camera at 0.85, ``HOE`` for a mirrored ``HOLGER`` at 0.88. Real text comes back
differently: every line of 360 rendered banners scored 0.95 or more, with 8+ letters, and
text placed on photos was read correctly almost only at 0.9 or more, in lines whose
characters fill the box the detector drew. So the score alone cannot decide, but the
score together with what was read, and where, can.

The rule: every line starts from RapidOCR's own threshold (``BASE_SCORE``, 0.5) and each
doubt about it raises the score it needs. A line is kept when its score reaches that.
Doubts add up, so two strong ones (a lone glyph, which is also short) can never be met,
while a line with none, as every line of an ordinary banner is, is judged as before.

===========  ===================================================================  =====
doubt        when                                                                 need
===========  ===================================================================  =====
``few``      fewer than 3 letters/digits (a CJK glyph counts 2; a run of 3+        +0.45
             identical characters counts once, so ``0000`` is one)
``lone``     only digits, or one glyph repeated, with no confident text nearby     +0.45
``alone``    any other line of 3+ characters with no confident text nearby         +0.30
``mixed``    a word switches twice or more between letters and digits (``R3990H``,  +0.45
             ``OM0O``: the 0/O, 3/E, 1/I misreads of mirrored or blurred text;
             ``SAVE20`` switches once, and a CJK glyph ends a word, as in ``3月15日``)
``sparse``   the box is over 1.3 line-thicknesses long per character read: part     +0.45
             of what the detector saw was not read (banners: at most 0.85)
``foreign``  its letters are in another script than most of the image's letters   +0.40
``weak``     one of its characters scored under 0.35 (clean banners: 0.5 and up)  +0.15
``mirrored`` the recogniser reads the crop flipped left-right at 0.9 or more, at    +0.45
             least MIRROR_MARGIN better, and not as the same text backwards: a
             name tag seen in a mirror (``HOFCEB`` at 0.92 flipped is ``HOLGER`` at
             1.0), not a word that looks alike both ways (``EXIT`` at 0.84 flipped
             is ``TIX3`` at 0.999). Only kept lines that could gain that margin are
             read again (``could_be_mirrored``): banner lines almost never.
===========  ===================================================================  =====

"Confident text nearby" is a line of 3+ characters with a letter, read at 0.9 or more
and passing its own doubts, at most two line-thicknesses away and at most five times as
thick or thin (a cup-sized ``8`` is not vouched for by a menu line). So a short line
needs 0.95 ("very high"); a line by itself on a photo needs 0.8, the bar the "Text"
label already uses; ``50%`` beside ``OFF`` needs 0.95; and a lone ``8``, ``0000`` or
``寺`` needs 1.4, which no score reaches.

Left out, with reasons: a vowel/consonant check (marketing text is full of ``NYC``,
``BBQ``, ``www``, ``SAVE20``); a minimum height relative to the image (it never decided
a case the doubts above did not, and a name tag on a 12 MP photo is small).

Tested in ``tests/test_local_text_filter.py``; the offline engine's README describes it.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import groupby

Point = tuple[float, float]

#: What a line with no doubt needs (RapidOCR's default ``text_score``), so banners are unaffected.
BASE_SCORE = 0.5
#: Letters/digits a line needs not to count as short.
FEW_CHARACTERS = 3
#: Identical characters in a row that count as one (textures read as ``0000``, ``IIII``).
REPEAT_RUN = 3
#: A line's box may be at most this many thicknesses long per character read (banners: 0.27-0.85).
SPARSE_CHARACTER_ASPECT = 1.3
#: A character scored below this is a guess (on clean banners the lowest is about 0.5, after a space).
WEAK_CHARACTER = 0.35
#: A line of a few letters read at least this well (and passing its own doubts) vouches for its neighbours.
CONFIDENT = 0.9
#: Another line "sits with" this one when the gap between them is at most this many line thicknesses...
NEAR_GAP = 2.0
#: ...and of a similar size: neither over this many times thicker (a big price and its caption pass).
NEAR_THICKNESS_RATIO = 5.0

#: A line whose crop reads this much better flipped left-right (and confidently) is mirrored text...
MIRROR_MARGIN = 0.03
#: ...unless the flipped reading is this like the line backwards (``EXIT``/``TIX3``: 0.75; ``BOB``: 1).
SAME_BACKWARDS = 0.6

#: How much each doubt raises the score a line needs.
DOUBTS = {
    "few": 0.45,
    "lone": 0.45,
    "alone": 0.30,
    "mixed": 0.45,
    "sparse": 0.45,
    "foreign": 0.40,
    "weak": 0.15,
    "mirrored": 0.45,
}

#: Unicode name prefixes that are one script for this purpose (Japanese mixes kanji and kana).
_SCRIPT_GROUPS = {"CJK": "CJK", "HIRAGANA": "CJK", "KATAKANA": "CJK", "IDEOGRAPHIC": "CJK", "HANGUL": "CJK"}


@dataclass(frozen=True)
class CandidateLine:
    """One line as the recogniser read it: text, mean score (0-1), box in pixels, per-character scores."""

    text: str
    score: float
    quad: Sequence[Point]  # top-left, top-right, bottom-right, bottom-left along the text
    char_scores: Sequence[float] = ()
    mirrored: tuple[str, float] | None = None  # what the crop flipped left-right reads as, and its score


@dataclass(frozen=True)
class Verdict:
    """Why a line was kept or dropped: the score it needed and the doubts that raised it."""

    kept: bool
    needed: float
    doubts: tuple[str, ...]


def keep_plausible(lines: Sequence[CandidateLine]) -> list[bool]:
    """For each line of one image, whether it is plausible text."""
    return [verdict.kept for verdict in judge(lines)]


def judge(lines: Sequence[CandidateLine]) -> list[Verdict]:
    """Each line's verdict; the lines of one image are judged together, as script and neighbours depend on all."""
    dominant = dominant_script(lines)
    own = [_own_doubts(line, dominant) for line in lines]
    # Text read with confidence (a few letters, kept even by itself) vouches for the lines near it.
    anchors = [
        i
        for i, (line, doubts) in enumerate(zip(lines, own, strict=True))
        if "few" not in doubts
        and any(c.isalpha() for c in line.text)
        and line.score >= max(CONFIDENT, _needed((*doubts, "alone")))
    ]
    verdicts = []
    for i, (line, doubts) in enumerate(zip(lines, own, strict=True)):
        if not any(j != i and _near(line.quad, lines[j].quad) for j in anchors):
            if _is_bare(line.text):
                doubts = (*doubts, "lone")
            elif "few" not in doubts:  # a short line already needs more than a lone one
                doubts = (*doubts, "alone")
        needed = _needed(doubts)
        verdicts.append(Verdict(kept=line.score >= needed, needed=round(needed, 3), doubts=doubts))
    return verdicts


def could_be_mirrored(line: CandidateLine, verdict: Verdict) -> bool:
    """Whether reading this kept line's crop flipped could still drop it (see the ``mirrored`` doubt)."""
    return verdict.kept and line.mirrored is None and line.score + MIRROR_MARGIN <= 1.0


def _needed(doubts: Sequence[str]) -> float:
    return BASE_SCORE + sum(DOUBTS[d] for d in doubts)


def _own_doubts(line: CandidateLine, dominant: str | None) -> tuple[str, ...]:
    """The doubts that depend on the line itself (all but ``lone`` and ``alone``)."""
    text = line.text
    length, thickness = _extent(line.quad)
    doubts = []
    if weight(text) < FEW_CHARACTERS:
        doubts.append("few")
    if _switches(text) >= 2:
        doubts.append("mixed")
    read = sum(2 if script_of(c) == "CJK" else 1 for c in text)  # a CJK glyph is about two letters wide
    if len(text) >= 2 and thickness > 0 and length / thickness / read > SPARSE_CHARACTER_ASPECT:
        doubts.append("sparse")
    script = line_script(text)
    if script is not None and dominant is not None and script != dominant:
        doubts.append("foreign")
    if line.char_scores and min(line.char_scores) < WEAK_CHARACTER:
        doubts.append("weak")
    if line.mirrored is not None and _reads_better_mirrored(text, line.score, *line.mirrored):
        doubts.append("mirrored")
    return tuple(doubts)


def weight(text: str) -> int:
    """Letters and digits, a CJK glyph counting 2 (it is a syllable or a word) and a run of repeats once."""
    total = 0
    for char, run in groupby(text):
        if char.isalnum():
            count = len(list(run))
            total += (1 if count >= REPEAT_RUN else count) * (2 if script_of(char) == "CJK" else 1)
    return total


def script_of(char: str) -> str | None:
    """The script of a letter (``LATIN``, ``CJK``, ``CYRILLIC``...); ``None`` for digits and marks."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    words = name.replace("-", " ").split()
    if words and words[0] in ("FULLWIDTH", "HALFWIDTH"):
        words = words[1:]
    if not words:
        return None
    return _SCRIPT_GROUPS.get(words[0], words[0])


def line_script(text: str) -> str | None:
    """The script most of a line's letters are in, or ``None`` when it has no letters."""
    counts = Counter(s for s in map(script_of, text) if s is not None)
    return counts.most_common(1)[0][0] if counts else None


def dominant_script(lines: Sequence[CandidateLine]) -> str | None:
    """The script of the image's text: letters counted across all lines, each weighted by its line's score."""
    totals: dict[str, float] = {}
    for line in lines:
        for char in line.text:
            script = script_of(char)
            if script is not None:
                totals[script] = totals.get(script, 0.0) + line.score
    return max(totals, key=totals.__getitem__) if totals else None


def _is_bare(text: str) -> bool:
    """Only digits, or one glyph (maybe repeated): what shapes and textures are most often read as."""
    alnum = [c for c in text if c.isalnum()]
    return not any(c.isalpha() for c in alnum) or len(set(alnum)) == 1


def _switches(text: str) -> int:
    """The most times one word switches between letters and digits (``R3990H`` 2, ``SAVE20`` 1).

    A CJK glyph ends a word: ``3月15日`` is how a date is written, not a misread. Letters of
    different alphabets are not a switch: the recogniser reads Greek and Cyrillic capitals as
    their Latin look-alikes (``ΚΑΦΕΣ`` comes back as ``KAΦEΣ``), so real text mixes them too.
    """
    most, kinds = 0, list[str]()
    for char in [*text, " "]:
        kind = "DIGIT" if char.isdigit() else "LETTER" if char.isalpha() else None
        if kind is None or script_of(char) == "CJK":
            most = max(most, sum(a != b for a, b in zip(kinds, kinds[1:], strict=False)))
            kinds = []
        else:
            kinds.append(kind)
    return most


def _reads_better_mirrored(text: str, score: float, flipped_text: str, flipped_score: float) -> bool:
    """Whether the flipped crop reads confidently, clearly better, and as other text than this one backwards."""
    if flipped_score < CONFIDENT or flipped_score < score + MIRROR_MARGIN:
        return False
    ours = "".join(text.casefold().split())
    backwards = "".join(flipped_text.casefold().split())[::-1]
    return SequenceMatcher(None, ours, backwards).ratio() < SAME_BACKWARDS


def _extent(quad: Sequence[Point]) -> tuple[float, float]:
    """(length, thickness) of a box in pixels: its long and short side, so vertical text works too."""
    (x0, y0), (x1, y1), _, (x3, y3) = quad
    along = math.hypot(x1 - x0, y1 - y0)
    across = math.hypot(x3 - x0, y3 - y0)
    return max(along, across), min(along, across)


def _near(a: Sequence[Point], b: Sequence[Point]) -> bool:
    """Whether two boxes are close and of a similar size, as lines of one sign or banner are."""
    _, thick_a = _extent(a)
    _, thick_b = _extent(b)
    if min(thick_a, thick_b) <= 0 or max(thick_a, thick_b) / min(thick_a, thick_b) > NEAR_THICKNESS_RATIO:
        return False
    ax0, ax1 = min(p[0] for p in a), max(p[0] for p in a)
    ay0, ay1 = min(p[1] for p in a), max(p[1] for p in a)
    bx0, bx1 = min(p[0] for p in b), max(p[0] for p in b)
    by0, by1 = min(p[1] for p in b), max(p[1] for p in b)
    gap = max(bx0 - ax1, ax0 - bx1, by0 - ay1, ay0 - by1, 0.0)
    return gap <= NEAR_GAP * max(thick_a, thick_b)
