"""Distilling an ensemble into one model, against training one more member.

A run whose pass cap ends its first model trains further members with the time left. This
takes the first ``--teachers`` members of a trained run as the teacher (their probabilities
averaged, as the run's ensemble reads), trains a fresh student of the run's shape for
``--seconds`` on the run's own training tokens, its loss ``(1 - alpha) * CE + alpha *
KL(teacher || student)`` (Hinton et al. 2015, temperature 1; the KL over the adaptive head's
first level: its frequent tokens and one outcome per rarer cluster), and scores on the val split
(windows every ``--stride`` tokens, the GPT alone, <unk> spellings counted):

- the teacher, a student alone, and the first member alone;
- the teacher with the student (or ``--students K``, each trained for its share of the
  seconds) added, against the teacher with the run's next member (the member the same time
  bought by training as the run does). With ``--alpha 0`` the students are plain models:
  K shorter members against one.

    python benchmarks/distill.py runs/dq --teachers 2 --seconds 300
    python benchmarks/distill.py runs/dq --teachers 2 --seconds 300 --alpha 0   # plain CE
    python benchmarks/distill.py runs/dq --seconds 300 --alpha 0 --students 2   # two shorter

The student's schedule is the run's (warm-up, then WSD decay) over the seconds or the run's
pass cap, whichever comes first; the teacher's forward pass is part of each step's time.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import cpu_line, emit

import wordgpt
from wordgpt.config import OptimConfig
from wordgpt.corpus.tokenfiles import load_meta, load_split, split_bits_per_char
from wordgpt.model.ensemble import Ensemble
from wordgpt.model.gpt import GPT
from wordgpt.training.batches import Batches
from wordgpt.training.distributed import Dist
from wordgpt.training.holdout import gpt_tokens
from wordgpt.training.optim import build_optimizer, lr_at, set_lr
from wordgpt.use.evaluate import token_nll


def keep_hidden(model: GPT) -> dict:
    """A dict whose ``"h"`` each forward pass of ``model`` sets to its final hidden states."""
    seen: dict = {}
    model.ln_f.register_forward_hook(lambda mod, inp, out: seen.__setitem__("h", out))
    return seen


def head_logp(model: GPT, hidden: torch.Tensor) -> torch.Tensor:
    """(B, T, C) hidden states to (B*T, H) log-probabilities over the adaptive head's first
    level: its shortlist of frequent tokens and one outcome per tail cluster (a cluster's
    probability is the sum of its tokens': the whole distribution, coarsened)."""
    return model.lm_head.head(hidden.flatten(0, 1).float()).log_softmax(-1)


class Teacher:
    """Members whose mean head distribution (:func:`head_logp`) the student learns."""

    def __init__(self, members: list[GPT]):
        self.members = [(m, keep_hidden(m)) for m in members]

    @torch.no_grad()
    def head_logp(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B*T, H) the log of the members' mean head probabilities for inputs ``x``."""
        logp = []
        for m, seen in self.members:
            m(x, y)
            logp.append(head_logp(m, seen["h"]))
        return torch.stack(logp).logsumexp(0) - math.log(len(logp))


def distil(teacher: Teacher, cfg, train, optim: OptimConfig, seconds: float, passes: float,
           alpha: float, batch_size: int, seed: int) -> tuple[GPT, dict]:  # fmt: skip
    """A fresh student of ``cfg`` trained on ``train`` toward ``teacher`` (see the module)."""
    torch.manual_seed(seed)
    student = GPT(cfg).train()
    opt = build_optimizer(student, optim, torch.device("cpu"))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batches = Batches(train, batch_size, cfg.block_size, 1, seed, Dist())
    seen = keep_hidden(student)
    step, tokens, t0 = 0, 0, time.perf_counter()
    while True:
        progress = max((time.perf_counter() - t0) / seconds, tokens / len(train) / passes)
        if progress >= 1.0:
            break
        set_lr(opt, lr_at(progress, optim), optim, progress)
        x, y = batches.micro(step, 0)
        loss = student(x, y)  # (the hook keeps its hidden states)
        if alpha > 0:
            target = teacher.head_logp(x, y)  # (B*T, H)
            kl = F.kl_div(head_logp(student, seen["h"]), target, log_target=True,
                          reduction="batchmean")  # fmt: skip
            loss = (1 - alpha) * loss + alpha * kl
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), optim.grad_clip)
        opt.step(scaler)
        opt.zero_grad()
        step, tokens = step + 1, tokens + x.numel()
    seconds_used = time.perf_counter() - t0
    return student.eval(), {"steps": step, "passes": tokens / len(train), "seconds": seconds_used}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    ap.add_argument("--teachers", type=int, default=2, help="the run's first N members")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--alpha", type=float, default=0.5, help="the KL term's share; 0: plain CE")
    ap.add_argument("--stride", type=int, default=64)
    ap.add_argument("--students", type=int, default=1,
                    help="train this many, each for its share of --seconds")  # fmt: skip
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    m = wordgpt.load(args.run, device="cpu")
    members = list(m.gpt.members) if isinstance(m.gpt, Ensemble) else [m.gpt]
    if not 1 <= args.teachers <= len(members):
        raise SystemExit(f"error: the run has {len(members)} members; --teachers 1..{len(members)}")
    train_cfg, train = m.config["train"], m.training_tokens()
    train = train[: gpt_tokens(len(train), int(train_cfg.get("ngram") or 0))]
    cfg = members[0].cfg
    if not isinstance(members[0].lm_head, torch.nn.AdaptiveLogSoftmaxWithLoss):
        raise SystemExit("error: this benchmark distils the adaptive head's first level")
    optim, passes = OptimConfig(**train_cfg["optim"]), train_cfg["stop"].get("epochs") or 1e9
    teacher, batch = Teacher(members[: args.teachers]), int(train_cfg["batch_size"])
    students, hows = [], []
    for k in range(args.students):  # each for its share of the seconds
        student, how = distil(teacher, cfg, train, optim, args.seconds / args.students,
                              float(passes), args.alpha, batch, args.seed + k)  # fmt: skip
        students.append(student)
        hows.append(how)
        print(f"student {k + 1}: {json.dumps(how)}", flush=True)
    val, counts = load_split(m.data_dir, "val"), load_meta(m.data_dir)["splits"]["val"]
    readings = {
        "the first member": members[0],
        f"the teacher ({args.teachers} members)": Ensemble(members[: args.teachers]),
        f"a student (alpha {args.alpha:g})": students[0],
        f"the teacher + {args.students} student(s)": Ensemble(
            [*members[: args.teachers], *students]
        ),
    }
    if len(members) > args.teachers:
        readings["the teacher + the run's next member"] = Ensemble(members[: args.teachers + 1])
    rows = []
    for name, model in readings.items():
        nll = token_nll(model, val, cfg.block_size, stride=args.stride)
        rows.append({"model": name, "bpc": split_bits_per_char(counts, float(nll.mean()))})
        print(f"{name}: {rows[-1]['bpc']:.4f}", flush=True)
    cols = [("model", "the GPT", "s"), ("bpc", f"val bits/char, stride {args.stride}", ".4f")]
    emit(rows, cols, args.json, {"machine": cpu_line(), "run": str(args.run), "students": hows})


if __name__ == "__main__":
    main()
