"""The recipe for a budget: ``train`` without ``--preset`` takes the model and schedule
measured best for about its time budget (:data:`wordgpt.presets.RECIPES`), for word or
character tokens, scaled by this machine's speed. A short probe times training steps of a
fixed model; a machine twice as fast as the one the table was measured on gets the recipe of
a budget twice as long. The run keeps the budget it was given: only its recipe is picked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..model.device import pick_device
from ..model.gpt import GPT
from ..presets import PROBE, RECIPES

PROBE_SECONDS = 1.5
"""How long the probe times steps (after two untimed ones); it keeps the fastest step, so
that a moment when another program had the cores does not count against the machine."""


@dataclass(frozen=True)
class Pick:
    preset: str
    why: str


def probe_speed(device: str = "auto", seconds: float = PROBE_SECONDS) -> float:
    """Tokens per second of the fastest of several forward and backward passes of the probe
    model (the ``cpu`` preset's shape at a small batch, fp32, a fixed vocabulary) on this
    machine, now: about ``seconds`` of steps, at least three after two untimed ones."""
    dev = pick_device(device)
    torch.manual_seed(0)
    vocab_size = PROBE["vocab_size"]
    cfg = ModelConfig(vocab_size=vocab_size, **PROBE["model"])
    model = GPT(cfg).to(dev)
    x = torch.randint(vocab_size, (PROBE["batch_size"], cfg.block_size), device=dev)
    times: list[float] = []
    start = time.perf_counter()
    for i in range(1000):
        t = step_seconds(model, x)
        if i >= 2:  # the first steps allocate and pick kernels
            times.append(t)
        if len(times) >= 3 and time.perf_counter() - start > seconds:
            break
    return x.numel() / min(times)


def step_seconds(model: GPT, x: torch.Tensor) -> float:
    """Seconds of one forward and backward pass of ``model`` on ``x``."""
    t = time.perf_counter()
    model(x, x).backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def pick_recipe(tokens: str, budget: float, speed: float) -> Pick:
    """The table's row for ``tokens`` ("word" or "char"; BPE takes the word rows) whose
    budget is nearest, on a log scale, to ``budget`` seconds scaled by ``speed`` / the
    table machine's speed."""
    kind = "char" if tokens == "char" else "word"
    factor = speed / PROBE["tokens_per_s"]
    effective = budget * factor
    rows = sorted(b for k, b in RECIPES if k == kind)
    best = min(rows, key=lambda b: abs(math.log(b / effective)))
    preset = RECIPES[(kind, best)]
    why = (
        f"{budget:g} s budget for {kind} tokens; this machine: {speed:,.0f} tokens/s in the "
        f"speed probe, {factor:.2f}x the machine the recipes were measured on "
        f"({PROBE['tokens_per_s']:,.0f}), so {budget:g} s here is about {effective:,.0f} s "
        f"there: recipe {preset}, measured best for {best:g} s there"
    )
    return Pick(preset, why)
