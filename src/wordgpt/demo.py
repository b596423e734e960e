"""The main job (``make demo``): prepare a book, train for 90 s the recipe that ``train``
picks for that budget on this machine (scaled by its measured speed, so a slow laptop gets a
smaller model rather than a warm-up it never leaves), evaluate it, and print a sample with its
copied spans.

Don Quixote where it can be found or downloaded; otherwise (offline, no copy) the Wikipedia
sample that ships inside gensim. The defaults everywhere else (space-prefixed word tokens,
the recommended model); a data folder made by an earlier demo with the same settings is
reused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import load, prepare, train
from .config import DataConfig
from .corpus.build import load_prepared
from .corpus.tokenfiles import load_meta
from .errors import DataError, InterruptError, WordGPTError
from .folders import kind
from .logs import console, log
from .model.sampling import SHOWCASE
from .settings import to_dict

DEMO_SECONDS = 90.0
"""The demo's training budget."""
PROMPTS = {"don-quixote": "the knight", "wikipedia-sample": "the history of"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="don-quixote")
    ap.add_argument(
        "--preset",
        default=None,
        help="[default: the recipe measured best for the budget on this machine]",
    )
    ap.add_argument("--time-budget", type=float, default=DEMO_SECONDS, help="seconds")
    ap.add_argument("--max-iters", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    console()
    try:
        run(args)
    except WordGPTError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except InterruptError as e:
        print(" ".join(str(e).split()), file=sys.stderr)
        sys.exit(e.exit_code)


def prepared(workdir: Path, name: str):
    """The book's data folder: the one made by an earlier demo, or a new one."""
    out, cfg = workdir / "data" / f"{name}-word-sp", DataConfig(dataset=(name,))
    if kind(out) == "data" and load_meta(out).get("config") == to_dict(cfg):
        p = load_prepared(out)
        log.info(f"{p}\n")
        return p
    return prepare(out, cfg, overwrite=True)


def run(args: argparse.Namespace) -> None:
    dataset = args.dataset
    try:
        p = prepared(args.workdir, dataset)
    except DataError as e:
        if dataset != "don-quixote":
            raise
        log.warning(f"note: {e}\nnote: training on the bundled Wikipedia sample instead")
        dataset = "wikipedia-sample"
        p = prepared(args.workdir, dataset)
    out = args.workdir / "runs" / f"{dataset}-demo"
    limits = {"max_iters": args.max_iters} if args.max_iters is not None else {}
    train(p.out, out, args.preset, overwrite=True, time_budget=args.time_budget, **limits)
    m = load(out)
    print(f"\n{m.evaluate('val')}\n")
    prompt = PROMPTS.get(dataset, "the")
    s = SHOWCASE
    print(f"sample (prompt {prompt!r}, temperature {s.temperature}, top-k {s.top_k}, "
          f"seed {s.seed}):\n")  # fmt: skip
    g = m.generate(prompt, SHOWCASE)
    print(prompt + g.text)
    if g.copies is not None:
        print(f"\n{g.copies.summary()}")
    print(f"\nreport: {out / 'report.html'}")
    print(f"more: wordgpt sample {out} --prompt '...'   |   wordgpt serve {out.parent}")


if __name__ == "__main__":
    main()
