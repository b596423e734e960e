"""The README's main job: prepare a book, train a short demo model, print a sample.

Don Quixote where it can be found or downloaded; otherwise the bundled Wikipedia sample.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import load, prepare, train
from .data import summary
from .errors import DataError, WordGPTError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="don-quixote")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--max-iters", type=int, default=600)
    ap.add_argument("--workdir", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    try:
        dataset = args.dataset
        try:
            p = prepare(args.workdir / "data" / f"{dataset}-word", dataset=dataset)
        except DataError as e:
            if dataset != "don-quixote":
                raise
            print(f"note: {e}\nnote: training on the bundled Wikipedia sample instead")
            dataset = "wikipedia-sample"
            p = prepare(args.workdir / "data" / f"{dataset}-word", dataset=dataset)
        print(summary(p), "\n")
        run = args.workdir / "runs" / f"{dataset}-demo"
        train(
            p.out,
            run,
            preset=args.preset,
            max_iters=args.max_iters,
            n_layer=2,
            n_head=4,
            n_embd=128,
            block_size=64,
            batch_size=16,
            lr=2e-3,
            eval_interval=max(args.max_iters // 6, 1),
        )
        m = load(run)
        print(f"\n{m.evaluate('val')}\n")
        prompt = "the knight" if dataset == "don-quixote" else "the history of"
        print(f"sample (prompt {prompt!r}, temperature 0.8, seed 1):\n")
        print(prompt + m.generate(prompt, max_new_tokens=120, temperature=0.8, top_k=50, seed=1))
    except WordGPTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
