"""A prepared data folder: token files, tokenizer and ``meta.json``, read back.

::

    train.bin, val.bin   flat token ids (uint16 when the vocabulary fits, else uint32)
    tokenizer.json       the tokenizer, ids included
    meta.json            sources with their sha256, cleaning options, split rule, counts
                         (characters, tokens, <unk>s) per split, dtype

Also the one bits-per-character formula every figure uses (evaluation, the run summary, the
web page), so that a split's characters and predicted tokens are counted one way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import DataError
from .tokenizer import Tokenizer
from .tokenizer import load as load_tokenizer_file

FILES = ("train.bin", "val.bin", "tokenizer.json", "meta.json")


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def load_meta(data_dir: str | Path) -> dict:
    """A data folder's ``meta.json``; one clear error when it is missing."""
    path = Path(data_dir) / "meta.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{data_dir} has no meta.json; run `wordgpt prepare --out {data_dir}` first"
        ) from None


def load_split(data_dir: str | Path, split: str) -> np.memmap:
    """A split's token ids, memory-mapped (nothing is read until used)."""
    meta = load_meta(data_dir)
    path = Path(data_dir) / f"{split}.bin"
    if not path.is_file():
        raise DataError(f"no {split}.bin in {data_dir}; run `wordgpt prepare` again")
    if path.stat().st_size == 0:  # a file prepared for evaluation only has no train split
        return np.zeros(0, dtype=np.dtype(meta["dtype"]))
    return np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of a data folder or a run folder (or a tokenizer.json file)."""
    path = Path(path)
    file = path if path.is_file() else path / "tokenizer.json"
    if not file.is_file():
        raise DataError(f"no tokenizer.json in {path}; give a prepared data folder or a run")
    return load_tokenizer_file(file)


# ------------------------------------------------------------------------ bits per character


def bits_per_char(total_nats: float, chars: int) -> float:
    """Bits per character of a text: its total cross-entropy in bits over its characters."""
    return total_nats / math.log(2) / max(chars, 1)


def split_bits_per_char(split: dict, mean_loss: float) -> float:
    """Bits per character of a whole split from a mean loss per predicted token (every token
    but the first is predicted), with the split's counts from ``meta.json``."""
    predicted = max(split["tokens"] - 1, 1)
    return bits_per_char(mean_loss * predicted, split["chars"])
