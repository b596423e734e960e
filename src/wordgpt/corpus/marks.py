"""Case and line marks: raw text rewritten, reversibly, so that keeping its capitals and line
breaks does not double the vocabulary (paq8px's capital-letter transform, done on words).

``mark`` writes a capitalised word as a mark and the word in lowercase (``Hello`` -> ``CAP``
``hello``), a word in capitals likewise (``HELLO`` -> ``UPPER`` ``hello``), and a line
break inside the text (one followed by a visible character) as a mark and a space
(``\\n`` -> ``WRAP`` `` ``). A mark that belongs to a word stands before the one space that
precedes it, so that the word keeps its space (`` Hello`` -> ``CAP`` `` hello``, the same
token as in `` hello``). A word whose case is mixed otherwise (``McDonald``) stays as it is.
``unmark`` undoes it exactly: ``unmark(mark(text)) == text`` for every text, the marks being
Unicode noncharacters that text never holds (any that come in are read as U+FFFD).

The marks are characters, so every tokenizer reads them as tokens of their own and a model
pays for them like for any other token: bits per character of the marked text, over the
characters of the raw text, are the bits of the raw text. Both functions look at most one
space and one word around a point, so a text cut before a space that follows a non-space
(:func:`.cleaning.safe_cut`) is marked the same in parts as whole. Decoding a text as it is
written (a generation), only what comes before its last space is final: a line break's mark
turns that space into a line break.
"""

from __future__ import annotations

import re

CAP, UPPER, WRAP = "\ufdd0", "\ufdd1", "\ufdd2"
"""The marks: the next word is capitalised, the next word is in capitals, a line break."""
MARKS = CAP + UPPER + WRAP
MARK_NAMES = {CAP: "<cap>", UPPER: "<upper>", WRAP: "<wrap>"}
"""How the marks are shown to a reader."""

_STRAY = re.compile(f"[{MARKS}]")
_WORD = re.compile(r"( ?)(\w+)")
_BREAK = re.compile(r"\n(\w+|[^\w\s])")
_CAPPED = re.compile(f"{CAP}( ?)(.)", re.S)
_UPPERED = re.compile(f"{UPPER}( ?)(\\w+)")
_WRAPPED = re.compile(f" (\\w+|[^\\w\\s]){WRAP}")


def _word(m: re.Match) -> str:
    space, w = m.group(1), m.group(2)
    low = w.lower()
    if low == w or len(low) != len(w) or not _WORD.fullmatch(low):
        return m.group(0)  # lowercase already, or a lowercase form that is not one word
    if low[0].upper() + low[1:] == w:
        return CAP + space + low
    if low.upper() == w:
        return UPPER + space + low
    return m.group(0)  # mixed case: kept


def mark(text: str) -> str:
    """``text`` with its capitals and line breaks written as marks (see the module)."""
    text = _STRAY.sub("\ufffd", text)
    return _WORD.sub(_word, _BREAK.sub(lambda m: " " + m.group(1) + WRAP, text))


def unmark(text: str) -> str:
    """The raw text of a marked one. Any token sequence decodes: a mark with no word after
    it is dropped (a generation may end on one, or put one before a comma)."""
    text = _CAPPED.sub(lambda m: m.group(1) + m.group(2).upper(), text)
    text = _UPPERED.sub(lambda m: m.group(1) + m.group(2).upper(), text)
    text = _WRAPPED.sub(lambda m: "\n" + m.group(1), text)
    return _STRAY.sub("", text)
