"""The notebook's cleaning as a stream: text goes in as pieces of any size, cleaned text
comes out, identical to cleaning the whole text at once (:func:`clean`).

Steps, in order, each switchable (see ``DataConfig``):

1. line ends normalised (``\\r\\n`` and ``\\r`` become ``\\n``);
2. Project Gutenberg matter cut: everything up to the ``*** START OF`` line (looked for in
   the first ``HEAD`` characters), everything from the ``*** END OF`` line on, and the older
   ``End of the Project Gutenberg ...`` line that may stand just before it; a file of several
   books (their files joined) keeps every book: after an ``*** END OF`` line the text goes
   on after the next ``*** START OF`` line (later books keep their credits);
3. front matter cut: a named book starts where its first chapter's words are (looked for in
   the first ``HEAD`` characters); any other Gutenberg book loses the credits that follow its
   start line ("Produced by ...", "Transcribed from ... by ...");
4. leading and trailing line breaks dropped, one added at the end;
5. line breaks to spaces, runs of spaces collapsed;
6. lowercase: applied per chunk by :func:`chunks`, whose cuts fall before a space that
   follows a non-space, where lowercasing (Greek final sigma) and every tokenizer's
   splitting are the same as on the whole text.

No step reads code or torch; worker processes import this module cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from ..config import DataConfig
from ..errors import DataError

HEAD = 1 << 20
"""The Gutenberg start line and a book's first chapter are looked for in this many leading
characters (a bounded look-ahead keeps the stream's memory constant)."""
MAX_WORD = 10_000
"""A split point moves at most this far to reach whitespace."""

GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
GUTENBERG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
# Older files also close the text with this line just before the *** END marker.
GUTENBERG_END_LINE = re.compile(r"^End of (the )?Project Gutenberg.*\s*\Z", re.M | re.I)
_END_LINE_START = re.compile(r"End of (the )?Project Gutenberg", re.I)
_CANDIDATE = re.compile(r"^(\*\*\*|end of)", re.M | re.I)
_PREFIX = 48  # longer than any marker's fixed start
CREDITS = re.compile(
    r"\A(?:\s*(?:produced|transcribed|prepared|scanned|proofread|e-?text|this (?:e-?book|"
    r"e-?text|file) was)\b[^\n]*(?:\n[ \t]*\S[^\n]*)*)+\n?",
    re.I,
)
"""A Gutenberg book's credits: the paragraphs right after its start line that name who
produced or transcribed the file (``Produced by ...``; a paragraph ends at a blank line)."""


# ------------------------------------------------------------------------ the reference


def strip_gutenberg(text: str, credits: bool = False) -> str:
    """The text between a Gutenberg ``*** START OF`` line and its ``*** END OF`` line;
    without the credits after the start line when asked. Several books in one file: the text
    of each, joined (each later one from the line after its start line)."""
    text, books = after_start(text, credits), []
    while m := GUTENBERG_END.search(text):
        body = text[: m.start()]
        if e := GUTENBERG_END_LINE.search(body):
            body = body[: e.start()]
        books.append(body)
        if (nxt := GUTENBERG_START.search(text, m.end())) is None:
            return "".join(books)
        text = text[nxt.end() :]
        text = text[1:] if text.startswith("\n") else text  # the start line with its break
    return "".join(books) + text


def clean(text: str, cfg: DataConfig, start: str | None = None) -> str:
    """The whole text cleaned at once: the plain reference the stream is tested against."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cfg.strip_gutenberg:
        text = strip_gutenberg(text, credits=cfg.skip_front_matter and not start)
    if cfg.skip_front_matter and start and (m := re.compile(start).search(text, 0, HEAD)):
        text = text[m.start() :]
    text = text.strip("\n") + "\n"
    if cfg.newlines_to_spaces:
        text = text.replace("\n", " ")
    if cfg.collapse_spaces:
        text = re.sub(r" {2,}", " ", text)
    if cfg.lowercase:
        text = text.lower()
    if not text.strip():
        raise DataError("no text is left after cleaning")
    return text


def split_point(text: str, start: int) -> int:
    """Where a split at ``start`` falls: the next whitespace within MAX_WORD, else start."""
    m = re.compile(r"\s").search(text, start, start + MAX_WORD)
    return m.start() if m else start


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Contiguous split: the last ``val_fraction`` of the text is validation. The cut moves
    forward to the next whitespace (within MAX_WORD characters) so no word is cut in two."""
    cut = split_point(text, int(len(text) * (1 - val_fraction)))
    return text[:cut], text[cut:]


# ------------------------------------------------------------------------ the stream


class _LineEnds:
    """``\\r\\n`` and lone ``\\r`` to ``\\n``; a ``\\r`` at a piece's end waits for the next."""

    def __init__(self):
        self.cr = False

    def feed(self, s: str) -> str:
        if self.cr:
            s, self.cr = "\r" + s, False
        if s.endswith("\r"):
            s, self.cr = s[:-1], True
        return s.replace("\r\n", "\n").replace("\r", "\n")

    def finish(self) -> str:
        return "\n" if self.cr else ""


class _Head:
    """Hold the first HEAD characters, then cut them with ``cut(head) -> head``."""

    def __init__(self, cut):
        self.cut, self.buf, self.done = cut, [], False
        self.size = 0

    def feed(self, s: str) -> str:
        if self.done:
            return s
        self.buf.append(s)
        self.size += len(s)
        return self._release() if self.size >= HEAD else ""

    def _release(self) -> str:
        self.done = True
        text, self.buf = "".join(self.buf), []
        return self.cut(text)

    def finish(self) -> str:
        return "" if self.done else self._release()


class _GutenbergEnd:
    """Cut at each ``*** END OF`` line, with an ``End of ... Project Gutenberg`` line
    before it when only whitespace separates them, up to the next ``*** START OF`` line and
    its line break (a file of several books). Lines are decided by their first ``_PREFIX``
    characters; only an undecided line start, or such an End-of line and the whitespace
    after it, is held back."""

    def __init__(self):
        self.line = ""  # the start of the current line, not yet decided
        self.mode = "start"  # the current line: "start" (undecided), "normal", "held", "drop"
        self.held = ""  # an End-of-Gutenberg line and the whitespace after it
        self.between = False  # after an END line, before the next book's START line

    def feed(self, s: str) -> str:
        out: list[str] = []
        if self.mode != "start":  # finish the current, decided line
            nl = s.find("\n")
            part = s if nl < 0 else s[: nl + 1]
            if self.mode == "held":
                self.held += part
            elif self.mode == "normal":
                out.append(self._emit(part))
            if nl < 0:
                return "".join(out)
            s, self.mode = s[nl + 1 :], "start"
        text, pos, self.line = self.line + s, 0, ""
        while True:
            m = _CANDIDATE.search(text, pos)
            if m is None:  # complete lines up to the last line break are plain text
                nl = text.rfind("\n", pos)
                if nl >= 0:
                    out.append(self._emit(text[pos : nl + 1]))
                    pos = nl + 1
                tail = text[pos:]
                if len(tail) >= _PREFIX:
                    out.append(self._emit(tail))
                    self.mode = "normal"
                else:
                    self.line = tail
                return "".join(out)
            i = m.start()
            if i > pos:
                out.append(self._emit(text[pos:i]))
            nl = text.find("\n", i)
            if nl < 0 and len(text) - i < _PREFIX:
                self.line = text[i:]  # too short to decide: wait for more
                return "".join(out)
            line = text[i:] if nl < 0 else text[i : nl + 1]
            if self.between or GUTENBERG_END.match(line):  # a marker line goes, break and all
                self.between = not (self.between and GUTENBERG_START.match(line))
                self.held, kind = "", "drop"
            elif _END_LINE_START.match(line):
                out.append(self._flush())
                self.held, kind = line, "held"
            else:
                out.append(self._emit(line))
                kind = "normal"
            if nl < 0:
                self.mode = kind
                return "".join(out)
            pos = nl + 1

    def _emit(self, text: str) -> str:
        """Text after a held End-of-Gutenberg line: whitespace joins it, anything else
        releases it. Between books: nothing."""
        if self.between:
            return ""
        if not self.held or not text:
            return text
        if text.isspace():
            self.held += text
            return ""
        return self._flush() + text

    def _flush(self) -> str:
        held, self.held = self.held, ""
        return held

    def finish(self) -> str:
        if self.between or self.mode == "drop":
            return ""
        if self.mode == "start" and GUTENBERG_END.match(self.line):  # a short last line
            return ""
        return self._flush() + self.line  # no END marker: nothing is cut


class _StripNewlines:
    """``text.strip("\\n") + "\\n"``: leading line breaks dropped, trailing ones held until
    more text comes, one added at the end."""

    def __init__(self):
        self.started, self.trailing = False, 0

    def feed(self, s: str) -> str:
        if not self.started:
            s = s.lstrip("\n")
            if not s:
                return ""
            self.started = True
        body = s.rstrip("\n")
        if not body:
            self.trailing += len(s)
            return ""
        out = "\n" * self.trailing + body
        self.trailing = len(s) - len(body)
        return out

    def finish(self) -> str:
        return "\n"


class _Spaces:
    """Line breaks to spaces and runs of spaces collapsed, across pieces."""

    def __init__(self, cfg: DataConfig):
        self.newlines, self.collapse = cfg.newlines_to_spaces, cfg.collapse_spaces
        self.last_space = False

    def feed(self, s: str) -> str:
        if self.newlines:
            s = s.replace("\n", " ")
        if self.collapse and s:
            s = re.sub(r" {2,}", " ", s)
            if self.last_space and s.startswith(" "):
                s = s[1:]
            if s:
                self.last_space = s.endswith(" ")
        return s

    def finish(self) -> str:
        return ""


class TextCleaner:
    """Steps 1-5 of the cleaning as a stream: ``feed`` pieces, then ``finish``."""

    def __init__(self, cfg: DataConfig, start: str | None = None):
        stages: list = [_LineEnds()]
        if cfg.strip_gutenberg:
            credits = cfg.skip_front_matter and not start
            stages += [_Head(lambda t: after_start(t, credits)), _GutenbergEnd()]
        if cfg.skip_front_matter and start:
            pattern = re.compile(start)
            stages.append(
                _Head(lambda t: t[m.start() :] if (m := pattern.search(t, 0, HEAD)) else t)
            )
        stages += [_StripNewlines(), _Spaces(cfg)]
        self.stages = stages
        self.produced = False

    def feed(self, s: str) -> str:
        for stage in self.stages:
            s = stage.feed(s)
        self.produced |= bool(s.strip())
        return s

    def finish(self) -> str:
        out = ""
        for i, stage in enumerate(self.stages):
            tail = stage.finish()
            for later in self.stages[i + 1 :]:
                tail = later.feed(tail)
            out += tail
        self.produced |= bool(out.strip())
        return out


def after_start(head: str, credits: bool) -> str:
    """What follows a Gutenberg start line in ``head`` (all of it when there is none); with
    ``credits``, without the credits right after that line."""
    m = GUTENBERG_START.search(head, 0, HEAD)
    if m is None:
        return head
    head = head[m.end() :]
    c = CREDITS.match(head) if credits else None
    return head[c.end() :] if c else head


# ------------------------------------------------------------------------ chunks


def safe_cut(text: str, limit: int) -> int:
    """The last position <= limit where ``text`` may be cut: before a space that follows a
    non-space (0 if there is none)."""
    i = text.rfind(" ", 1, limit + 1)
    while i > 0:
        if not text[i - 1].isspace():
            return i
        i = text.rfind(" ", 1, i)
    return 0


def _next_safe(text: str, start: int) -> int:
    """The first position >= start where ``text`` may be cut (-1 if there is none yet)."""
    i = text.find(" ", max(start, 1))
    while i > 0:
        if not text[i - 1].isspace():
            return i
        i = text.find(" ", i + 1)
    return -1


def chunks(pieces: Iterable[str], size: int, lowercase: bool = True) -> Iterator[str]:
    """Cleaned pieces re-cut into chunks of about ``size`` characters at safe points (see the
    module docstring), lowercased when asked. A text with no safe point grows one chunk."""
    rest = ""
    for p in pieces:
        if not p:
            continue
        rest += p
        while len(rest) >= size:
            cut = safe_cut(rest, size) or _next_safe(rest, size)
            if cut <= 0:
                break  # no safe point yet: wait for more text
            yield rest[:cut].lower() if lowercase else rest[:cut]
            rest = rest[cut:]
    if rest:
        yield rest.lower() if lowercase else rest


@dataclass(frozen=True)
class Normalizer:
    """The cleaning the data had, applied again to any text the tokenizer is given (a
    prompt, a text to evaluate, a word to look up), so that "The Knight" finds the ids of
    "the knight" when the training text was lowercased. Saved in tokenizer.json."""

    lowercase: bool = False
    newlines_to_spaces: bool = False
    collapse_spaces: bool = False

    @classmethod
    def of(cls, cfg) -> Normalizer:
        """What a DataConfig's cleaning does to text that reaches a tokenizer."""
        return cls(cfg.lowercase, cfg.newlines_to_spaces, cfg.collapse_spaces)

    @classmethod
    def from_dict(cls, d) -> Normalizer:
        if not isinstance(d, dict):
            return cls()
        return cls(
            *(d.get(k) is True for k in ("lowercase", "newlines_to_spaces", "collapse_spaces"))
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, text: str) -> str:
        if self.newlines_to_spaces:
            text = text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
        if self.collapse_spaces:
            text = _SPACES.sub(" ", text)
        return text.lower() if self.lowercase else text

    def to_hf(self):
        """The same steps as a Hugging Face normalizer (None when there are none)."""
        from tokenizers import Regex, normalizers

        steps = []
        if self.newlines_to_spaces:
            steps += [normalizers.Replace(Regex("\r\n|\r|\n"), " ")]
        if self.collapse_spaces:
            steps.append(normalizers.Replace(Regex(" {2,}"), " "))
        if self.lowercase:
            steps.append(normalizers.Lowercase())
        return normalizers.Sequence(steps) if steps else None


_SPACES = re.compile(r" {2,}")
