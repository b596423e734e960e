"""A prepared data folder: token files, tokenizer and ``meta.json``, read back.

::

    train.bin, val.bin   flat token ids (uint16 when the vocabulary fits, else uint32)
    tokenizer.json       the tokenizer, ids included
    meta.json            sources with their sha256, cleaning options, split rule, counts
                         (characters, tokens, <unk>s) per split, dtype, and the folder's
                         fingerprint (of its token files and tokenizer)

Also the one bits-per-character formula every figure uses (evaluation, the run summary, the
web page), so that a split's characters and predicted tokens are counted one way.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..folders import expect
from .tokenizer import Tokenizer
from .tokenizer import load as load_tokenizer_file

FILES = ("train.bin", "val.bin", "tokenizer.json", "meta.json")


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def load_meta(data_dir: str | Path) -> dict:
    """A data folder's ``meta.json``, checked against what ``prepare`` writes (a missing,
    garbled or foreign one is one clear error)."""
    path = Path(data_dir) / "meta.json"
    if not Path(data_dir).is_dir():
        raise DataError(
            f"{data_dir} is {'a file' if Path(data_dir).exists() else 'missing'}; give a data "
            "folder written by `wordgpt prepare`"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{data_dir} has no meta.json; run `wordgpt prepare --out {data_dir}` first"
        ) from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path} cannot be read ({e}); prepare the folder again") from None
    if why := meta_problem(meta):
        raise DataError(f"{path} is not what `wordgpt prepare` writes: {why}; prepare it again")
    return meta


def fingerprint(data_dir: str | Path) -> str:
    """What a run remembers of the data it trained on: a hash of the folder's token files
    and tokenizer (preparing the same text the same way gives the same one)."""
    h = hashlib.sha256()
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        with open(Path(data_dir) / name, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:16]


def check_fingerprint(data_dir: str | Path, expected: str | None, who: str) -> None:
    """Refuse a data folder that is not the one ``who`` (a run) was trained on: prepared
    again since, or another one at the same path (folders of older versions, and runs that
    did not record it, pass)."""
    found = load_meta(data_dir).get("fingerprint")
    if expected and found and found != expected:
        raise DataError(
            f"{data_dir} is not the data {who} was trained on (it was prepared again since: "
            "its token files differ); prepare it again as the run's config.json says"
        )


def meta_problem(meta) -> str | None:
    """What is wrong with a ``meta.json``'s content, or None."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    checks = [
        ("vocab_size", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
        ("dtype", lambda v: v in ("uint16", "uint32")),
        ("config", lambda v: isinstance(v, dict)),
        ("splits", lambda v: isinstance(v, dict) and {"train", "val"} <= set(v)),
    ]
    for key, ok in checks:
        if key not in meta or not ok(meta[key]):
            return f"{key!r} is missing or wrong"
    for split in ("train", "val"):
        counts = meta["splits"][split]
        for key in ("tokens", "chars"):
            v = counts.get(key) if isinstance(counts, dict) else None
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return f"splits.{split}.{key} is missing or wrong"
    if meta["dtype"] != token_dtype(meta["vocab_size"]).name:
        return f"dtype {meta['dtype']} does not fit a vocabulary of {meta['vocab_size']:,}"
    return None


def load_split(data_dir: str | Path, split: str, check_ids: bool = True) -> np.memmap:
    """A split's token ids, memory-mapped (nothing is read until used). The file's size must
    match ``meta.json``, and (``check_ids``) every id must be below the vocabulary size:
    a damaged or foreign file is one clear error, never a crash in the model."""
    meta = load_meta(data_dir)
    path = Path(data_dir) / f"{split}.bin"
    if not path.is_file():
        raise DataError(f"no {split}.bin in {data_dir}; run `wordgpt prepare` again")
    dtype = np.dtype(meta["dtype"])
    size, tokens = path.stat().st_size, meta["splits"][split]["tokens"]
    if size != tokens * dtype.itemsize:
        raise DataError(
            f"{path} holds {size:,} bytes, not the {tokens:,} {dtype.name} ids meta.json counts; "
            "it is damaged or from another folder: prepare again"
        )
    if size == 0:  # a file prepared for evaluation only has no train split
        return np.zeros(0, dtype=dtype)
    if check_ids and (top := largest_id(path, dtype)) >= meta["vocab_size"]:
        raise DataError(
            f"{path} has id {top:,}, outside the vocabulary of {meta['vocab_size']:,}: it is "
            "damaged or from another folder; prepare again"
        )
    return np.memmap(path, dtype=dtype, mode="r")


