"""Word-vector files: read (wordgpt's ``.npz``, word2vec binary and text, Wikipedia2Vec,
GloVe, and gensim's ``.kv`` only when trusted) and written (``.npz`` by default).

wordgpt's own format is a NumPy ``.npz`` archive of three plain arrays (``vectors``,
``words``, ``counts``), read with ``allow_pickle=False``: it cannot hold code. gensim's
``.kv`` is a pickle, which runs code when it is loaded, so a ``.kv`` is read only when the
caller says it trusts the file (``--trust-pickle`` on the command line); the web page never
does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..corpus.sources import open_file
from ..errors import DataError, WordGPTError
from ..fileio import atomic_path, disk_error

FORMATS = {".npz": "npz", ".kv": "kv", ".bin": "word2vec-bin", ".txt": "word2vec-txt"}
"""The format ``save_vectors`` writes for each file name ending."""


def save_vectors(kv, path: str | Path, fmt: str | None = None) -> None:
    """Write ``kv``: ``npz`` (wordgpt's own, no code inside, keeps counts), ``kv`` (gensim's
    pickle), ``word2vec-bin`` or ``word2vec-txt``; unset: from the file name's ending."""
    path = Path(path)
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt not in FORMATS.values():
        raise WordGPTError(
            f"cannot tell the vector format of {path.name}; end it in .npz (wordgpt's own), .kv, "
            ".bin or .txt, or give --format"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_error(e, path) from None
    with atomic_path(path) as tmp:
        if fmt == "npz":
            with open(tmp, "wb") as f:
                np.savez(f, **npz_arrays(kv))
        elif fmt == "kv":
            kv.save(str(tmp))
        else:
            kv.save_word2vec_format(str(tmp), binary=fmt == "word2vec-bin")


def npz_arrays(kv) -> dict[str, np.ndarray]:
    """The three arrays of wordgpt's vector format: no objects, so no pickle."""
    counts = [kv.get_vecattr(k, "count") if "count" in kv.expandos else 0 for k in kv.index_to_key]
    return {
        "vectors": np.asarray(kv.vectors, dtype=np.float32),
        "words": np.array(kv.index_to_key, dtype=str),
        "counts": np.asarray(counts, dtype=np.int64),
    }


def keyed_vectors(words: list[str], vectors: np.ndarray, counts=None):
    """gensim ``KeyedVectors`` from plain arrays (most frequent word first)."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)
    if counts is not None:
        kv.allocate_vecattrs(attrs=["count"], types=[np.int64])
        kv.expandos["count"][:] = counts
    return kv


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


def load_vectors(path: str | Path, limit: int | None = None, trust_pickle: bool = False):
    """Load word vectors as gensim ``KeyedVectors``: wordgpt's ``.npz``, word2vec binary
    (``.bin``, ``.bin.gz``), text (word2vec, Wikipedia2Vec, GloVe; ``.txt``, ``.vec``,
    ``.bz2``, ``.gz``), or, with ``trust_pickle``, gensim's ``.kv``. ``limit`` caps how many
    vectors are read (the files are large). A file that is none of these is one clear
    error, never a traceback."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give a vector file (.npz, .bin, .txt, .vec)")
    if not path.is_file():
        raise DataError(f"no vector file at {path}")
    name = path.name.lower()
    try:
        if name.endswith(".npz"):
            kv = _load_npz(path)
        elif name.endswith(".kv"):
            kv = _load_pickle(path, trust_pickle)
        elif name.endswith((".bin", ".bin.gz", ".bin.bz2")):
            from gensim.models import KeyedVectors

            kv = KeyedVectors.load_word2vec_format(
                str(path), binary=True, limit=limit, unicode_errors="replace"
            )
        else:
            kv = _load_text(path, limit)
    except (OSError, ValueError, EOFError, UnicodeDecodeError, KeyError, IndexError) as e:
        raise DataError(f"cannot read word vectors from {path}: {e}") from None
    if len(kv) == 0:
        raise DataError(f"{path} has no word vectors")
    if limit is not None and limit < len(kv):
        kv = keyed_vectors(kv.index_to_key[:limit], kv.vectors[:limit])
    return kv


def _load_npz(path: Path):
    with np.load(path, allow_pickle=False) as z:
        vectors, words = z["vectors"], z["words"]
        counts = z["counts"] if "counts" in z.files else None
    if vectors.ndim != 2 or words.ndim != 1 or len(words) != len(vectors):
        raise ValueError("its arrays do not fit (vectors n x d, words n)")
    if counts is not None and counts.shape != words.shape:
        counts = None
    return keyed_vectors([str(w) for w in words], vectors.astype(np.float32), counts)


def _load_pickle(path: Path, trust: bool):
    """gensim's own format: a pickle, so only when the caller trusts the file."""
    if not trust:
        raise DataError(
            f"{path} is a gensim .kv file: a pickle, which can run code when it is loaded. "
            "Load it only if you trust where it came from, with --trust-pickle "
            "(trust_pickle=True in Python); wordgpt's own vectors are .npz files, which hold "
            "no code"
        )
    import pickle

    from gensim.models import KeyedVectors

    try:
        kv = KeyedVectors.load(str(path))
    except (pickle.UnpicklingError, AttributeError, ImportError, TypeError) as e:
        raise DataError(f"{path} is not a gensim .kv file ({type(e).__name__})") from None
    if not isinstance(kv, KeyedVectors):
        raise DataError(f"{path} is not a gensim .kv file (it holds a {type(kv).__name__})")
    return kv


def _load_text(path: Path, limit: int | None):
    words, vecs = [], []
    for word, vec in iter_text_vectors(path):
        words.append(word)
        vecs.append(vec)
        if limit is not None and len(words) >= limit:
            break
    if not words:
        raise DataError(f"{path} has no word vectors")
    return keyed_vectors(words, np.stack(vecs))
