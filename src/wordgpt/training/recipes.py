"""The recipe for a budget: ``train --time-budget S`` without ``--preset`` picks the model
and schedule measured best for about that budget (config.RECIPES, measured by
``benchmarks/quality.py --budgets``), for word or character tokens, scaled by this
machine's speed: a probe times a few training steps of a fixed model, and a machine twice
as fast as the one the table was measured on gets the recipe of a budget twice as long."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..config import DEFAULT_BUDGET, PROBE, RECIPES, ModelConfig
from ..model.gpt import GPT
from .device import pick_device

PROBE_STEPS = 3
"""Timed forward-and-backward passes of the probe (after one untimed)."""


@dataclass(frozen=True)
class Pick:
    preset: str
    why: str


def probe_speed(device: str = "auto") -> float:
    """Tokens per second of one forward and backward pass of the probe model (the ``cpu``
    preset's shape at a small batch, fp32, a fixed vocabulary) on this machine, now."""
    dev = pick_device(device)
    torch.manual_seed(0)
    vocab_size = PROBE["vocab_size"]
    cfg = ModelConfig(vocab_size=vocab_size, **PROBE["model"])
    model = GPT(cfg).to(dev)
    B, T = PROBE["batch_size"], cfg.block_size
    x = torch.randint(vocab_size, (B, T), device=dev)
    best = math.inf
    for i in range(PROBE_STEPS + 1):
        t = time.perf_counter()
        model(x, x).backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - t)
    return B * T / best


def pick_recipe(tokens: str, budget: float | None, speed: float) -> Pick:
    """The table's row for ``tokens`` ("word" or "char"; BPE takes the word rows) whose
    budget is nearest, on a log scale, to ``budget`` seconds scaled by ``speed`` / the
    table machine's speed."""
    kind = "char" if tokens == "char" else "word"
    if not (budget and math.isfinite(budget) and budget > 0):
        budget = DEFAULT_BUDGET  # no budget (or one the config will refuse): the default's
    factor = speed / PROBE["tokens_per_s"]
    effective = budget * factor
    rows = sorted(b for k, b in RECIPES if k == kind)
    best = min(rows, key=lambda b: abs(math.log(b / effective)))
    preset = RECIPES[(kind, best)]
    why = (
        f"{kind} tokens, {budget:g} s on a machine {factor:.2f}x as fast as the one the recipes "
        f"were measured on (probe: {speed:,.0f} against {PROBE['tokens_per_s']:,.0f} tokens/s) "
        f"= {effective:,.0f} s there: the {best:g} s recipe, preset {preset}"
    )
    return Pick(preset, why)
