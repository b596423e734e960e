"""Pass 2 of ``prepare``: the clean text re-read in chunks and tokenized by worker processes,
results written in input order, so the output does not depend on the number of workers.

A new word or char vocabulary is learned on the way: each chunk's tokens get ids in order of
first appearance, the counts are summed, and at the end one ``numpy.take`` per block remaps
the ids to the frequency-ordered vocabulary. BPE is trained from the clean training text as
an iterator, then encodes in batches.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..fileio import disk_error, temp_name
from .clean_pass import CleanText, read_segment
from .lines import Breaks, LineCounts, as_spaces, break_points
from .marks import mark
from .parallel import ordered_map
from .spelling import lexicon_weights
from .tokenfiles import UNK_WORDS, token_dtype
from .tokenizer import (
    SPACE_PREFIX_PATTERN,
    UNK,
    WORD_PATTERN,
    BPETokenizer,
    CharTokenizer,
    Normalizer,
    Tokenizer,
    WordTokenizer,
    from_dict,
)

REMAP_BLOCK = 1 << 22
"""Token ids remapped per numpy.take."""


def _first_ids(job: tuple) -> tuple[tuple, list[str], np.ndarray, set, Breaks | None]:
    """A chunk's tokens as ids in order of first appearance, the tokens themselves, the
    chunk's characters and, when it marks, its break points (:mod:`.lines`; with the chunk's
    tag, (split, source), passed through). Runs in a worker."""
    tag, raw, kind, space_prefix, marks = job
    chunk = mark(as_spaces(raw)) if marks else raw
    breaks = break_points(raw) if marks else None
    if kind == "char":
        cps = np.frombuffer(chunk.encode("utf-32-le"), dtype=np.uint32)
        uniq, first, inv = np.unique(cps, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        tokens = [chr(c) for c in uniq[order]]
        return tag, tokens, rank[inv].astype(np.uint32), set(raw), breaks
    table: dict[str, int] = {}
    pattern = SPACE_PREFIX_PATTERN if space_prefix else WORD_PATTERN
    ids = np.fromiter(
        (table.setdefault(t, len(table)) for t in pattern.findall(chunk)), dtype=np.uint32
    )
    return tag, list(table), ids, set(raw), breaks


_WORKER_TOKENIZER = None


def _init_worker(tok_json: str | None) -> None:
    global _WORKER_TOKENIZER
    if tok_json is not None:
        _WORKER_TOKENIZER = from_dict(json.loads(tok_json))


def _encode_known(job: tuple) -> tuple[tuple, np.ndarray, set, list[str], Breaks | None]:
    """A chunk's ids with a known tokenizer, its characters, its unknown tokens in order and
    its break points when the tokenizer has a line model (with the chunk's tag passed
    through)."""
    tag, chunk = job
    tok = _WORKER_TOKENIZER
    ids = np.asarray(tok.encode(chunk), dtype=np.uint32)
    breaks = break_points(tok.normalizer(chunk)) if tok.lines is not None else None
    return tag, ids, set(chunk), tok.unknown_words(chunk), breaks


def _chunks_by_split(ct: CleanText, size: int) -> Iterator[tuple[tuple[str, int], str]]:
    """``((split, source), chunk)`` for every chunk of clean text, read lazily, in order."""
    for seg in ct.segments:
        for chunk in read_segment(seg, size):
            yield (seg.split, seg.source), chunk


class Starts:
    """Where each source's training text starts in train.bin (token offsets)."""

    def __init__(self):
        self.at: dict[int, int] = {}

    def see(self, tag: tuple[str, int], train_tokens: int) -> str:
        split, source = tag
        if split == "train":
            self.at.setdefault(source, train_tokens)
        return split


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


class _WordsWriter:
    """Words appended to a temporary file, one JSON string a line (a split's <unk> words, in
    order: what adaptive evaluation's spelling model reads, and the character models)."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def write(self, words: list[str]) -> None:
        try:
            self.f.write("".join(json.dumps(w, ensure_ascii=False) + "\n" for w in words))
        except OSError as e:
            raise disk_error(e, self.path) from None

    def close(self) -> None:
        self.f.close()


@dataclass
class Encoded:
    """Pass 2's result: token ids in temporary files, by split."""

    tokenizer: Tokenizer
    files: dict[str, Path]
    dtype: np.dtype
    unique_chars: int
    unk: dict[str, int]
    tokens: dict[str, int]
    spell_bits: dict[str, float]
    """By split: the bits to spell every token that became <unk> (see :mod:`.spelling`)."""
    train_starts: dict[int, int]
    """Where each source's training text starts in train.bin."""
    unk_words: dict[str, Path]
    """By split, its <unk> words in order (temporary files, JSON lines)."""
    lines: dict | None = None
    """By split, its line breaks and their bits, when the tokenizer has a line model
    (:meth:`.lines.LineCounts.split_bits`)."""


