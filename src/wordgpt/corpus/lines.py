"""Line breaks inside paragraphs, coded apart from the words by a model of the line width.

A book's text is wrapped at a width: a line break inside a paragraph stands where a space
would, and whether a space is a line break depends almost only on the column, which no word
model sees. So a tokenizer that keeps raw text's lines (:mod:`.marks`) writes such a line break
as the space it replaces (the word model reads paragraphs), and this line model codes the
choice. At every **break point** (a space or a line break followed by a visible character) it
gives the probability that it is a line break, from the counts of that choice in the training
text at the same key: the **column after the word** (where the line would end with this
space and the visible characters after it, ``MAX_COLUMN`` and beyond alike) and whether the
character before is a line break (a paragraph's first line). The break point's flags and the
text with them as spaces give the raw text back exactly (:func:`rewrap`); the raw text's bits
are the word model's bits of that text plus the line model's bits of the flags (a two-part
code: each flag is predicted from the text before it and the word after it, which the first
part has coded).

The static figure counts the training text only; read as it goes (adaptive evaluation), the
counts also learn each flag after predicting it, as a compressor's do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..errors import WordGPTError

MAX_COLUMN = 160
"""Columns after the word from this one on share a key."""
PRIOR = 0.5
"""The counts' prior for each outcome (the Krichevsky-Trofimov estimator)."""
KEYS = 2 * (MAX_COLUMN + 1)
_POINT = re.compile(r"[ \n](?=(\S+))")
_NEWLINE = re.compile(r"\n")


@dataclass(frozen=True)
class Breaks:
    """A piece of text's break points: their columns after the word (those before the
    piece's first line break counted from the piece's start: :meth:`keys` adds the column the
    piece starts at), whether each is a line break, whether the character before is one."""

    after: np.ndarray
    flags: np.ndarray
    newline_before: np.ndarray
    head: int
    """How many break points come before the piece's first line break."""
    tail: int
    """The characters after the piece's last line break (-1: it has none)."""
    length: int

    def keys(self, column: int) -> tuple[np.ndarray, int]:
        """The break points' keys when the piece starts at ``column``, and the column it
        ends at."""
        after = self.after.copy()
        after[: self.head] += column
        return key(after, self.newline_before), (
            self.tail if self.tail >= 0 else column + self.length
        )


def key(after, newline_before):
    """The line model's key of a break point (or of arrays of them): its column after the
    word (``MAX_COLUMN`` and beyond alike) and whether a line break comes right before."""
    return np.minimum(after, MAX_COLUMN) * 2 + newline_before


def break_points(text: str) -> Breaks:
    """The break points of ``text`` (see :class:`Breaks`)."""
    found = [(m.start(), len(m.group(1))) for m in _POINT.finditer(text)]
    at = np.array([p for p, _ in found], dtype=np.int64)
    word = np.array([n for _, n in found], dtype=np.int64)
    newlines = np.array([m.start() for m in _NEWLINE.finditer(text)], dtype=np.int64)
    last = np.searchsorted(newlines, at)  # the line break before each point (0: none)
    start = np.r_[-1, newlines][last] + 1
    flags = np.array([text[p] == "\n" for p in at.tolist()], dtype=bool)
    before = np.array([p > 0 and text[p - 1] == "\n" for p in at.tolist()], dtype=bool)
    tail = len(text) - int(newlines[-1]) - 1 if len(newlines) else -1
    return Breaks(at - start + 1 + word, flags, before.astype(np.int64),
                  int((last == 0).sum()), tail, len(text))  # fmt: skip


def as_spaces(text: str) -> str:
    """``text`` with the line breaks at its break points written as spaces."""
    return _POINT.sub(" ", text)


def rewrap(text: str, flags) -> str:
    """The raw text of ``text`` (its break points spaces) and its break points' flags."""
    flags = iter(np.asarray(flags, dtype=bool).tolist())
    return _POINT.sub(lambda m: "\n" if next(flags) else " ", text)


