"""Run by tests/test_ddp.py on each of two ``torchrun`` agents that meet as two nodes
(``--nnodes 2 --nproc-per-node 1``, c10d rendezvous, gloo on the CPU).

The tiny preset's model and recipe, 30 steps through the training loop with an evaluation
every 10 (sharded across the ranks). Each rank writes OUT/rank{R}.pt: where it ran (its
node, its local rank, the world), the step and stop reason, a weight before training, and
all its parameters at the end.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import Records  # noqa: E402

from wordgpt.corpus.tokenfiles import load_meta, load_split  # noqa: E402
from wordgpt.model.gpt import GPT  # noqa: E402
from wordgpt.presets import preset_configs  # noqa: E402
from wordgpt.settings import with_settings  # noqa: E402
from wordgpt.training import distributed  # noqa: E402
from wordgpt.training.train import fit  # noqa: E402
from wordgpt.training.trainer import Trainer  # noqa: E402

STEPS = 30


def main(data_dir: str, out: str) -> None:
    d = distributed.init()
    mcfg, tcfg = preset_configs("tiny")
    torch.manual_seed(tcfg.seed)
    model = GPT(replace(mcfg, vocab_size=load_meta(data_dir)["vocab_size"]))
    settings = {"max_iters": STEPS, "eval_interval": 10, "dtype": "fp32", "compile": False}
    cfg = with_settings(mcfg, tcfg, settings)[1]
    splits = load_split(data_dir, "train"), load_split(data_dir, "val")
    t = Trainer(model, cfg, *splits, d.device or torch.device("cpu"), None, d)
    report = {
        "rank": d.rank,
        "world": d.world,
        "node": int(os.environ["GROUP_RANK"]),
        "local_rank": d.local_rank,
        "local_world": int(os.environ["LOCAL_WORLD_SIZE"]),
        "start": model.h[0].attn.qkv.weight.detach().clone(),
    }
    report["stopped"] = fit(t, Records())
    report["step"] = t.state.step
    report["params"] = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.close()
    torch.save(report, Path(out) / f"rank{d.rank}.pt")
    d.barrier()  # every rank done before the process group goes, as the train command does
    distributed.shutdown(d)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
