"""Word vectors mapped onto a vocabulary: which token finds which vector, and the coverage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..corpus.tokenfiles import load_split, load_tokenizer
from .files import load_vectors


@dataclass(frozen=True)
class Coverage:
    tokens: float
    """Fraction of vocabulary entries that found a vector."""
    weighted: float
    """Fraction of corpus tokens (by frequency) whose vocabulary entry found a vector."""
    exact: int
    lowercase: int
    missing_top: list[str]
    """The most frequent tokens without a vector."""

    def __str__(self) -> str:
        miss = ", ".join(repr(t) for t in self.missing_top[:10])
        return (
            f"coverage: {self.tokens:.1%} of the vocabulary ({self.exact:,} exact, "
            f"{self.lowercase:,} by lowercase), {self.weighted:.1%} of the corpus tokens; "
            f"most frequent missing: {miss}"
        )


def align(kv, vocab: list[str], counts: np.ndarray | None = None):
    """Rows of ``kv`` for each vocabulary token: exact match (the token as it is, then
    without an attached space), then lowercase. Returns (rows (V,) with -1 where missing,
    Coverage)."""
    rows = np.full(len(vocab), -1, dtype=np.int64)
    exact = lower = 0
    index = kv.key_to_index
    for i, token in enumerate(vocab):
        key = token.strip() or token
        if (j := index.get(token, index.get(key))) is not None:
            rows[i] = j
            exact += 1
        elif key.lower() in index:
            rows[i] = index[key.lower()]
            lower += 1
    counts = np.ones(len(vocab)) if counts is None else np.asarray(counts, dtype=np.float64)
    found = rows >= 0
    missing = np.where(~found)[0]
    missing = missing[np.argsort(-counts[missing], kind="stable")]
    cov = Coverage(
        float(found.mean()),
        float(counts[found].sum() / max(counts.sum(), 1)),
        exact,
        lower,
        [vocab[i] for i in missing[:20]],
    )
    return rows, cov


def data_coverage(path, data_dir, limit: int | None = None, trust_pickle: bool = False) -> Coverage:
    """How much of a prepared corpus's vocabulary the vectors at ``path`` cover."""
    train = np.asarray(load_split(data_dir, "train"))  # a clear error if not prepared
    tok = load_tokenizer(data_dir)
    counts = np.bincount(train, minlength=tok.vocab_size)
    return align(load_vectors(path, limit, trust_pickle), tok.token_strings(), counts)[1]
