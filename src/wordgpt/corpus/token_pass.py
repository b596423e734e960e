"""Pass 2 of ``prepare``: the clean text re-read in chunks and tokenized by worker processes,
results written in input order, so the output does not depend on the number of workers.

A new word or char vocabulary is learned on the way: each chunk's tokens get ids in order of
first appearance, the counts are summed, and at the end one ``numpy.take`` per block remaps
the ids to the frequency-ordered vocabulary. BPE is trained from the clean training text as
an iterator, then encodes in batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..fileio import disk_error, temp_name
from .clean_pass import CleanText, read_segment
from .parallel import ordered_map
from .tokenfiles import token_dtype
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
    pattern = SPACE_PREFIX_PATTERN if space_prefix else WORD_PATTERN
    ids = np.fromiter(
        (table.setdefault(t, len(table)) for t in pattern.findall(chunk)), dtype=np.uint32
    )
    return split, list(table), ids, set(chunk)


_WORKER_TOKENIZER = None


def _init_worker(tok_json: str | None) -> None:
    global _WORKER_TOKENIZER
    if tok_json is not None:
        _WORKER_TOKENIZER = from_dict(json.loads(tok_json))


def _encode_known(job: tuple[str, str]) -> tuple[str, np.ndarray, set]:
    split, chunk = job
    return split, np.asarray(_WORKER_TOKENIZER.encode(chunk), dtype=np.uint32), set(chunk)


def _chunks_by_split(ct: CleanText, size: int) -> Iterator[tuple[str, str]]:
    """``(split, chunk)`` for every chunk of clean text, read lazily, in order."""
    for seg in ct.segments:
        for chunk in read_segment(seg, size):
            yield seg.split, chunk


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

    tokenizer: Tokenizer
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
    dtype = token_dtype(tok.vocab_size)
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
    keep = [i for i in ranked if counts[i] >= cfg.min_count and tokens[i] != UNK]
    if cfg.max_vocab is not None:
        keep = keep[: cfg.max_vocab]
    table = np.zeros(len(tokens), dtype=np.int64)
    table[keep] = np.arange(1, len(keep) + 1)
    itos = [UNK, *(tokens[i] for i in keep)]
    tok = (
        WordTokenizer(itos, cfg.space_prefix, Normalizer.of(cfg))
        if cfg.tokenizer == "word"
        else CharTokenizer(itos, Normalizer.of(cfg))
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
    dtype = token_dtype(tok.vocab_size)
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
    tok = BPETokenizer.train(train, cfg.vocab_size, Normalizer.of(cfg))
    return encode_known(ct, tok, out, workers, size)
