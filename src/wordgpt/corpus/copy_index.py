"""Does it write or copy? An index of the training split that answers "does this run of n
tokens occur in train.bin, and where" quickly, for a corpus of any size.

The index holds a 64-bit hash of every n-gram of train.bin and its position, sorted by
hash, in two flat files beside the token files (``copies-nN.hashes``, ``.positions``, and
``copies-nN.json`` last, which says what train.bin they index). It is built once, on first
use, with bounded memory: the hashes go to 256 bucket files by their top byte, then each
bucket is sorted on its own. Lookups binary-search the memory-mapped hashes (a few pages per
n-gram) and check every candidate against train.bin itself, so a hash collision never
passes for a copy. A changed train.bin is noticed (its size and time) and the index is
built again; a half-written index is never read (the json is written last).

A copied span is a maximal stretch of generated tokens that stands in train.bin verbatim:
n-grams that match at consecutive places of the training text.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_write, disk_error, temp_name
from .tokenfiles import load_meta, load_split

BLOCK = 1 << 22
"""Tokens hashed at a time while building."""
BUCKETS = 256
MAX_CANDIDATES = 256
"""Places of one n-gram checked against the training text (a boilerplate phrase may stand
thousands of times; any of them proves the copy)."""
_BASE = np.uint64(0x9E3779B97F4A7C15)


def ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit hash of each n-gram of ``ids`` (len(ids) - n + 1 of them): a polynomial in
    the ids, mixed (splitmix64) so that every bit, the top byte too, is spread."""
    if len(ids) < n:
        return np.zeros(0, dtype=np.uint64)
    x = ids.astype(np.uint64) + np.uint64(1)
    h = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _BASE + x[k : k + len(h)]
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


@dataclass(frozen=True)
class Span:
    """``length`` generated tokens from ``start`` that stand in train.bin at ``train_at``."""

    start: int
    length: int
    train_at: int


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class CopyIndex:
    """The n-gram index of a data folder's training split (see the module)."""

    def __init__(self, data_dir: Path, n: int):
        self.data_dir, self.n = Path(data_dir), n
        self.train = load_split(data_dir, "train", check_ids=False)
        base = self.data_dir / f"copies-n{n}"
        self.hashes = np.memmap(f"{base}.hashes", dtype=np.uint64, mode="r") if len(self) else None
        self.positions = (
            np.memmap(f"{base}.positions", dtype=np.uint64, mode="r") if len(self) else None
        )

    def __len__(self) -> int:
        return max(len(self.train) - self.n + 1, 0)

    @classmethod
    def open(cls, data_dir: str | Path, n: int, progress: bool = False) -> CopyIndex:
        """The index, built first if it is missing or train.bin changed since."""
        data_dir = Path(data_dir)
        info = data_dir / f"copies-n{n}.json"
        train = data_dir / "train.bin"
        try:
            ok = json.loads(info.read_text()) == {"n": n, "train": _stamp(train)}
        except (OSError, ValueError):
            ok = False
        if not ok:
            build(data_dir, n, progress)
        return cls(data_dir, n)

    def places(self, ids: np.ndarray) -> list[np.ndarray]:
        """For each n-gram of ``ids``: the positions in train.bin where it stands (checked
        token by token, at most MAX_CANDIDATES of them)."""
        hs = ngram_hashes(np.asarray(ids), self.n)
        if self.hashes is None or not len(hs):
            return [np.zeros(0, dtype=np.int64) for _ in hs]
        lo = np.searchsorted(self.hashes, hs, side="left")
        hi = np.searchsorted(self.hashes, hs, side="right")
        out, offsets = [], np.arange(self.n)
        for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
            cand = np.asarray(self.positions[a : min(b, a + MAX_CANDIDATES)], dtype=np.int64)
            if len(cand):
                grams = self.train[cand[:, None] + offsets]  # (candidates, n) read from disk
                cand = cand[(grams == np.asarray(ids[i : i + self.n])).all(axis=1)]
            out.append(cand)
        return out

    def spans(self, ids: np.ndarray, min_length: int | None = None) -> list[Span]:
        """The maximal copied spans of ``ids`` of at least ``min_length`` tokens (default:
        the index's n): runs of n-grams that stand at consecutive places in train.bin."""
        places = [set(p.tolist()) for p in self.places(ids)]
        found, i = [], 0
        while i < len(places):
            if not places[i]:
                i += 1
                continue
            alive, j = places[i], i
            while j + 1 < len(places) and (nxt := {p + 1 for p in alive} & places[j + 1]):
                alive, j = nxt, j + 1
            length = j - i + self.n
            if length >= (min_length or self.n):
                found.append(Span(i, length, min(alive) - (j - i)))
            i = j + 1
        return found

    def share(self, ids: np.ndarray) -> tuple[int, int]:
        """(n-grams of ``ids`` that stand in train.bin, n-grams of ``ids``)."""
        places = self.places(ids)
        return sum(len(p) > 0 for p in places), len(places)


