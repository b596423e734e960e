"""Case and line marks: raw text rewritten, reversibly, so that keeping its capitals and line
breaks does not double the vocabulary (paq8px's capital-letter transform, done on words).

``mark`` writes a capitalised word as the word in lowercase and a mark after it (``Hello`` ->
``hello`` ``CAP``), a word in capitals likewise (``HELLO`` -> ``hello`` ``UPPER``), and a
line break inside the text (one followed by a visible character) as a space, with a mark
after the word (or the one character) that follows it (``\\nhello`` -> `` hello`` ``WRAP``),
so that `` Hello`` is the token of `` hello`` and a mark. A word whose case is mixed
otherwise (``McDonald``) stays as it is. The marks come after their word because that is
where a reader can tell: whether a word is written with a capital depends mostly on the word
(a name, ``I``) and on where it stands, and lines are wrapped where the next word does not
fit, so a model that knows the column and has read the word knows whether it began a line.
``unmark`` undoes it exactly: ``unmark(mark(text)) == text`` for every text, the marks being
Unicode noncharacters that text never holds (any that come in are read as U+FFFD).

A tokenizer with a line model (:mod:`.lines`) marks text whose line breaks inside paragraphs
are already spaces (:func:`.lines.as_spaces`), so it writes no ``WRAP``: the line model codes
those line breaks, and the word model never sees them. Tokenizers made before it write
``WRAP`` as their runs were trained to read it.

The marks are characters, so every tokenizer reads them as tokens of their own and a model
pays for them like for any other token: bits per character of the marked text, over the
characters of the raw text, are the bits of the raw text. Both functions look at most one
space and one word around a point, so a text cut before a space that follows a non-space
(:func:`.cleaning.safe_cut`) is marked the same in parts as whole. Decoding a text as it is
written (a generation), only what comes before its last space is final: a line break's mark
(or the line model, once the word after it is whole) may turn that space into a line break.
"""

from __future__ import annotations

import re

CAP, UPPER, WRAP = "\ufdd0", "\ufdd1", "\ufdd2"
"""The marks: the word before is capitalised, is in capitals, began a line."""
MARKS = CAP + UPPER + WRAP
MARK_NAMES = {CAP: "<cap>", UPPER: "<upper>", WRAP: "<wrap>"}
"""How the marks are shown to a reader."""

_STRAY = re.compile(f"[{MARKS}]")
_WORD = re.compile(r"\w+")
_BREAK = re.compile(r"\n(\w+|[^\w\s])")
_CAPPED = re.compile(f"(\\w+){CAP}")
_UPPERED = re.compile(f"(\\w+){UPPER}")
_WRAPPED = re.compile(f" (\\w+|[^\\w\\s]){WRAP}")


def _word(m: re.Match) -> str:
    w = m.group(0)
    low = w.lower()
    if low == w or len(low) != len(w) or not _WORD.fullmatch(low):
        return w  # lowercase already, or a lowercase form that is not one word
    if low[0].upper() + low[1:] == w:
        return low + CAP
    if low.upper() == w:
        return low + UPPER
    return w  # mixed case: kept


def mark(text: str) -> str:
    """``text`` with its capitals and line breaks written as marks (see the module)."""
    text = _STRAY.sub("\ufffd", text)
    return _WORD.sub(_word, _BREAK.sub(lambda m: " " + m.group(1) + WRAP, text))


def unmark(text: str) -> str:
    """The raw text of a marked one. Any token sequence decodes: a mark with no word before
    it is dropped (a generation may put one after a comma)."""
    text = _CAPPED.sub(lambda m: m.group(1)[0].upper() + m.group(1)[1:], text)
    text = _UPPERED.sub(lambda m: m.group(1).upper(), text)
    text = _WRAPPED.sub(lambda m: "\n" + m.group(1), text)
    return _STRAY.sub("", text)
