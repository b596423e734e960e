"""The recipe for a budget: ``train`` without ``--preset`` takes the model and schedule
measured best for about its time budget (:data:`wordgpt.presets.RECIPES`), for word or
character tokens, scaled by this machine's speed. A short probe times training steps of a
fixed model with each thread count a CPU may use; a machine twice as fast as the one the
table was measured on gets the recipe of a budget twice as long. The run keeps the budget it
was given: only its recipe is picked.

The best speed the probe has read on a quiet machine is kept (per CPU, in the cache). When
the probe reads far less now, another program has the cores: the recipe line says so, and
which recipe the machine would train quiet; the pick follows the speed it has now, which is
the speed training will reach.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..config import ModelConfig
from ..model.device import ProbeCache, machine_key, pick_device, with_others_load
from ..model.gpt import GPT
from ..model.threads import candidates, cores, given_threads
from ..presets import PROBE, RECIPES

PROBE_SECONDS = 1.0
"""How long the probe times steps (after an untimed one); it keeps the fastest step, so that
a moment when another program had the cores does not count against the machine."""
BUSY = 0.75
"""A probe below this share of the best quiet speed seen on this machine: the machine is
busy. Beside one busy process a 2-core AVX2 EPYC read 0.55 and 0.66 of its quiet best (two
runs); quiet, separate readings differ by up to a tenth."""
QUIET_LOAD = 0.2
"""Other processes using under this share of the cores while the probe ran: it was quiet."""


@dataclass(frozen=True)
class Speed:
    """What the probe read: tokens per second at the fastest thread count."""

    tokens_per_s: float
    threads: int | None = None
    """The thread count of that speed (None: not a CPU)."""
    by_threads: dict[int, float] = field(default_factory=dict)
    quiet_best: float | None = None
    """The best speed the probe has read on this machine when it was quiet (now included)."""

    @property
    def busy(self) -> bool:
        return self.quiet_best is not None and self.tokens_per_s < BUSY * self.quiet_best


@dataclass(frozen=True)
class Pick:
    preset: str
    why: str


def probe_speed(device: str = "auto", seconds: float = PROBE_SECONDS,
                threads: int | None = None) -> Speed:  # fmt: skip
    """Tokens per second of the fastest of several forward and backward passes of the probe
    model (the ``cpu`` preset's shape at a small batch, fp32, a fixed vocabulary) on this
    machine, now: about ``seconds`` of steps, at least three after an untimed one. On a CPU,
    torch's thread count first; when that reads far below the best quiet speed seen here (or
    none was seen yet), every other count a CPU may use too, and the fastest is the speed
    (``threads``, or OMP_NUM_THREADS, fix the count). torch's count is left as it was."""
    dev = pick_device(device)
    torch.manual_seed(0)
    vocab_size = PROBE["vocab_size"]
    cfg = ModelConfig(vocab_size=vocab_size, **PROBE["model"])
    model = GPT(cfg).to(dev)
    x = torch.randint(vocab_size, (PROBE["batch_size"], cfg.block_size), device=dev)
    given, was = given_threads(threads), torch.get_num_threads()
    cache, key = ProbeCache("speed-probe"), f"{machine_key(threads=False)} | {dev.type}"
    seen = cache.get(key) if isinstance(cache.get(key), int | float) else None
    others = [c for c in candidates(cores()) if c != was] if dev.type == "cpu" and not given else []

    def measure() -> dict[int, float]:
        out = {given or was: x.numel() / fastest_step(model, x, seconds, given or was)}
        if others and (seen is None or out[given or was] < BUSY * seen):
            for c in others:  # busy (or never measured): would another count do better?
                out[c] = x.numel() / fastest_step(model, x, seconds / 2, c)
        return out

    try:
        by, load = with_others_load(measure)
    finally:
        torch.set_num_threads(was)
    best = max(by, key=by.get)
    if load is None or load < QUIET_LOAD:
        if seen is None or by[best] > seen:
            cache.put(key, by[best])
        seen = max(seen or 0.0, by[best])
    return Speed(by[best], best if dev.type == "cpu" else None, by, seen)


def fastest_step(model: GPT, x: torch.Tensor, seconds: float, threads: int) -> float:
    """The fastest of the steps of ``model`` on ``x`` with ``threads`` torch threads, timed
    for about ``seconds`` (at least three, after an untimed one that allocates and picks
    kernels)."""
    torch.set_num_threads(threads)
    step_seconds(model, x)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < seconds and len(times) < 1000):
        times.append(step_seconds(model, x))
    return min(times)


def step_seconds(model: GPT, x: torch.Tensor) -> float:
    """Seconds of one forward and backward pass of ``model`` on ``x``."""
    t = time.perf_counter()
    model(x, x).backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def recipe_for(tokens: str, budget: float, speed: float) -> tuple[str, float, float]:
    """The table's row for ``tokens`` ("word" or "char"; BPE takes the word rows) whose
    budget is nearest, on a log scale, to ``budget`` seconds scaled by ``speed`` / the table
    machine's speed: (its preset, its budget there, the budget here as seconds there)."""
    kind = "char" if tokens == "char" else "word"
    effective = budget * speed / PROBE["tokens_per_s"]
    rows = sorted(b for k, b in RECIPES if k == kind)
    best = min(rows, key=lambda b: abs(math.log(b / effective)))
    return RECIPES[(kind, best)], best, effective


def pick_recipe(tokens: str, budget: float, speed: float | Speed) -> Pick:
    """The recipe for ``budget`` seconds of ``tokens`` at the probe's ``speed`` (see
    :func:`recipe_for`), and why, in one line: the probe, the table's machine, the row; on a
    busy machine, that it is busy and what it would train quiet."""
    s = speed if isinstance(speed, Speed) else Speed(speed)
    kind = "char" if tokens == "char" else "word"
    preset, best, effective = recipe_for(tokens, budget, s.tokens_per_s)
    factor = s.tokens_per_s / PROBE["tokens_per_s"]
    threads = f" with {s.threads} thread{'s' * (s.threads > 1)}" if s.threads else ""
    why = (
        f"{budget:g} s budget for {kind} tokens; this machine: {s.tokens_per_s:,.0f} tokens/s "
        f"in the speed probe{threads}, {factor:.2f}x the machine the recipes were measured on "
        f"({PROBE['tokens_per_s']:,.0f}), so {budget:g} s here is about {effective:,.0f} s "
        f"there: recipe {preset}, measured best for {best:g} s there"
    )
    if s.busy:
        quiet = recipe_for(tokens, budget, s.quiet_best)[0]
        why += (
            f"; this machine is busy (another program has its cores: {s.tokens_per_s:,.0f} "
            f"tokens/s now, {s.quiet_best:,.0f} quiet): quiet it would train recipe {quiet}, "
            "now the one for the speed it has"
        )
    return Pick(preset, why)