def encode_new_vocab(ct: CleanText, cfg: DataConfig, out: Path, workers: int, size: int) -> Encoded:
    """Word or char tokens with a vocabulary learned on the way from the training split
    only (first-appearance ids, remapped to frequency order at the end): a token seen only
    in val is <unk> there, and is charged its spelling."""
    index: dict[str, int] = {}
    counts = {"train": np.zeros(0, dtype=np.int64), "val": np.zeros(0, dtype=np.int64)}
    chars: set[str] = set()
    files = {s: temp_name(out / f"{s}.ids") for s in ("train", "val")}
    writers = {s: _IdsWriter(p, np.dtype(np.uint32)) for s, p in files.items()}
    marks = marking(cfg)
    jobs = ((tag, c, cfg.tokenizer, cfg.space_prefix, marks)
            for tag, c in _chunks_by_split(ct, size))  # fmt: skip
    starts, lines = Starts(), LineCounts()
    try:
        for tag, tokens, local, seen, breaks in ordered_map(_first_ids, jobs, workers):
            split = starts.see(tag, writers["train"].n)
            if breaks is not None:
                lines.see(split, breaks)
            table = np.fromiter(
                (index.setdefault(t, len(index)) for t in tokens), np.int64, len(tokens)
            )
            ids = table[local] if len(local) else np.zeros(0, np.int64)
            c = counts[split]
            c = np.concatenate([c, np.zeros(len(index) - len(c), np.int64)])
            counts[split] = c + np.bincount(ids, minlength=len(c))
            writers[split].write(ids)
            chars |= seen
    finally:
        for w in writers.values():
            w.close()
    tokens_by_id = list(index)
    for split in counts:  # both as long as the index
        counts[split] = np.pad(counts[split], (0, len(index) - len(counts[split])))
    tok, table = vocabulary(tokens_by_id, counts["train"], cfg, lines.counts)
    dtype = token_dtype(tok.vocab_size)
    final, unk, n = {}, {}, {}
    words = {s: _WordsWriter(temp_name(out / UNK_WORDS[s])) for s in files}
    try:
        for split, path in files.items():
            final[split] = temp_name(out / f"{split}.bin")
            unk_out = (tokens_by_id, words[split])
            unk[split], n[split] = remap(path, final[split], table, dtype, unk_out)
            path.unlink()
    finally:
        for w in words.values():
            w.close()
    spell = {s: spell_bits(tok, tokens_by_id, counts[s], table == 0) for s in counts}
    lines_out = lines.split_bits() if marks else None
    paths = {s: w.path for s, w in words.items()}
    return Encoded(tok, final, dtype, len(chars), unk, n, spell, starts.at, paths, lines_out)


def spell_bits(tok, tokens: list[str], counts: np.ndarray, is_unk: np.ndarray) -> float:
    """The bits to spell every occurrence of the tokens that became <unk>."""
    where = np.flatnonzero(is_unk & (counts > 0))
    if not len(where):
        return 0.0
    bits = tok.spelling().bits_many([tokens[i] for i in where])
    return float(np.dot(counts[where].astype(np.float64), bits))


def vocabulary(tokens: list[str], counts: np.ndarray, cfg: DataConfig, lines=None):
    """The frequency-ordered vocabulary (ties by the token) of the training split, as the
    in-memory tokenizer builds it, and the table from first-appearance ids to its ids (0,
    <unk>, for the tokens left out). The training tokens left out (by min_count or
    max_vocab) go with the tokenizer, for its spelling model; so do the line model's
    ``lines`` counts when it marks."""
    ranked = [i for i in sorted(range(len(tokens)), key=lambda i: (-counts[i], tokens[i]))
              if counts[i] > 0 and tokens[i] != UNK]  # fmt: skip
    keep = [i for i in ranked if counts[i] >= cfg.min_count]
    if cfg.max_vocab is not None:
        keep = keep[: cfg.max_vocab]
    kept = set(keep)
    table = np.zeros(len(tokens), dtype=np.int64)
    table[keep] = np.arange(1, len(keep) + 1)
    itos = [UNK, *(tokens[i] for i in keep)]
    rare = [tokens[i] for i in ranked if i not in kept]
    lam, probs = lexicon_weights({tokens[i]: int(counts[i]) for i in ranked}, rare)
    lexicon = {"lexicon_weight": lam, "rare_probs": probs if len(set(probs)) > 1 else None}
    norm, marks = Normalizer.of(cfg), marking(cfg)
    lexicon["lines"] = lines if marks else None
    if cfg.tokenizer == "word":
        return WordTokenizer(itos, cfg.space_prefix, norm, rare, **lexicon, marks=marks), table
    return CharTokenizer(itos, norm, rare, **lexicon, marks=marks), table


