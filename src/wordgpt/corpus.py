"""Preparing a corpus of any size: streamed, in worker processes, written in order.

Two passes over the text, memory bounded by (chunk size x workers), not by the input:

1. **clean**: every source is read in pieces, decoded incrementally, cleaned as a stream
   (:mod:`wordgpt.cleaning`), cut into chunks at safe points, lowercased, and written to a
   temporary file of clean text. Wikipedia dumps are parsed in worker processes here. The
   split is decided in this pass: a plain file's last ``val_fraction`` of characters (its
   length is known once it is read), or, for dumps, every k-th article (k = round(1 /
   val_fraction)), by the article's number.
2. **tokenize**: the clean text is re-read in chunks and tokenized by worker processes;
   results come back in input order, so the output does not depend on the number of
   workers. A new word or char vocabulary is learned on the way: each chunk's tokens get
   ids in order of first appearance, the counts are summed, and at the end one
   ``numpy.take`` per block remaps the ids to the frequency-ordered vocabulary. BPE is
   trained from the clean training text as an iterator, then encodes in batches.

Files are written under temporary names in the output folder and renamed at the end,
``meta.json`` last: an interrupted run never leaves a folder that looks complete.
The plain reference, the whole text in memory, is :func:`reference_ids`.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import tokenizers
from .cleaning import MAX_WORD, TextCleaner, chunks, clean, safe_cut, split_point, split_text
from .config import DataConfig, to_dict
from .errors import DataError
from .fileio import disk_error, temp_name

CHUNK = 1 << 20
"""Characters per chunk handed to a worker."""
READ = 1 << 20
"""Bytes read from a source at a time."""
REMAP_BLOCK = 1 << 22
"""Token ids remapped per numpy.take."""


# ------------------------------------------------------------------------ sources


@dataclass
class Progress:
    """Bytes read so far out of a known total, for a progress bar (tqdm or nothing)."""

    total: int
    desc: str
    enabled: bool = True
    bar: object = None

    def __enter__(self):
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total,
                unit="B",
                unit_scale=True,
                desc=self.desc,
                disable=None,
                leave=False,
                dynamic_ncols=True,
            )
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


class _Counting:
    """A binary file that counts (and hashes) the raw bytes read through it."""

    def __init__(self, f, progress: Progress, digest):
        self.f, self.progress, self.digest = f, progress, digest

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        self.progress.update(len(b))
        self.digest.update(b)
        return b

    def readinto(self, buf) -> int:
        n = self.f.readinto(buf)
        self.progress.update(n)
        self.digest.update(memoryview(buf)[:n])
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)


@contextlib.contextmanager
def open_counted(path: Path, progress: Progress, digest):
    """``path`` opened for reading bytes, decompressed (.bz2, .gz), its raw bytes counted."""
    import bz2
    import gzip

    with contextlib.ExitStack() as stack:
        try:
            raw = stack.enter_context(open(path, "rb"))
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror or e}") from None
        counted = _Counting(raw, progress, digest)
        if path.suffix == ".bz2":
            yield stack.enter_context(bz2.BZ2File(counted))
        elif path.suffix == ".gz":
            yield stack.enter_context(gzip.GzipFile(fileobj=counted))
        else:
            yield counted


def decoded(f, encoding: str, name: str) -> Iterator[str]:
    """Text pieces of a binary stream: a byte-order mark picks the codec; NUL bytes, an
    empty file or bytes that do not decode are one clear error (with the byte offset)."""
    from .data import sniff_encoding

    try:
        head = f.read(READ)
        while head and not head.strip() and (more := f.read(READ)):
            head += more  # only whitespace so far: an empty file, or text further on
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {name}: {e}") from None
    if not head.strip():
        raise DataError(f"{name} is empty")
    codec = sniff_encoding(head[:8192], encoding, name)
    dec = codecs.getincrementaldecoder(codec)(errors="strict")
    offset, raw = 0, head
    while raw:
        try:
            yield dec.decode(raw)
        except UnicodeDecodeError as e:
            at = offset + e.start
            raise DataError(
                f"{name} is not valid {codec} (byte offset {at}: {raw[e.start : e.start + 4]!r}); "
                "try --encoding latin-1"
            ) from None
        offset += len(raw)
        try:
            raw = f.read(READ)
        except (OSError, EOFError) as e:
            raise DataError(f"cannot read {name}: {e}") from None
    try:
        yield dec.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"{name} ends in the middle of a character") from None


# ------------------------------------------------------------------------ pass 1: clean


@dataclass
class Segment:
    """A stretch of clean text in a temporary file, bound for one split."""

    path: Path
    start: int
    end: int
    """Byte offsets in ``path``."""
    split: str
    chars: int


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
        return [Segment(w.path, 0, w.bytes, "val", w.chars)], digest.hexdigest()
    cut_char, cut_byte = _split_position(w.path, w.chars, cfg.val_fraction)
    if not (_has_text(w.path, 0, cut_byte) and _has_text(w.path, cut_byte, w.bytes)):
        raise DataError(f"{src.path}: the text is too short to split into train and validation")
    segs = [
        Segment(w.path, 0, cut_byte, "train", cut_char),
        Segment(w.path, cut_byte, w.bytes, "val", w.chars - cut_char),
    ]
    return segs, digest.hexdigest()


def _split_position(path: Path, chars: int, val_fraction: float) -> tuple[int, int]:
    """The character and byte offsets of a contiguous split of the clean text in ``path``:
    at ``int(chars * (1 - val_fraction))``, moved to the next whitespace (within
    MAX_WORD characters), as :func:`wordgpt.cleaning.split_text` does."""
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
    from .wikipedia import iter_articles

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


# ------------------------------------------------------------------------ pass 2: tokens


def _first_ids(job: tuple[str, str, str, bool]) -> tuple[str, list[str], np.ndarray, set]:
    """A chunk's tokens as ids in order of first appearance, the tokens themselves, and the
    chunk's characters (with the chunk's split, passed through). Runs in a worker."""
    split, chunk, kind, space_prefix = job
    if kind == "char":
        cps = np.frombuffer(chunk.encode("utf-32-le"), dtype=np.uint32)
        uniq, first, inv = np.unique(cps, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        tokens = [chr(c) for c in uniq[order]]
        return split, tokens, rank[inv].astype(np.uint32), set(tokens)
    table: dict[str, int] = {}
    pattern = tokenizers.SPACE_PREFIX_PATTERN if space_prefix else tokenizers.WORD_PATTERN
    ids = np.fromiter(
        (table.setdefault(t, len(table)) for t in pattern.findall(chunk)), dtype=np.uint32
    )
    return split, list(table), ids, set(chunk)


_WORKER_TOKENIZER = None


def _init_worker(tok_json: str | None) -> None:
    global _WORKER_TOKENIZER
    if tok_json is not None:
        _WORKER_TOKENIZER = tokenizers.from_dict(json.loads(tok_json))


def _encode_known(job: tuple[str, str]) -> tuple[str, np.ndarray, set]:
    split, chunk = job
    return split, np.asarray(_WORKER_TOKENIZER.encode(chunk), dtype=np.uint32), set(chunk)


def _chunks_by_split(ct: CleanText, size: int) -> Iterator[tuple[str, str]]:
    """``(split, chunk)`` for every chunk of clean text, read lazily, in order."""
    for seg in ct.segments:
        for chunk in read_segment(seg, size):
            yield seg.split, chunk


def ordered_map(fn: Callable, items: Iterable, workers: int, init=None, initargs=()) -> Iterator:
    """``map(fn, items)`` in worker processes, in order, with at most 2 x workers chunks in
    flight (a fast reader never piles the input up in memory). One worker: in-process."""
    if workers <= 1:
        if init:
            init(*initargs)
        yield from map(fn, items)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=init, initargs=initargs) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


class _IdsWriter:
    """Token ids appended to a temporary file."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype = path, dtype
        self.f = open(path, "wb")  # noqa: SIM115
        self.n = 0

    def write(self, ids: np.ndarray) -> None:
        try:
            self.f.write(np.ascontiguousarray(ids, dtype=self.dtype).tobytes())
        except OSError as e:
            raise disk_error(e, self.path) from None
        self.n += len(ids)

    def close(self) -> None:
        self.f.close()


