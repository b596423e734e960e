"""Word2Vec settings compared on small corpora with the standard intrinsic measures:
WordSim353 and SimLex-999 Spearman correlations, Google analogy accuracy (each with its
coverage), and the mean cosine of frequent words (near 1: collapsed), plus training time.

    python benchmarks/vectors.py                      # Don Quixote and the Wikipedia sample
    python benchmarks/vectors.py --datasets don-quixote --settings notebook default
    python benchmarks/vectors.py --neighbors food knight sancho wine

Settings are named below; ``default`` is wordgpt's current default, ``notebook`` the
original notebook's. Vectors learn from the training split only, as ``embed train`` does.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from common import emit, prepared, quiet

from wordgpt.config import Word2VecConfig
from wordgpt.presets import NOTEBOOK_WORD2VEC
from wordgpt.vectors.quality import evaluate_vectors
from wordgpt.vectors.queries import neighbors
from wordgpt.vectors.word2vec import train_word2vec

SETTINGS = {
    "notebook": NOTEBOOK_WORD2VEC,
    "default": Word2VecConfig(),
    "100d-5ep-mc5": Word2VecConfig(vector_size=100, epochs=5, min_count=5),
    "100d-30ep-mc1": Word2VecConfig(vector_size=100, epochs=30, min_count=1),
    "100d-30ep-mc5": Word2VecConfig(vector_size=100, epochs=30, min_count=5),
    "300d-30ep-mc5": Word2VecConfig(vector_size=300, epochs=30, min_count=5),
    "100d-30ep-mc5-w10": Word2VecConfig(vector_size=100, epochs=30, min_count=5, window=10),
    "100d-30ep-mc5-neg10": Word2VecConfig(vector_size=100, epochs=30, min_count=5, negative=10),
    "100d-30ep-mc5-s1e-4": Word2VecConfig(vector_size=100, epochs=30, min_count=5, sample=1e-4),
    "100d-60ep-mc5": Word2VecConfig(vector_size=100, epochs=60, min_count=5),
    "cbow-100d-30ep-mc5": Word2VecConfig(vector_size=100, epochs=30, min_count=5, sg=0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["don-quixote", "wikipedia-sample"])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--neighbors", nargs="*", default=[], help="print these words' neighbours")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    quiet()
    rows = []
    for dataset in args.datasets:
        data_dir = prepared("word", dataset)
        for name in args.settings:
            cfg = dataclasses.replace(SETTINGS[name], seed=args.seed)
            t = time.perf_counter()
            kv = train_word2vec(data_dir, cfg)
            seconds = time.perf_counter() - t
            s = evaluate_vectors(kv)
            rows.append(
                {
                    "dataset": dataset,
                    "settings": name,
                    "seconds": seconds,
                    "words": len(kv),
                    **s.to_dict(),
                }
            )
            if not args.json:
                print(
                    f"  {dataset} {name}: {seconds:.1f}s, WS353 {s.wordsim353:.3f}, "
                    f"SL999 {s.simlex999:.3f}, analogies {s.analogies:.3f}, "
                    f"cos {s.mean_cosine:.3f}",
                    flush=True,
                )
                for w in args.neighbors:
                    if w in kv.key_to_index:
                        near = ", ".join(f"{x} {c:.2f}" for x, c in neighbors(kv, w, 6))
                        print(f"    {w} -> {near}", flush=True)
    emit(
        rows,
        [
            ("dataset", "data", "s"),
            ("settings", "settings", "s"),
            ("seconds", "s", ".1f"),
            ("words", "words", ",d"),
            ("wordsim353", "WordSim353", ".3f"),
            ("wordsim353_coverage", "covered", ".0%"),
            ("simlex999", "SimLex-999", ".3f"),
            ("simlex999_coverage", "covered", ".0%"),
            ("analogies", "analogies", ".1%"),
            ("analogies_coverage", "covered", ".1%"),
            ("mean_cosine", "mean cos 50-550", ".3f"),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