def build(data_dir: Path, n: int, progress: bool = False) -> None:
    """Write the index files of ``data_dir``'s train.bin: hashes bucketed by their top byte
    in one pass, each bucket sorted in a second, the json last."""
    from tqdm.auto import tqdm

    train = load_split(data_dir, "train", check_ids=False)
    total = max(len(train) - n + 1, 0)
    base = data_dir / f"copies-n{n}"
    buckets = [temp_name(data_dir / f"copies-n{n}.bucket{b}") for b in range(BUCKETS)]
    files = {s: temp_name(Path(f"{base}.{s}")) for s in ("hashes", "positions")}
    bar = tqdm(total=2 * total, desc="copy index", unit="n-gram", unit_scale=True,
               disable=None if progress else True, leave=False)  # fmt: skip
    try:
        _bucket(train, n, buckets, bar)
        _sort_buckets(buckets, files, bar)
        for s, tmp in files.items():
            os.replace(tmp, f"{base}.{s}")
        stamp = {"n": n, "train": _stamp(data_dir / "train.bin")}
        atomic_write(f"{base}.json", json.dumps(stamp))
    except OSError as e:
        raise disk_error(e, base) from None
    finally:
        bar.close()
        for p in [*buckets, *files.values()]:
            p.unlink(missing_ok=True)


def _bucket(train: np.ndarray, n: int, buckets: list[Path], bar) -> None:
    handles = [open(p, "wb") for p in buckets]  # noqa: SIM115
    try:
        total = max(len(train) - n + 1, 0)
        for start in range(0, total, BLOCK):
            stop = min(start + BLOCK, total)
            h = ngram_hashes(np.asarray(train[start : stop + n - 1]), n)
            pos = np.arange(start, stop, dtype=np.uint64)
            top = (h >> np.uint64(56)).astype(np.int64)
            order = np.argsort(top, kind="stable")
            bounds = np.searchsorted(top[order], np.arange(BUCKETS + 1))
            for b in range(BUCKETS):
                sel = order[bounds[b] : bounds[b + 1]]
                if len(sel):
                    pairs = np.empty((len(sel), 2), dtype=np.uint64)
                    pairs[:, 0], pairs[:, 1] = h[sel], pos[sel]
                    handles[b].write(pairs.tobytes())
            bar.update(stop - start)
    finally:
        for f in handles:
            f.close()


def _sort_buckets(buckets: list[Path], files: dict[str, Path], bar) -> None:
    with open(files["hashes"], "wb") as fh, open(files["positions"], "wb") as fp:
        for b in buckets:
            pairs = np.fromfile(b, dtype=np.uint64).reshape(-1, 2)
            b.unlink()
            order = np.argsort(pairs[:, 0], kind="stable")
            fh.write(pairs[order, 0].tobytes())
            fp.write(pairs[order, 1].tobytes())
            bar.update(len(pairs))


def source_place(data_dir: str | Path, train_at: int) -> str:
    """Where a position of train.bin is, in words: the source file and how far into its
    training text (as far as meta.json tells)."""
    meta = load_meta(data_dir)
    total = max(meta["splits"]["train"]["tokens"], 1)
    starts = [(s.get("train_start", 0), s) for s in meta.get("sources", [])]
    starts = [x for x in starts if isinstance(x[0], int)] or [(0, {"dataset": "the text"})]
    start, src = max((x for x in starts if x[0] <= train_at), key=lambda x: x[0], default=starts[0])
    end = min([s for s, _ in starts if s > start], default=total)
    share = (train_at - start) / max(end - start, 1)
    return (
        f"{src.get('dataset', 'the text')}, {share:.0%} into its training text (token {train_at:,})"
    )
