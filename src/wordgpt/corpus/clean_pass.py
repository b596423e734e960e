"""Pass 1 of ``prepare``: every source read as a stream, cleaned, cut into chunks at safe
points, lowercased, and written to temporary files of clean text, with the split decided on
the way.

A plain file's split is its last ``val_fraction`` of characters (its length is known once it
is read); for dumps it is every k-th article (k = round(1 / val_fraction)), by the article's
number. Wikipedia dumps are parsed in worker processes here. Memory is bounded by the
cleaner's look-ahead and the chunk size, not by the input.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..config import DataConfig
from ..errors import DataError
from ..fileio import disk_error, temp_name
from .cleaning import MAX_WORD, TextCleaner, chunks, safe_cut, split_point
from .sources import READ, Progress, decoded, open_counted
from .wikipedia import iter_articles

CHUNK = 1 << 20
"""Characters per chunk handed to a worker."""


@dataclass
class Segment:
    """A stretch of clean text in a temporary file, bound for one split."""

    path: Path
    start: int
    end: int
    """Byte offsets in ``path``."""
    split: str
    chars: int
    source: int = 0
    """Which source (its index in the sources) the text is from."""


@dataclass
class CleanText:
    """Pass 1's result: clean, lowercased text in temporary files, cut into segments."""

    segments: list[Segment] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    split: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def chars(self, split: str) -> int:
        return sum(s.chars for s in self.segments if s.split == split)