def wrap(text: str, counts: np.ndarray, before: str = "") -> str:
    """``text`` with each break point a line break where the line model finds one more
    likely than a space, from the first on (what a generated text looks like in the book's
    lines: its paragraphs begun, its lines as wide as the book's); ``before``: the text shown
    before it (a prompt), whose last line its first line goes on. A line that would be
    longer than any the counts have seen (a long prompt's) is broken at its first point."""
    out, last = [], 0
    col = len(before) - before.rfind("\n") - 1  # the column ``before`` ends at
    seen = np.flatnonzero(counts.sum(1) > 0) // 2  # the columns counted (the last: and on)
    widest = seen.max() if len(seen) and seen.max() < MAX_COLUMN else math.inf
    for m in _POINT.finditer(text):
        at = m.start()
        line = text[last:at]
        nl = line.rfind("\n")
        col = len(line) - nl - 1 if nl >= 0 else col + len(line)
        after_break = text[at - 1] == "\n" if at > 0 else before.endswith("\n")
        end = col + 1 + len(m.group(1))  # the column after the word
        k = key(end, int(after_break))
        brk = counts[k, 1] > counts[k, 0] or end > widest
        out += [line, "\n" if brk else " "]
        col, last = (0 if brk else col + 1), at + 1
    return "".join(out) + text[last:]


def read_bits(keys: np.ndarray, flags: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The bits of each flag predicted from ``counts`` (KEYS, 2) and the flags before it with
    the same key (read as it goes), in one pass of numpy."""
    if not len(keys):
        return np.zeros(0)
    order = np.argsort(keys, kind="stable")
    k, f = keys[order], flags[order].astype(np.int64)
    first = np.r_[True, k[1:] != k[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ones = np.cumsum(f) - f  # breaks before each, over all keys
    ones -= ones[starts][group]  # ... within its key
    seen = np.arange(len(k)) - starts[group]
    one = counts[k, 1] + ones + PRIOR
    total = counts[k, 0] + counts[k, 1] + seen + 2 * PRIOR
    p = np.where(f == 1, one / total, 1 - one / total)
    bits = np.empty(len(k))
    bits[order] = -np.log2(p)
    return bits


def static_bits(keys: np.ndarray, flags: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The bits of each flag predicted from ``counts`` (KEYS, 2) alone."""
    p = (counts[keys, 1] + PRIOR) / (counts[keys].sum(1) + 2 * PRIOR)
    return -np.log2(np.where(flags, p, 1 - p))


def count(keys: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """(KEYS, 2) the flags' counts by key."""
    out = np.zeros((KEYS, 2), dtype=np.int64)
    np.add.at(out, (keys, flags.astype(np.int64)), 1)
    return out


class LineCounts:
    """The break points of a text read in pieces, in order: the training split's counted,
    its bits read as it goes from no counts; the val split's kept, to be coded once the
    training split is counted (:meth:`split_bits`)."""

    def __init__(self, counts: np.ndarray | None = None):
        self.learns = counts is None  # else a tokenizer's line model: the counts stay
        self.counts = np.zeros((KEYS, 2), dtype=np.int64) if counts is None else counts
        self.column = 0
        self.train_bits, self.breaks = 0.0, {"train": 0, "val": 0}
        self.val: list[tuple[np.ndarray, np.ndarray]] = []

    def see(self, split: str, piece: Breaks) -> None:
        keys, self.column = piece.keys(self.column)
        self.breaks[split] += int(piece.flags.sum())
        if split == "val":
            self.val.append((keys, piece.flags))
        elif self.learns:
            self.train_bits += float(read_bits(keys, piece.flags, self.counts).sum())
            self.counts += count(keys, piece.flags)
        else:
            self.train_bits += float(static_bits(keys, piece.flags, self.counts).sum())

    def split_bits(self) -> dict[str, dict]:
        """Per split, what meta.json keeps: its line breaks and their bits (val: static from
        the training counts, and ``line_bits_read`` as it goes)."""
        keys = np.concatenate([k for k, _ in self.val] or [np.zeros(0, np.int64)])
        flags = np.concatenate([f for _, f in self.val] or [np.zeros(0, bool)])
        static = static_bits(keys, flags, self.counts).sum()
        return {
            "train": {"line_breaks": self.breaks["train"], "line_bits": self.train_bits},
            "val": {"line_breaks": self.breaks["val"], "line_bits": float(static),
                    "line_bits_read": float(read_bits(keys, flags, self.counts).sum())},
        }  # fmt: skip


def line_counts(parts) -> np.ndarray:
    """The line model's counts of a text given as consecutive ``parts``."""
    seen = LineCounts()
    for part in parts:
        seen.see("train", break_points(part))
    return seen.counts


def lines_from_list(value) -> np.ndarray:
    """The line model's counts from a tokenizer file's ``lines``, checked."""
    a = np.asarray(value, dtype=object)
    if a.shape != (KEYS, 2) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in a.flat
    ):
        raise WordGPTError("the tokenizer's line model (lines) is not a table of counts")
    return a.astype(np.int64)
