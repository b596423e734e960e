"""Dynamic evaluation, two ways, on a trained run's val split (its first GPT alone): the SGD
step (``wordgpt eval --adapt --adapt-rule sgd``) against Krause et al. (2019)'s RMS-normalised
step (``--adapt-rule rms``, the default), each parameter's gradient divided by its
root-mean-square gradient on the training split, with an optional decay toward the trained
weights (scaled by that RMS, relative to its mean): :mod:`wordgpt.use.adapt`.

    python benchmarks/dynamic_eval.py runs/dq                        # SGD 0.02 and a grid
    python benchmarks/dynamic_eval.py runs/dq --rms 6e-5:0 6e-5:3e-4 --json

Each row reads the whole val split once as a compressor does (each window scored, then
learned from); bits per character as ``wordgpt eval`` counts them (<unk> spellings included,
static spelling). The grid is chosen on the split it is measured on: a figure to compare the
rules by, not a held-out one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import cpu_line, emit

import wordgpt
from wordgpt.adapt_config import AdaptConfig
from wordgpt.corpus.tokenfiles import load_meta, load_split, split_bits_per_char
from wordgpt.use.adapt import Adaptation
from wordgpt.use.evaluate import adaptive_nll


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    ap.add_argument("--sgd", type=float, nargs="*", default=[0.02])
    ap.add_argument("--rms", nargs="*", default=["3e-5:0", "6e-5:0", "1e-4:0", "6e-5:3e-4",
                                                 "6e-5:1e-3", "1e-4:1e-2"])  # fmt: skip
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    m = wordgpt.load(args.run / "best.pt", device="cpu")
    data = Path(m.config["data_dir"])
    val, train = load_split(data, "val"), load_split(data, "train")
    counts, block = load_meta(data)["splits"]["val"], m.gpt.cfg.block_size
    rows = []

    def row(rule: str, f) -> None:
        t = time.perf_counter()
        bpc = split_bits_per_char(counts, float(f().mean()))
        rows.append({"rule": rule, "bpc": bpc, "seconds": time.perf_counter() - t})
        print(f"{rule}: {bpc:.4f}", flush=True)

    row("static (no step)", lambda: adaptive_nll(m.gpt, val, block, Adaptation.sgd(1e-30)))
    for lr in args.sgd:
        row(f"SGD {lr:g}", lambda lr=lr: adaptive_nll(m.gpt, val, block, Adaptation.sgd(lr)))
    rms = Adaptation.of(AdaptConfig(), m.gpt, train, block).rms  # measured once
    for spec in args.rms:
        lr, decay = (float(x) for x in spec.split(":"))
        how = Adaptation(AdaptConfig(adapt_lr=lr, adapt_decay=decay), rms)
        row(f"RMS {lr:g}, decay {decay:g}", lambda how=how: adaptive_nll(m.gpt, val, block, how))
    cols = [("rule", "rule", "s"), ("bpc", "val bits/char", ".4f"), ("seconds", "s", ".0f")]
    emit(rows, cols, args.json, {"machine": cpu_line(), "run": str(args.run)})


if __name__ == "__main__":
    main()
