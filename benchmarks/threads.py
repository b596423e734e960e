"""Threads on a busy machine: a recipe trained for a few steps with the thread count that
``train`` chooses by timing its steps, and with each count fixed, beside nothing, beside a
``nice -n 19`` busy loop and beside one ordinary busy process; tokens per second of the
optimizer steps, each run a fresh ``wordgpt train`` process (the chosen count's includes its
trial steps).

    python benchmarks/threads.py                      # word-60 on Don Quixote, 25 steps
    python benchmarks/threads.py --steps 40 --recipe cpu --repeats 1 --json

Separate processes on one machine differ by up to a tenth in speed: each figure is the median
of ``--repeats`` runs (3), taken in turn so that a drift in the machine falls on every column.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import cpu_line, emit, prepared

from wordgpt.model.threads import candidates, cores

BESIDE = {
    "nothing": None,
    "a nice -n 19 busy loop": ["nice", "-n", "19", sys.executable, "-c", "while True: pass"],
    "one ordinary busy process": [sys.executable, "-c", "while True: pass"],
}


def run(data: Path, recipe: str, steps: int, threads: int | None) -> dict:
    """One ``wordgpt train`` of ``recipe`` for ``steps`` steps; its summary."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = [sys.executable, "-m", "wordgpt.cli", "train", "--data", str(data), "--out",
                str(out), "--preset", recipe, "--max-iters", str(steps), "--time-budget", "100000",
                "--epochs", "0", "--eval-interval", str(10 * steps), "--ngram", "0",
                "--no-report", "--no-progress", "--no-tensorboard", "--dtype", "fp32"]  # fmt: skip
        if threads:
            args += ["--threads", str(threads)]
        subprocess.run(args, env=env, check=True, capture_output=True, text=True)
        return json.loads((out / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe", default="word-60")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = prepared("word-sp")
    rows = []
    for beside, cmd in BESIDE.items():
        load = subprocess.Popen(cmd) if cmd else None
        try:
            row = {"beside": beside}
            counts = [None, *candidates(cores())]  # None: the count train chooses
            runs = {c: [] for c in counts}
            for _ in range(args.repeats):
                for c in counts:
                    runs[c].append(run(data, args.recipe, args.steps, c))
            chosen = statistics.median(r["tokens_per_s"] for r in runs[None])
            row.update(chosen=chosen, threads=runs[None][-1]["threads"]["count"])
            for c in counts[1:]:
                row[f"t{c}"] = statistics.median(r["tokens_per_s"] for r in runs[c])
            row["share"] = chosen / max(row[f"t{c}"] for c in counts[1:])
        finally:
            if load is not None:
                load.kill()
        rows.append(row)
    cols = [("beside", "beside", "s"), ("chosen", "chosen (tok/s)", ",.0f"),
            ("threads", "count it ends on (last run)", "d")]  # fmt: skip
    cols += [(f"t{c}", f"{c} thread{'s' * (c > 1)}", ",.0f") for c in candidates(cores())]
    cols += [("share", "chosen / best fixed", ".2f")]
    emit(rows, cols, args.json, {"machine": cpu_line(), "recipe": args.recipe,
                                 "steps": args.steps, "repeats": args.repeats})  # fmt: skip


if __name__ == "__main__":
    main()
