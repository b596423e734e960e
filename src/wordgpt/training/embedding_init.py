"""The GPT's token embedding initialised from word vectors (Word2Vec, word2vec, GloVe,
Wikipedia2Vec), mapped onto its vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, WordGPTError
from ..logs import log
from ..vectors.align import align
from ..vectors.files import load_vectors

EMBED_STD = 0.02
"""The GPT's own init scale; loaded vectors are rescaled to it."""


def embedding_matrix(
    path,
    tok,
    n_embd: int,
    fit: str = "pca",
    limit: int | None = None,
    seed: int = 0,
    counts: np.ndarray | None = None,
    trust_pickle: bool = False,
):
    """A (V, n_embd) float32 matrix for a GPT's token embedding from the vectors at ``path``.

    Found rows take their vector; missing rows get random directions with the loaded
    vectors' mean norm. Vectors of another width are reduced by PCA (``fit="pca"``; a
    narrower set is zero-padded), or kept as they are (``fit="model"``: the model's width
    follows them). The whole matrix is then scaled to std 0.02, the GPT's own init scale,
    which keeps every cosine similarity. Vectors that are not finite, or all zero, are bad
    input (one clear error), not a diverging run. Returns (matrix, provenance dict).
    """
    kv = load_vectors(path, limit, trust_pickle=trust_pickle)
    vocab = tok.token_strings()
    rows, cov = align(kv, vocab, counts)
    log.info(f"vectors: {len(kv):,} x {kv.vector_size} from {path}; {cov}")
    found = rows >= 0
    if not found.any():
        raise WordGPTError(f"none of the vocabulary's tokens has a vector in {path}")
    # only the vectors the vocabulary uses: a pretrained file may hold millions
    used, where = np.unique(rows[found], return_inverse=True)
    vecs = kv.vectors[used].astype(np.float32)
    if not np.isfinite(vecs).all():
        raise DataError(f"{path} holds vectors that are not finite (NaN or infinity)")
    if not np.linalg.norm(vecs, axis=1).max() > 0:
        raise DataError(f"{path} holds only zero vectors for this vocabulary")
    dim = vecs.shape[1]
    target = dim if fit == "model" else n_embd
    matrix = np.empty((len(vocab), target), dtype=np.float32)
    matrix[found] = to_width(vecs, target, seed)[where]
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(((~found).sum(), target)).astype(np.float32)
    norm = np.linalg.norm(matrix[found], axis=1).mean()
    matrix[~found] = noise / np.linalg.norm(noise, axis=1, keepdims=True).clip(1e-8) * norm
    if not matrix.std() > 0:
        raise DataError(f"{path}: the vectors for this vocabulary are all alike (no spread)")
    matrix *= EMBED_STD / matrix.std()
    info = {
        "path": str(Path(path).resolve()),
        "vectors_read": len(kv),
        "dim": dim,
        "fit": fit,
        "width": target,
        "coverage_tokens": cov.tokens,
        "coverage_weighted": cov.weighted,
        "missing_top": cov.missing_top,
    }
    return matrix, info


def to_width(vecs: np.ndarray, target: int, seed: int) -> np.ndarray:
    """Vectors (n, d) as (n, target): PCA down to as many components as the vectors allow
    (at most n - 1: a few vectors span few directions), then zero-padded up to target."""
    n, dim = vecs.shape
    if dim > target:
        k = min(target, max(n - 1, 1))
        if k < dim:
            from sklearn.decomposition import PCA

            vecs = PCA(n_components=k, random_state=seed).fit_transform(vecs).astype(np.float32)
    return np.pad(vecs, ((0, 0), (0, target - vecs.shape[1]))) if vecs.shape[1] < target else vecs