@dataclass
class Encoded:
    """Pass 2's result: token ids in temporary files, by split."""

    tokenizer: tokenizers.Tokenizer
    files: dict[str, Path]
    dtype: np.dtype
    unique_chars: int
    unk: dict[str, int]
    tokens: dict[str, int]


def encode_new_vocab(ct: CleanText, cfg: DataConfig, out: Path, workers: int, size: int) -> Encoded:
    """Word or char tokens with a vocabulary learned on the way (first-appearance ids,
    remapped to frequency order at the end)."""
    index: dict[str, int] = {}
    counts = np.zeros(0, dtype=np.int64)
    chars: set[str] = set()
    files = {s: temp_name(out / f"{s}.ids") for s in ("train", "val")}
    writers = {s: _IdsWriter(p, np.dtype(np.uint32)) for s, p in files.items()}
    jobs = ((sp, c, cfg.tokenizer, cfg.space_prefix) for sp, c in _chunks_by_split(ct, size))
    try:
        for split, tokens, local, seen in ordered_map(_first_ids, jobs, workers):
            table = np.fromiter(
                (index.setdefault(t, len(index)) for t in tokens), np.int64, len(tokens)
            )
            ids = table[local] if len(local) else np.zeros(0, np.int64)
            if len(index) > len(counts):
                counts = np.concatenate([counts, np.zeros(len(index) - len(counts), np.int64)])
            counts += np.bincount(ids, minlength=len(counts))
            writers[split].write(ids)
            chars |= seen
    finally:
        for w in writers.values():
            w.close()
    tokens_by_id = list(index)
    tok, table = vocabulary(tokens_by_id, counts, cfg)
    dtype = _token_dtype(tok.vocab_size)
    final, unk, n = {}, {}, {}
    for split, path in files.items():
        final[split] = temp_name(out / f"{split}.bin")
        unk[split], n[split] = remap(path, final[split], table, dtype)
        path.unlink()
    return Encoded(tok, final, dtype, len(chars), unk, n)