def marking(cfg: DataConfig) -> bool:
    """Whether the tokenizer writes marks: asked for, and the text keeps capitals or line
    breaks (a lowercased text on one line has nothing to mark, and its tokenizer stays as
    it always was)."""
    return cfg.marks and not (cfg.lowercase and cfg.newlines_to_spaces)


def remap(src: Path, dst: Path, table: np.ndarray, dtype: np.dtype,
          unk_out: tuple[list[str], _WordsWriter] | None = None) -> tuple[int, int]:  # fmt: skip
    """Rewrite first-appearance ids as vocabulary ids, a block at a time, with plain reads
    (a memory map would keep every page it touched resident); (<unk>s, tokens). With
    ``unk_out`` (the tokens by first-appearance id, a writer) the <unk> words are written
    in order."""
    w = _IdsWriter(dst, dtype)
    unk = n = 0
    try:
        with open(src, "rb") as f:
            while (block := np.fromfile(f, dtype=np.uint32, count=REMAP_BLOCK)).size:
                ids = np.take(table, block)
                unk += int((ids == 0).sum())
                if unk_out is not None:
                    tokens, words = unk_out
                    words.write([tokens[i] for i in block[ids == 0]])
                n += ids.size
                w.write(ids)
    finally:
        w.close()
    return unk, n


def encode_known(ct: CleanText, tok, out: Path, workers: int, size: int,
                 count_lines: bool = False) -> Encoded:  # fmt: skip
    """Tokens of an existing tokenizer (``--tokenizer-from``, or a trained BPE): unknown
    words become <unk>. Its line model codes the line breaks; with ``count_lines`` (a new
    tokenizer) it is counted on the way instead, as a new vocabulary's is."""
    dtype = token_dtype(tok.vocab_size)
    files = {s: temp_name(out / f"{s}.bin") for s in ("train", "val")}
    writers = {s: _IdsWriter(p, dtype) for s, p in files.items()}
    unk, chars = {"train": 0, "val": 0}, set()
    unknown: dict[str, Counter] = {"train": Counter(), "val": Counter()}
    tok_json = json.dumps(tok.to_dict(), ensure_ascii=False)
    jobs = _chunks_by_split(ct, size)
    starts = Starts()
    lines = None
    if tok.lines is not None:
        lines = LineCounts(None if count_lines else tok.lines)
    words = {s: _WordsWriter(temp_name(out / UNK_WORDS[s])) for s in files}
    try:
        for tag, ids, seen, missing, breaks in ordered_map(
            _encode_known, jobs, workers, _init_worker, (tok_json,)
        ):
            split = starts.see(tag, writers["train"].n)
            if lines is not None:
                lines.see(split, breaks)
            writers[split].write(ids)
            if tok.kind != "bpe":
                unk[split] += int((ids == 0).sum())
            unknown[split].update(missing)
            words[split].write(missing)
            chars |= seen
    finally:
        for w in [*writers.values(), *words.values()]:
            w.close()
    spell = {s: spelled(tok, c) for s, c in unknown.items()}
    n = {s: w.n for s, w in writers.items()}
    lines_out = lines.split_bits() if lines is not None else None
    if count_lines and lines is not None:
        tok.lines = lines.counts
    paths = {s: w.path for s, w in words.items()}
    return Encoded(tok, files, dtype, len(chars), unk, n, spell, starts.at, paths, lines_out)


def spelled(tok, unknown: Counter) -> float:
    """The bits to spell every occurrence of ``unknown`` tokens with ``tok``'s model."""
    if not unknown:
        return 0.0
    words = list(unknown)
    bits = tok.spelling().bits_many(words)
    return float(np.dot([unknown[w] for w in words], bits)) if words else 0.0


def encode_bpe(ct: CleanText, cfg: DataConfig, out: Path, workers: int, size: int) -> Encoded:
    """BPE: trained from the clean training text as an iterator (Hugging Face tokenizers runs
    its own threads), then encoded chunk by chunk in worker processes."""
    train = (c for (split, _), c in _chunks_by_split(ct, size) if split == "train")
    tok = BPETokenizer.train(train, cfg.vocab_size, Normalizer.of(cfg), marking(cfg))
    return encode_known(ct, tok, out, workers, size, count_lines=True)
