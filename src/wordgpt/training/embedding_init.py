"""The GPT's token embedding initialised from word vectors (Word2Vec, word2vec, GloVe,
Wikipedia2Vec), mapped onto its vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import WordGPTError
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
    log=print,
):
    """A (V, n_embd) float32 matrix for a GPT's token embedding from the vectors at ``path``.

    Found rows take their vector; missing rows get random directions with the loaded
    vectors' mean norm. Vectors of another width are reduced by PCA (``fit="pca"``; a
    narrower set is zero-padded), or kept as they are (``fit="model"``: the model's width
    follows them). The whole matrix is then scaled to std 0.02, the GPT's own init scale,
    which keeps every cosine similarity. Returns (matrix, provenance dict).
    """
    kv = load_vectors(path, limit)
    vocab = tok.token_strings()
    rows, cov = align(kv, vocab, counts)
    log(f"vectors: {len(kv):,} x {kv.vector_size} from {path}; {cov}")
    found = rows >= 0
    if not found.any():
        raise WordGPTError(f"none of the vocabulary's tokens has a vector in {path}")
    # only the vectors the vocabulary uses: a pretrained file may hold millions
    used, where = np.unique(rows[found], return_inverse=True)
    vecs = kv.vectors[used].astype(np.float32)
    dim = vecs.shape[1]
    target = dim if fit == "model" else n_embd
    if dim > target:
        from sklearn.decomposition import PCA

        vecs = PCA(n_components=target, random_state=seed).fit(vecs).transform(vecs)
    elif dim < target:
        vecs = np.pad(vecs, ((0, 0), (0, target - dim)))
    matrix = np.empty((len(vocab), target), dtype=np.float32)
    matrix[found] = vecs[where]
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(((~found).sum(), target)).astype(np.float32)
    norm = np.linalg.norm(matrix[found], axis=1).mean()
    matrix[~found] = noise / np.linalg.norm(noise, axis=1, keepdims=True).clip(1e-8) * norm
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
