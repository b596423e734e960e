"""Word-vector files: read (gensim .kv, word2vec binary and text, Wikipedia2Vec, GloVe) and
written (gensim's format or word2vec's)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..corpus.sources import open_file
from ..errors import DataError, WordGPTError


def save_vectors(kv, path: str | Path, fmt: str = "kv") -> None:
    """``kv``: gensim's own format (keeps counts); ``word2vec-bin`` / ``word2vec-txt``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "kv":
        kv.save(str(path))
    elif fmt in ("word2vec-bin", "word2vec-txt"):
        kv.save_word2vec_format(str(path), binary=fmt == "word2vec-bin")
    else:
        raise WordGPTError(f"unknown vector format {fmt!r}; use kv, word2vec-bin or word2vec-txt")


def iter_text_vectors(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """Stream ``(word, vector)`` from a text file: word2vec text (a ``count dim`` header),
    Wikipedia2Vec text (its ``ENTITY/`` rows skipped), or GloVe (no header)."""
    path = Path(path)
    with open_file(path, "rt", encoding="utf-8", errors="replace") as f:
        first = f.readline()
        head = first.split()
        dim = None
        if len(head) == 2 and head[0].isdigit() and head[1].isdigit():
            dim = int(head[1])
            lines = f
        else:
            lines = itertools.chain([first], f)
        for line in lines:
            line = line.rstrip("\n").rstrip()
            if not line:
                continue
            if dim is None:
                dim = len(line.split(" ")) - 1
            parts = line.rsplit(" ", dim)  # a word may itself contain spaces
            if len(parts) != dim + 1:
                continue
            word = parts[0]
            if word.startswith("ENTITY/"):
                continue
            try:
                yield word, np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                continue


def load_vectors(path: str | Path, limit: int | None = None):
    """Load word vectors as gensim ``KeyedVectors``: gensim ``.kv``, word2vec binary
    (``.bin``, ``.bin.gz``), or text (word2vec, Wikipedia2Vec, GloVe; ``.txt``, ``.vec``,
    ``.bz2``, ``.gz``). ``limit`` caps how many vectors are read (the files are large)."""
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no vector file at {path}")
    name = path.name.lower()
    try:
        if name.endswith(".kv"):
            kv = KeyedVectors.load(str(path))
            if limit is not None and limit < len(kv):
                small = KeyedVectors(kv.vector_size)
                small.add_vectors(kv.index_to_key[:limit], kv.vectors[:limit])
                kv = small
            return kv
        if name.endswith((".bin", ".bin.gz", ".bin.bz2")):
            return KeyedVectors.load_word2vec_format(
                str(path), binary=True, limit=limit, unicode_errors="replace"
            )
        words, vecs = [], []
        for word, vec in iter_text_vectors(path):
            words.append(word)
            vecs.append(vec)
            if limit is not None and len(words) >= limit:
                break
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read word vectors from {path}: {e}") from None
    if not words:
        raise DataError(f"{path} has no word vectors")
    kv = KeyedVectors(len(vecs[0]))
    kv.add_vectors(words, np.stack(vecs))
    return kv