class _CleanWriter:
    """Clean text appended to a temporary file, counting characters and bytes."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.f = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as e:
            raise disk_error(e, path) from None
        self.chars = self.bytes = 0

    def write(self, text: str) -> None:
        try:
            self.f.write(text)
        except OSError as e:
            raise disk_error(e, self.path) from None
        self.chars += len(text)
        self.bytes += len(text.encode("utf-8"))

    def close(self) -> None:
        self.f.close()


class _CleanStream:
    """Text pushed in comes out cleaned, cut at safe points, lowercased, into a writer."""

    def __init__(self, cfg: DataConfig, writer: _CleanWriter, start: str | None = None):
        self.cleaner, self.writer = TextCleaner(cfg, start), writer
        self.lower, self.carry = cfg.lowercase, ""

    def push(self, text: str) -> None:
        self._out(self.cleaner.feed(text))

    def close(self) -> None:
        self._out(self.cleaner.finish(), final=True)

    def _out(self, text: str, final: bool = False) -> None:
        body = self.carry + text
        cut = len(body) if final else safe_cut(body, len(body))
        self.carry = body[cut:]
        if cut:
            self.writer.write(body[:cut].lower() if self.lower else body[:cut])


def clean_plain_file(
    src, cfg: DataConfig, out: Path, index: int, progress: Progress, holdout: bool = True
) -> tuple:
    """One text file cleaned into a temporary file; its train and val segments (without
    ``holdout``, the whole text is one val segment: a file to evaluate on)."""
    digest = hashlib.sha256()
    w = _CleanWriter(temp_name(out / f"clean.{index}"))
    stream = _CleanStream(cfg, w, src.start)
    try:
        with open_counted(src.path, progress, digest) as f:
            for piece in decoded(f, cfg.encoding, str(src.path)):
                stream.push(piece)
        stream.close()
    finally:
        w.close()
    if not stream.cleaner.produced:
        raise DataError(f"{src.path}: no text is left after cleaning")
    if not holdout:
        return [Segment(w.path, 0, w.bytes, "val", w.chars, index)], digest.hexdigest()
    cut_char, cut_byte = _split_position(w.path, w.chars, cfg.val_fraction)
    if not (_has_text(w.path, 0, cut_byte) and _has_text(w.path, cut_byte, w.bytes)):
        raise DataError(f"{src.path}: the text is too short to split into train and validation")
    segs = [
        Segment(w.path, 0, cut_byte, "train", cut_char, index),
        Segment(w.path, cut_byte, w.bytes, "val", w.chars - cut_char, index),
    ]
    return segs, digest.hexdigest()


def _split_position(path: Path, chars: int, val_fraction: float) -> tuple[int, int]:
    """The character and byte offsets of a contiguous split of the clean text in ``path``:
    at ``int(chars * (1 - val_fraction))``, moved to the next whitespace (within
    MAX_WORD characters), as :func:`wordgpt.corpus.cleaning.split_text` does."""
    target = int(chars * (1 - val_fraction))
    seen = byte = 0
    with open(path, encoding="utf-8", newline="") as f:
        while True:
            block = f.read(READ)
            if not block:
                return seen, byte
            if seen + len(block) > target:
                window = block[target - seen :] + f.read(MAX_WORD)
                cut = target + split_point(window, 0)
                text = block + window[len(block) - (target - seen) :]
                local = cut - seen
                return cut, byte + len(text[:local].encode("utf-8"))
            seen += len(block)
            byte += len(block.encode("utf-8"))


def _has_text(path: Path, start: int, end: int) -> bool:
    """Whether bytes ``start:end`` of ``path`` hold more than whitespace."""
    with open(path, "rb") as f:
        f.seek(start)
        while start < end and (block := f.read(min(READ, end - start))):
            if block.strip():
                return True
            start += len(block)
    return False


def every_k(val_fraction: float) -> int:
    """The article split: article n (from 0) is validation when n % k == k - 1."""
    return max(2, round(1 / val_fraction))


def clean_dumps(srcs, cfg: DataConfig, out: Path, workers: int, progress: Progress) -> tuple:
    """Wikipedia dumps: articles parsed in worker processes, in order; article n goes to
    validation when n % k == k - 1. Each split is one text, articles joined as
    ``title\n\ntext`` with blank lines between, cleaned as a stream."""
    k = every_k(cfg.val_fraction)
    writers = {s: _CleanWriter(temp_name(out / f"clean.{s}")) for s in ("train", "val")}
    streams = {s: _CleanStream(cfg, w) for s, w in writers.items()}
    counts = {"train": 0, "val": 0}
    digests = []
    try:
        for src in srcs:
            digest = hashlib.sha256()
            with open_counted(src.path, progress, digest) as f:
                for title, text in iter_articles(f, workers=workers, name=str(src.path)):
                    split = "val" if (counts["train"] + counts["val"]) % k == k - 1 else "train"
                    sep = "\n\n" if counts[split] else ""
                    streams[split].push(f"{sep}{title}\n\n{text}")
                    counts[split] += 1
            digests.append(digest.hexdigest())
        n = counts["train"] + counts["val"]
        if counts["val"] == 0 or counts["train"] == 0:
            raise DataError(
                f"{n} article(s): too few to hold out every {k}th for validation"
                if n
                else "the dump has no articles"
            )
        for stream in streams.values():
            stream.push("\n")
            stream.close()
    finally:
        for w in writers.values():
            w.close()
    segs = [Segment(writers[s].path, 0, writers[s].bytes, s, writers[s].chars) for s in writers]
    return segs, digests, {"train": counts["train"], "val": counts["val"], "every": k}


def clean_sources(
    srcs, cfg: DataConfig, out: Path, workers: int, progress: bool, holdout: bool = True
) -> CleanText:
    """Pass 1 over every source: clean text in temporary files, and the split."""
    kinds = {s.kind for s in srcs}
    if len(kinds) > 1:
        raise DataError("give either text files or Wikipedia dumps, not both at once")
    total = sum(s.path.stat().st_size for s in srcs)
    ct = CleanText()
    with Progress(total, "reading", progress) as bar:
        if kinds == {"wikipedia"}:
            segs, digests, counts = clean_dumps(srcs, cfg, out, workers, bar)
            ct.segments = segs
            ct.split = {
                "method": "articles",
                "every": counts["every"],
                "articles": {"train": counts["train"], "val": counts["val"]},
            }
        else:
            digests = []
            for i, src in enumerate(srcs):
                segs, digest = clean_plain_file(src, cfg, out, i, bar, holdout)
                ct.segments += segs
                digests.append(digest)
            ct.split = {
                "method": "contiguous",
                "val_fraction": cfg.val_fraction,
                "per": "file" if len(srcs) > 1 else "text",
            }
    ct.files = sorted({s.path for s in ct.segments})
    ct.sources = [
        {"dataset": s.name, "path": str(s.path.resolve()), "kind": s.kind, "sha256": d}
        for s, d in zip(srcs, digests, strict=True)
    ]
    return ct


def read_segment(seg: Segment, size: int = CHUNK) -> Iterator[str]:
    """A segment's clean text in chunks cut at safe points."""

    def pieces():
        with open(seg.path, "rb") as f:
            f.seek(seg.start)
            left = seg.end - seg.start
            dec = codecs.getincrementaldecoder("utf-8")()
            while left > 0:
                raw = f.read(min(READ, left))
                if not raw:
                    break
                left -= len(raw)
                yield dec.decode(raw, final=left <= 0)

    return chunks(pieces(), size, lowercase=False)
