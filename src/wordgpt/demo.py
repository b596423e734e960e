"""The README's main job: prepare a book, train the `demo` preset, evaluate, print a sample.

Don Quixote where it can be found or downloaded; otherwise (offline, no copy) the Wikipedia
sample that ships inside gensim. Space-prefixed word tokens and the `demo` preset: the
project's best CPU recipe on a 90 s budget.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from . import load, prepare, train
from .config import DataConfig, to_dict
from .corpus.build import load_prepared, summary
from .corpus.tokenfiles import load_meta
from .errors import DataError, WordGPTError
from .folders import kind

PROMPTS = {"don-quixote": "the knight", "wikipedia-sample": "the history of"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="don-quixote")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--time-budget", type=float, default=None, help="seconds [default: preset]")
    ap.add_argument("--max-iters", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    try:
        run(args)
    except WordGPTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))


def run(args: argparse.Namespace) -> None:
    dataset = args.dataset

    def prep(name: str):
        """The book's data folder: the one made by an earlier demo, or a new one."""
        out, cfg = args.workdir / "data" / f"{name}-word-sp", DataConfig(dataset=(name,))
        cfg = replace(cfg, space_prefix=True)
        if kind(out) == "data" and load_meta(out).get("config") == to_dict(cfg):
            return load_prepared(out)
        return prepare(out, cfg, overwrite=True)

    try:
        p = prep(dataset)
    except DataError as e:
        if dataset != "don-quixote":
            raise
        print(f"note: {e}\nnote: training on the bundled Wikipedia sample instead")
        dataset = "wikipedia-sample"
        p = prep(dataset)
    print(summary(p), "\n")
    out = args.workdir / "runs" / f"{dataset}-demo"
    train(
        p.out,
        out,
        preset=args.preset,
        overwrite=True,
        time_budget=args.time_budget,
        max_iters=args.max_iters,
    )
    m = load(out)
    print(f"\n{m.evaluate('val')}\n")
    prompt = PROMPTS.get(dataset, "the")
    print(f"sample (prompt {prompt!r}, temperature 0.8, top-k 50, seed 1):\n")
    w = m.sample(prompt, max_new_tokens=120, temperature=0.8, top_k=50, seed=1)
    print(prompt + w.text)
    if w.copies is not None:
        print(f"\n{w.copies.summary()}")
    print(f"\nreport: {out / 'report.html'}")
    print(f"more: wordgpt sample {out} --prompt '...'   |   wordgpt serve {out.parent}")


if __name__ == "__main__":
    main()