def largest_id(path: Path, dtype: np.dtype, block: int = 1 << 22) -> int:
    """The largest id in a token file, read in blocks (a memory map would keep every page
    it touched resident)."""
    top = 0
    with open(path, "rb") as f:
        while (ids := np.fromfile(f, dtype=dtype, count=block)).size:
            top = max(top, int(ids.max()))
    return top


UNK_WORDS = {"train": "train.unk.jsonl", "val": "val.unk.jsonl"}
"""Each split's file of its <unk> words in order, one JSON string a line: what adaptive
evaluation's spelling model reads (:meth:`.spelling.Spelling.read_bits`), and what the
character models count and the character mixer is fitted on (:mod:`wordgpt.use.chars`)."""


def load_unk_words(data_dir: str | Path, split: str) -> list[str] | None:
    """The ``split``'s <unk> words in order, when the data folder keeps them (folders
    prepared before they were kept have none: val's before one version, train's before a
    later one)."""
    path = Path(data_dir) / UNK_WORDS.get(split, "")
    if split not in UNK_WORDS or not path.is_file():
        return None
    words = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                w = json.loads(line)
                if not isinstance(w, str) or not w:
                    raise ValueError(f"line {n} is no word: {line.strip()[:40]!r}")
                words.append(w)
    except (OSError, ValueError) as e:  # JSON errors and undecodable bytes are ValueErrors
        raise DataError(f"{path} is damaged ({e}); prepare the data folder again") from None
    return words


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of a data folder or a run folder (or a tokenizer.json file)."""
    path = Path(path)
    if path.is_file():
        return load_tokenizer_file(path)
    expect(path, ("data", "run"), "the tokenizer folder", "give a prepared data folder or a run")
    file = path / "tokenizer.json"
    if not file.is_file():
        raise DataError(f"no tokenizer.json in {path}; give a prepared data folder or a run")
    return load_tokenizer_file(file)


# ------------------------------------------------------------------------ bits per character


def token_rows(data: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` tokens from each of ``starts`` in a token file, as int64 rows
    ``(len(starts), length)``: one vectorised gather, no Python loop per row or token."""
    return data[np.asarray(starts)[:, None] + np.arange(length)].astype(np.int64)


def bits_per_char(total_nats: float, chars: int, spell_bits: float = 0.0) -> float:
    """Bits per character of a text: the model's total cross-entropy in bits, plus the bits
    to spell its <unk> tokens (:mod:`.spelling`) and those of its line breaks (:mod:`.lines`),
    over its characters."""
    return (total_nats / math.log(2) + spell_bits) / max(chars, 1)


def split_bits_per_char(split: dict, mean_loss: float) -> float:
    """Bits per character of a whole split from a mean loss per predicted token (every token
    but the first is predicted), with the split's counts from ``meta.json`` (its <unk>
    spellings and line breaks included)."""
    predicted = max(split["tokens"] - 1, 1)
    return bits_per_char(mean_loss * predicted, split["chars"], side_bits(split))


def side_bits(split: dict) -> float:
    """What a split's static figures add to the token model's bits (meta.json's counts): the
    <unk> words' spelling and the line model's bits."""
    return split.get("unk_spell_bits", 0.0) + line_bits(split)[0]


def line_bits(split: dict) -> tuple[float, float]:
    """A split's line breaks' bits (meta.json's counts; :mod:`.lines`): static, and read as
    it goes (the static ones for a folder that has no reading); 0 without a line model."""
    static = split.get("line_bits", 0.0)
    return static, split.get("line_bits_read", static)