def vocabulary(tokens: list[str], counts: np.ndarray, cfg: DataConfig):
    """The frequency-ordered vocabulary (ties by the token), as the in-memory tokenizer
    builds it, and the table from first-appearance ids to its ids (0, <unk>, for dropped)."""
    ranked = sorted(range(len(tokens)), key=lambda i: (-counts[i], tokens[i]))
    keep = [i for i in ranked if counts[i] >= cfg.min_count and tokens[i] != tokenizers.UNK]
    if cfg.max_vocab is not None:
        keep = keep[: cfg.max_vocab]
    table = np.zeros(len(tokens), dtype=np.int64)
    table[keep] = np.arange(1, len(keep) + 1)
    itos = [tokenizers.UNK, *(tokens[i] for i in keep)]
    tok = (
        tokenizers.WordTokenizer(itos, space_prefix=cfg.space_prefix)
        if cfg.tokenizer == "word"
        else tokenizers.CharTokenizer(itos)
    )
    return tok, table


def remap(src: Path, dst: Path, table: np.ndarray, dtype: np.dtype) -> tuple[int, int]:
    """Rewrite first-appearance ids as vocabulary ids, a block at a time, with plain reads
    (a memory map would keep every page it touched resident); (<unk>s, tokens)."""
    w = _IdsWriter(dst, dtype)
    unk = n = 0
    try:
        with open(src, "rb") as f:
            while (block := np.fromfile(f, dtype=np.uint32, count=REMAP_BLOCK)).size:
                ids = np.take(table, block)
                unk += int((ids == 0).sum())
                n += ids.size
                w.write(ids)
    finally:
        w.close()
    return unk, n


def encode_known(ct: CleanText, tok, out: Path, workers: int, size: int) -> Encoded:
    """Tokens of an existing tokenizer (``--tokenizer-from``, or a trained BPE): unknown
    words become <unk>."""
    dtype = _token_dtype(tok.vocab_size)
    files = {s: temp_name(out / f"{s}.bin") for s in ("train", "val")}
    writers = {s: _IdsWriter(p, dtype) for s, p in files.items()}
    unk, chars = {"train": 0, "val": 0}, set()
    tok_json = json.dumps(tok.to_dict(), ensure_ascii=False)
    jobs = _chunks_by_split(ct, size)
    try:
        for split, ids, seen in ordered_map(
            _encode_known, jobs, workers, _init_worker, (tok_json,)
        ):
            writers[split].write(ids)
            if tok.kind != "bpe":
                unk[split] += int((ids == 0).sum())
            chars |= seen
    finally:
        for w in writers.values():
            w.close()
    return Encoded(tok, files, dtype, len(chars), unk, {s: w.n for s, w in writers.items()})


