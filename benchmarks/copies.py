"""Does it write or copy? Three measurements on Don Quixote.

1. **Chance**: the share of the val split's n-grams that stand verbatim in the training
   text, for each n: natural text of the same book, which copies only by chance. The
   default ``--copy-min`` of a tokenizer is the smallest n whose share is under 1 %.
2. **Runs**: the ``cpu`` preset (``char`` for characters) trained for each budget, then
   ``eval --copies``' figures of its best.pt: the share of n-grams of ten seeded samples
   found in train beside the val split's own share, the share of their text inside copied
   spans, and the longest span.
3. **Scale** (``--scale MB``): the copy index of the word-level corpus of that size built
   by ``benchmarks/prepare.py`` (Don Quixote repeated, so that every n-gram stands hundreds
   of times, the hardest case for lookups): build time, peak memory, size on disk, and the
   time to find the copies of one 200-token text.

    python benchmarks/copies.py                          # chance + runs at 60, 300, 900 s
    python benchmarks/copies.py --budgets 60 --tokenizers word-sp char
    python benchmarks/copies.py --no-runs --scale 1000   # the 1 GB corpus
    python benchmarks/copies.py --runs runs/a runs/b     # runs trained already
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import emit, prepared, quiet

import wordgpt
from wordgpt.corpus.build import load_prepared
from wordgpt.corpus.tokenfiles import load_split
from wordgpt.use.copies import copy_figures, split_share
from wordgpt.use.generate import COPY_MIN, find_copies

NS = {"word-sp": range(3, 13), "word": range(4, 21, 2), "char": range(10, 61, 5),
      "bpe": range(4, 21, 2)}  # fmt: skip
PRESET = {"char": "char"}


def chance(tokname: str, data_dir: Path) -> list[dict]:
    return [
        {"tokenizer": tokname, "n": n, "val_share": split_share(data_dir, "val", n)}
        for n in NS[tokname]
    ]


def trained(tokname: str, data_dir: Path, budget: float, root: Path) -> dict:
    out = root / f"{tokname}-{budget:g}"
    wordgpt.train(data_dir, out, preset=PRESET.get(tokname, "cpu"), time_budget=budget,
                  overwrite=True, progress=False)  # fmt: skip
    return figures(out, tokname)


def figures(out: Path, tokname: str) -> dict:
    """``eval --copies``' figures of a run's best.pt, with its budget and steps."""
    m = wordgpt.load(out, "best")
    f = copy_figures(m)
    train = m.config["train"]
    summary = json.loads((out / "summary.json").read_text())
    return {
        "tokenizer": tokname,
        "run": out.name,
        "budget_s": train.get("stop", train).get("time_budget"),  # older runs: a flat dict
        "steps": summary["step"],
        "val_bpc": m.evaluate("val").bits_per_char,
        "n": f["n"],
        "sample_share": f["sample_ngrams_in_train"],
        "val_share": f["val_ngrams_in_train"],
        "copied_text": f["sample_text_copied"],
        "longest": f["longest"]["tokens"] if f["longest"] else 0,
    }


BUILD = """
import resource, sys, time
from wordgpt.corpus.copy_index import CopyIndex
t = time.perf_counter()
CopyIndex.open(sys.argv[1], int(sys.argv[2]))
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def scale(mb: int, n: int, keep: Path | None) -> dict:
    """Build the index of an ``mb`` MB corpus in a child process (its peak memory is the
    child's own maximum resident set), then time lookups of val slices of 200 tokens."""
    sys.path.insert(0, str(Path(__file__).parent))
    from prepare import book_corpus

    work = Path(keep or tempfile.mkdtemp(prefix="wordgpt-copies-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"dq-{mb}mb-word-sp"
    if not (data / "meta.json").is_file():
        wordgpt.prepare(data, dataset=str(book_corpus(mb, work)), tokenizer="word",
                        space_prefix=True, workers=2, progress=False)  # fmt: skip
    for f in data.glob("copies-*"):
        f.unlink()
    p = subprocess.run([sys.executable, "-c", BUILD, str(data), str(n)], capture_output=True,
                       text=True, check=True)  # fmt: skip
    build_s, peak_kb = p.stdout.split()[-2:]
    tok = load_prepared(data).tokenizer
    val = np.asarray(load_split(data, "val", check_ids=False))
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(val) - 200, 10)
    t = time.perf_counter()
    for s in starts:
        find_copies(tok, data, val[s : s + 200].tolist(), n)
    lookup = (time.perf_counter() - t) / len(starts)
    size = sum(f.stat().st_size for f in data.glob(f"copies-n{n}.*"))
    train_tokens = len(load_split(data, "train", check_ids=False))
    return {
        "corpus_mb": mb,
        "train_tokens": train_tokens,
        "n": n,
        "build_s": float(build_s),
        "peak_mb": int(peak_kb) / 1e3,
        "index_gb": size / 1e9,
        "lookup_ms": lookup * 1e3,
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tokenizers", nargs="+", default=["word-sp"], choices=sorted(NS))
    ap.add_argument("--budgets", type=float, nargs="+", default=[60.0, 300.0, 900.0])
    ap.add_argument("--no-runs", action="store_true", help="only the chance baseline (and --scale)")
    ap.add_argument(
        "--runs", type=Path, nargs="+", default=None, help="measure these trained runs instead"
    )
    ap.add_argument("--scale", type=int, nargs="*", default=[], help="corpus sizes in MB")
    ap.add_argument("--scale-dir", type=Path, default=None, help="keep the scale corpus here")
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    quiet()
    root = args.out or Path(tempfile.mkdtemp(prefix="wordgpt-copies-"))
    for tokname in args.tokenizers:
        data = prepared(tokname)
        rows = chance(tokname, data)
        pick = next((r["n"] for r in rows if r["val_share"] < 0.01), None)
        emit(rows, [("tokenizer", "tokens", "s"), ("n", "n", "d"),
                    ("val_share", "val n-grams in train", ".2%")],
             args.json, {"smallest n under 1 %": pick})  # fmt: skip
        if args.no_runs:
            continue
        if args.runs:
            runs = [figures(r, tokname) for r in args.runs]
        else:
            runs = [trained(tokname, data, b, root) for b in args.budgets]
        emit(runs, [("run", "run", "s"), ("budget_s", "budget s", ".0f"),
                    ("steps", "steps", ",d"), ("val_bpc", "val bits/char", ".4f"),
                    ("n", "n", "d"), ("sample_share", "sample n-grams in train", ".2%"),
                    ("val_share", "val n-grams in train", ".2%"),
                    ("copied_text", "sample text in copied spans", ".1%"),
                    ("longest", "longest span", "d")],
             args.json, {"runs in": str(root)})  # fmt: skip
    if args.scale:
        rows = [scale(mb, COPY_MIN["word-sp"], args.scale_dir) for mb in args.scale]
        emit(rows, [("corpus_mb", "corpus MB", "d"), ("train_tokens", "train tokens", ",d"),
                    ("n", "n", "d"), ("build_s", "build s", ".1f"),
                    ("peak_mb", "peak memory MB", ",.0f"), ("index_gb", "index GB", ".2f"),
                    ("lookup_ms", "lookup ms per 200 tokens", ".1f")],
             args.json)  # fmt: skip


if __name__ == "__main__":
    main()
