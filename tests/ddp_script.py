"""Run by tests/test_ddp.py under ``torchrun --nproc_per_node 2`` (gloo, CPU).

Each rank writes what it saw to OUT/rank{R}.pt: after a time-budgeted run on clocks that
disagree, in which rank 0 is slow at every evaluation, its parameters, step count and
learning rates; the step at
which a stop asked for on rank 1 only ended the loop; its first batch; the averaged
gradients of one step; and a sharded evaluation.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import FakeClock, OnStep, Records, make_trainer  # noqa: E402

from wordgpt.training import distributed  # noqa: E402
from wordgpt.training.train import fit  # noqa: E402


def main(data_dir: str, out: str) -> None:
    d = distributed.init()
    report: dict = {"rank": d.rank}

    # 1. a time budget on clocks that disagree: rank 0's runs at 0.125 s a step (two reads
    # of 0.0625), rank 1's ten times slower, and rank 0 is slow at every evaluation (it
    # writes checkpoints there). Only rank 0's clock may count: the same steps everywhere.
    clock = FakeClock(0.0625 if d.rank == 0 else 0.625)  # binary fractions: exact sums
    t = make_trainer(
        data_dir, clock=clock, dist=d, time_budget=2.5, max_iters=10**6, eval_interval=5
    )
    report["first_x"] = t.batches.micro(0, 0)[0]

    def on_eval(e):
        if d.master:
            time.sleep(0.2)

    lrs: list[float] = []
    report["stopped"] = fit(t, Records(on_eval), progress=OnStep(lambda r: lrs.append(r.lr)))
    report["budget_step"] = t.state.step
    report["budget_elapsed"] = t.budget.elapsed
    report["lrs"] = torch.tensor(lrs, dtype=torch.float64)
    report["params"] = {k: v.clone() for k, v in t.model.state_dict().items()}

    # 2. a stop asked for on rank 1 only, at its fifth step
    t = make_trainer(data_dir, dist=d, max_iters=100)
    for i in range(100):
        if t.train_step(stop_requested=d.rank == 1 and i == 4).stop:
            break
    report["stop_step"] = t.state.step

    # 3. one step's gradients (DDP averages them across ranks), 4 rows per rank
    t = make_trainer(data_dir, dist=d, batch_size=4)
    report["loss"] = t.accumulate()
    report["grads"] = {n: p.grad.clone() for n, p in t.model.named_parameters()}

    # 4. a sharded evaluation, 4 batches over 2 ranks
    report["eval"] = t.estimate_loss()
    torch.save(report, Path(out) / f"rank{d.rank}.pt")
    distributed.shutdown(d)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