def encode_bpe(ct: CleanText, cfg: DataConfig, out: Path, workers: int, size: int) -> Encoded:
    """BPE: trained from the clean training text as an iterator (Hugging Face tokenizers runs
    its own threads), then encoded chunk by chunk in worker processes."""
    train = (c for split, c in _chunks_by_split(ct, size) if split == "train")
    tok = tokenizers.BPETokenizer.train(train, cfg.vocab_size)
    return encode_known(ct, tok, out, workers, size)


def _token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


# ------------------------------------------------------------------------ the whole job


def prepare_corpus(
    cfg: DataConfig,
    out: Path,
    srcs: list,
    workers: int = 0,
    tokenizer_from: tokenizers.Tokenizer | None = None,
    progress: bool = True,
    chunk_size: int = CHUNK,
    holdout: bool = True,
) -> dict:
    """Both passes; the token files and tokenizer under temporary names in ``out``, and the
    meta dict. :func:`wordgpt.data.prepare` renames them into place."""
    workers = workers or len(os.sched_getaffinity(0))
    ct = clean_sources(srcs, cfg, out, workers, progress, holdout)
    try:
        if tokenizer_from is not None:
            enc = encode_known(ct, tokenizer_from, out, workers, chunk_size)
        elif cfg.tokenizer == "bpe":
            enc = encode_bpe(ct, cfg, out, workers, chunk_size)
        else:
            enc = encode_new_vocab(ct, cfg, out, workers, chunk_size)
    finally:
        for f in ct.files:
            f.unlink(missing_ok=True)
    splits = {
        s: {
            "chars": ct.chars(s),
            "tokens": enc.tokens[s],
            "unk": enc.unk[s],
            "unk_share": enc.unk[s] / max(enc.tokens[s], 1),
        }
        for s in ("train", "val")
    }
    return {
        "meta": {
            "source": ct.sources[0]
            if len(ct.sources) == 1
            else {"dataset": "several", "files": ct.sources},
            "sources": ct.sources,
            "config": to_dict(cfg),
            "split": ct.split,
            "tokenizer": enc.tokenizer.kind,
            "tokenizer_from": None,
            "vocab_size": enc.tokenizer.vocab_size,
            "dtype": enc.dtype.name,
            "unique_chars": enc.unique_chars,
            "splits": splits,
        },
        "files": enc.files,
        "tokenizer": enc.tokenizer,
    }


# ------------------------------------------------------------------------ the reference


def reference_ids(
    cfg: DataConfig,
    texts: list[str],
    kind: str = "text",
    start: str | None = None,
    tokenizer_from=None,
):
    """The whole corpus in memory, the plain way: (tokenizer, train ids, val ids, chars).

    ``texts`` are the sources' decoded texts (plain files), or the articles as
    ``(title, text)`` pairs (dumps). The streamed token files must equal these ids."""
    if kind == "wikipedia":
        k = every_k(cfg.val_fraction)
        parts = {"train": [], "val": []}
        for n, (title, text) in enumerate(texts):
            parts["val" if n % k == k - 1 else "train"].append(f"{title}\n\n{text}")
        pieces = {s: [clean("\n\n".join(p) + "\n", cfg)] for s, p in parts.items()}
    else:
        pieces = {"train": [], "val": []}
        for text in texts:
            tr, va = split_text(clean(text, cfg, start), cfg.val_fraction)
            pieces["train"].append(tr)
            pieces["val"].append(va)
    if tokenizer_from is not None:
        tok = tokenizer_from
    elif cfg.tokenizer == "bpe":
        train_chunks = [c for p in pieces["train"] for c in chunks([p], CHUNK, lowercase=False)]
        tok = tokenizers.BPETokenizer.train(iter(train_chunks), cfg.vocab_size)
    else:
        tok = tokenizers.train_tokenizer(
            cfg.tokenizer,
            pieces["train"] + pieces["val"],
            space_prefix=cfg.space_prefix,
            min_count=cfg.min_count,
            max_vocab=cfg.max_vocab,
        )
    ids = {s: [i for p in pieces[s] for i in tok.encode(p)] for s in pieces}
    chars = {s: sum(map(len, pieces[s])) for s in pieces}
    return tok, ids["train"], ids["val"], chars
