"""Intrinsic measures of word vectors: WordSim353, SimLex-999, the Google analogies (gensim's
evaluators and gensim's own copies of the files), and a collapse measure."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

GENSIM_TEST_DATA = "test/test_data"
BENCHMARKS = {
    "wordsim353": "wordsim353.tsv",
    "simlex999": "simlex999.txt",
    "analogies": "questions-words.txt",
}
COLLAPSE_COSINE = 0.35
"""Mean cosine of frequent words above which vectors look collapsed (barely trained)."""


def benchmark_path(name: str) -> Path:
    """gensim's own copy of a word-vector benchmark (it ships in gensim's wheel)."""
    import gensim

    return Path(gensim.__file__).parent / GENSIM_TEST_DATA / BENCHMARKS[name]


@dataclass(frozen=True)
class VectorScores:
    """Intrinsic measures of word vectors, each with the share of the test it covers."""

    wordsim353: float
    """Spearman correlation with human similarity judgements (WordSim353)."""
    wordsim353_coverage: float
    simlex999: float
    """Spearman correlation on SimLex-999 (similarity, not relatedness)."""
    simlex999_coverage: float
    analogies: float
    """Accuracy on the Google analogy questions (3CosAdd) that the vocabulary covers."""
    analogies_coverage: float
    mean_cosine: float
    """Mean pairwise cosine of the words ranked 50-550: near 1 means collapsed vectors."""

    @property
    def collapsed(self) -> bool:
        return self.mean_cosine > COLLAPSE_COSINE

    def to_dict(self) -> dict:
        return {**asdict(self), "collapsed": self.collapsed}

    def __str__(self) -> str:
        def f(v, c):
            return f"{v:.3f} ({c:.0%} covered)" if c > 0 else "n/a (0% covered)"

        lines = [
            f"WordSim353 Spearman  {f(self.wordsim353, self.wordsim353_coverage)}",
            f"SimLex-999 Spearman  {f(self.simlex999, self.simlex999_coverage)}",
            f"Google analogies     {f(self.analogies, self.analogies_coverage)}",
            f"mean cosine, words ranked 50-550  {self.mean_cosine:.3f}",
        ]
        if self.collapsed:
            lines.append(
                f"warning: the vectors look collapsed (mean cosine above {COLLAPSE_COSINE}): "
                "train longer or with fewer dimensions"
            )
        return "\n".join(lines)


def word_view(kv):
    """The vectors of words, keyed lowercase without an attached space (the first, most
    frequent spelling kept), so that benchmarks written in plain words find them."""
    from gensim.models import KeyedVectors

    seen, keys, rows = set(), [], []
    for i, key in enumerate(kv.index_to_key):
        k = key.strip().lower()
        if k and k not in seen and any(c.isalnum() for c in k):
            seen.add(k)
            keys.append(k)
            rows.append(i)
    view = KeyedVectors(kv.vector_size)
    if keys:
        view.add_vectors(keys, kv.vectors[rows])
    return view


def mean_cosine(kv, first: int = 50, last: int = 550) -> float:
    """Mean cosine over all pairs of the words ranked ``first`` to ``last``."""
    v = kv.vectors[first:last].astype(np.float64)
    if len(v) < 2:
        v = kv.vectors[: last - first].astype(np.float64)
    if len(v) < 2:
        return float("nan")
    v /= np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)
    sims = v @ v.T
    n = len(v)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def evaluate_vectors(kv, files: dict[str, Path] | None = None) -> VectorScores:
    """WordSim353 and SimLex-999 Spearman correlations, Google analogy accuracy (gensim's
    evaluators and gensim's copies of the files), each with its coverage, and the collapse
    measure. ``files`` replaces any benchmark file (for tests)."""
    import logging
    import warnings

    files = {name: benchmark_path(name) for name in BENCHMARKS} | (files or {})
    view = word_view(kv)
    out = {}
    log = logging.getLogger("gensim")
    level = log.level
    log.setLevel(logging.ERROR)  # gensim logs every question it skips
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant correlation inputs, empty overlaps
            for name in ("wordsim353", "simlex999"):
                try:
                    _, rho, oov = view.evaluate_word_pairs(str(files[name]), case_insensitive=True)
                except ValueError:  # gensim: not one pair is in the vocabulary
                    rho, oov = (float("nan"),), 100.0
                out[name] = float(rho[0]) if oov < 100 else float("nan")
                out[f"{name}_coverage"] = 1.0 - oov / 100
            score, sections = view.evaluate_word_analogies(
                str(files["analogies"]), case_insensitive=True
            )
    finally:
        log.setLevel(level)
    lines = Path(files["analogies"]).read_text(encoding="utf-8").splitlines()
    total = sum(1 for line in lines if line.strip() and not line.startswith(":"))
    covered = sum(
        len(s["correct"]) + len(s["incorrect"])
        for s in sections
        if s["section"] == "Total accuracy"
    )
    out["analogies"] = float(score) if covered else float("nan")
    out["analogies_coverage"] = covered / max(total, 1)
    return VectorScores(**out, mean_cosine=mean_cosine(view))
