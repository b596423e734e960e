"""Dynamic evaluation, two ways, on a trained run's val split (its first GPT alone): the SGD
step of ``wordgpt eval --adapt`` against Krause et al. (2019)'s RMS-normalised step, each
parameter's gradient divided by its root-mean-square gradient on the training split, with an
optional decay toward the trained weights (scaled by that RMS, relative to its mean).

    python benchmarks/dynamic_eval.py runs/dq                        # SGD 0.02 and a grid
    python benchmarks/dynamic_eval.py runs/dq --rms 6e-5:0 6e-5:3e-4 --json

Each row reads the whole val split once as a compressor does (each window scored, then
learned from); bits per character as ``wordgpt eval`` counts them (<unk> spellings included,
static spelling). The grid is chosen on the split it is measured on: a figure to compare the
rules by, not a held-out one.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from common import cpu_line, emit

import wordgpt
from wordgpt.corpus.tokenfiles import load_meta, load_split, split_bits_per_char
from wordgpt.use.evaluate import adaptive_nll, windows

MS_WINDOWS = 64
"""Training windows whose squared gradients, averaged, give the RMS of each parameter."""
EPS_SHARE = 0.1
"""The RMS step divides by RMS + this share of the mean RMS (a parameter the training
windows barely moved, a rare word's embedding, must not take a giant step)."""


def mean_square_grads(model, train: np.ndarray, block: int) -> list[torch.Tensor]:
    """Each parameter's mean squared gradient over MS_WINDOWS training windows."""
    ms = [torch.zeros_like(p) for p in model.parameters()]
    model.eval()
    for at in np.random.default_rng(0).integers(0, len(train) - block - 1, MS_WINDOWS):
        row = torch.from_numpy(train[at : at + block + 1].astype(np.int64))[None]
        model.zero_grad(set_to_none=True)
        model(row[:, :-1], row[:, 1:], reduction="none").mean().backward()
        for s, p in zip(ms, model.parameters(), strict=True):
            if p.grad is not None:
                s += p.grad.detach() ** 2 / MS_WINDOWS
    model.zero_grad(set_to_none=True)
    return ms


def rms_nll(model, data: np.ndarray, block: int, lr: float, decay: float, ms) -> np.ndarray:
    """The cross-entropy of each of ``data[1:]`` with the RMS-normalised step: as
    :func:`wordgpt.use.evaluate.adaptive_nll`, the update ``-lr g / (rms + eps)`` and
    ``decay (theta_0 - theta) min(rms / mean rms, 1 / decay)``."""
    n = len(data) - 1
    starts, tail = windows(n, block, None)
    learner = copy.deepcopy(model).eval()
    params = list(learner.parameters())
    start = [p.detach().clone() for p in params]
    rms = [s.sqrt() for s in ms]
    mean = torch.cat([r.flatten() for r in rms]).mean()
    pull = [torch.clamp(r / mean, max=1.0 / decay) if decay else None for r in rms]
    out, scored = np.zeros(n), 0
    for at in starts.tolist() + ([] if tail is None else [tail]):
        row = torch.from_numpy(data[at : at + block + 1].astype(np.int64))[None]
        nll = learner(row[:, :-1], row[:, 1:], reduction="none")  # (T,)
        new = nll[scored - at :].detach().double().numpy()
        out[scored : scored + len(new)] = new
        scored += len(new)
        learner.zero_grad(set_to_none=True)
        nll.mean().backward()
        with torch.no_grad():
            for p, p0, r, k in zip(params, start, rms, pull, strict=True):
                if p.grad is not None:
                    p -= lr * p.grad / (r + EPS_SHARE * mean)
                if k is not None:
                    p += decay * (p0 - p) * k
    return out


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

    row("static (no step)", lambda: adaptive_nll(m.gpt, val, block, 0.0))
    for lr in args.sgd:
        row(f"SGD {lr:g}", lambda lr=lr: adaptive_nll(m.gpt, val, block, lr))
    ms = mean_square_grads(m.gpt, train, block)
    for spec in args.rms:
        lr, decay = (float(x) for x in spec.split(":"))
        row(f"RMS {lr:g}, decay {decay:g}", lambda lr=lr, d=decay: rms_nll(m.gpt, val, block,
                                                                           lr, d, ms))  # fmt: skip
    cols = [("rule", "rule", "s"), ("bpc", "val bits/char", ".4f"), ("seconds", "s", ".0f")]
    emit(rows, cols, args.json, {"machine": cpu_line(), "run": str(args.run)})


if __name__ == "__main__":
    main()
