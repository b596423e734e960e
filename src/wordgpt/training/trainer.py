"""The trainer: a model, its optimizer and batches, and the state of the loop over them.

The trainer knows nothing about text or files: it gets token ids as arrays and gives back
numbers and state dicts. All randomness after initialisation is a function of (seed, step,
rank) (see :mod:`.batches`; dropout is reseeded before every micro-batch), so there is no
RNG state to save, and a resumed run draws exactly what an uninterrupted one would. Time is
the run's :class:`~.budget.Budget`'s: the trainer reads its clock, and asks it how far the
run is. Under DDP every decision (time, stop, skip a step) is taken collectively.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..errors import WordGPTError
from ..model.device import autocast
from ..runs.checkpoint import non_finite
from .batches import Batches, derive_seed, get_rows, random_offsets
from .budget import Budget
from .distributed import Dist
from .optim import EMA, build_optimizer, lr_at, set_lr

COMPILE_MIN_BUDGET = 600.0
"""Below this time budget (seconds) a CUDA run stays eager unless --compile is asked for: on
an H200, compiling took 30 s of a 60 s budget (a 6-layer model) and 52 s (the 32-layer seed
model), and a 60 s character run ended higher compiled than eager (1.149 against 1.136 nats;
benchmarks/RESULTS.md), while compiled steps ran 1.4x faster: the compiled run wins only once
the budget is several times the compile time."""


class DivergedError(WordGPTError):
    """The loss or the weights stopped being finite: training stopped without saving them."""

    exit_code = 3


@dataclass
class TrainState:
    """The loop's counters: everything besides weights and optimizer that a resume needs."""

    step: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    """Seconds of optimizer steps alone (for tokens/s and MFU)."""
    best_val: float = math.inf
    last_val: float = math.nan
    evals_since_best: int = 0
    bad_steps: int = 0
    """Steps in a row whose loss or gradient was not finite (they were skipped)."""
    last_eval_step: int = -1
    """The step of the latest evaluation (-1: none yet)."""
    last_eval_progress: float = 0.0
    """The run's progress (0 to 1) at the latest evaluation."""
    decay_start: float = -1.0
    """Where a WSD decay branched off at a plateau (progress; -1: it did not)."""
    decay_end: float = -1.0

    def record_eval(self, val: float, progress: float) -> bool:
        """Count an evaluation of the val loss at this step; True if it is the best yet
        (strictly lower than every earlier one, across resumes)."""
        self.last_val, self.last_eval_step, self.last_eval_progress = val, self.step, progress
        if val < self.best_val:
            self.best_val, self.evals_since_best = val, 0
            return True
        self.evals_since_best += 1
        return False

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, d: dict) -> None:
        for k, v in d.items():
            if hasattr(self, k):
                setattr(self, k, type(getattr(self, k))(v))


def passes(st: TrainState, train_tokens: int) -> float:
    """Passes over the training split so far: tokens seen (all ranks) / its tokens."""
    return st.tokens / max(train_tokens, 1)


@dataclass(frozen=True)
class StepResult:
    loss: float
    """Mean loss of this rank's micro-batches."""
    grad_norm: float
    lr: float
    applied: bool
    """False when the step was skipped (a non-finite loss or gradient on some rank)."""
    stop: bool = False
    """A stop signal arrived on some rank."""
    seconds: float = 0.0
    """What the step took on this rank (its own clock: what its thread count is chosen by)."""


class Trainer:
    """``train_step`` does one optimizer step, ``estimate_loss`` estimates the losses on fixed
    batches (sharded across ranks), ``state_dict``/``load_state_dict`` carry everything a
    resume needs."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        train_data,
        val_data,
        device: torch.device,
        dtype: torch.dtype | None,
        dist: Dist | None = None,
        budget: Budget | None = None,
    ):
        self.model, self.cfg, self.device, self.dtype = model, cfg, device, dtype
        self.dist = dist or Dist()
        self.budget = budget or Budget(cfg.stop.time_budget)
        """The run's time (its clock, what it has spent, when it ends)."""
        self.clock = self.budget.clock
        self.block = model.cfg.block_size
        self.splits = {"train": train_data, "val": val_data}
        self.batches = Batches(
            train_data, cfg.batch_size, self.block, cfg.grad_accum, cfg.seed, self.dist
        )
        self.opt = build_optimizer(model, cfg.optim, device)
        self.ema = EMA(model, cfg.optim.ema) if cfg.optim.ema else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        self.state = TrainState()
        self.last_lr: float | None = None
        """The learning rate of the latest step."""
        self.run_model: nn.Module = wrap(model, cfg, device, self.dist)
        """What the steps run: the model in DDP and torch.compile when asked; the state is
        always the plain module's."""

    # ------------------------------------------------------------ one step

    def measure_eval(self, seconds: float) -> None:
        """Tell the budget what an evaluation took (``seconds``, with its checkpoints): the
        loss estimate evaluates ``eval_iters`` batches of each split."""
        c = self.cfg
        tokens = 2 * c.eval.eval_iters * c.batch_size * self.block  # train and val
        self.budget.measure_eval(seconds, tokens, self.dist.sync)

    def tokens_per_s(self) -> float:
        """Training tokens per second of the optimizer steps alone (all ranks)."""
        st = self.state
        return st.tokens / st.train_seconds if st.train_seconds > 0 else 0.0

    def epochs_done(self) -> float:
        return passes(self.state, len(self.splits["train"]))

    def progress(self) -> float:
        """How far the run is, from 0 to 1: steps, time or passes, whichever is further."""
        stop = self.cfg.stop
        p = max(self.state.step / stop.max_iters, self.budget.fraction())
        if stop.epochs:
            p = max(p, self.epochs_done() / stop.epochs)
        return min(p, 1.0)

    def schedule_progress(self) -> float:
        """The run's progress as the schedule sees it at the next step: where the run is, and
        at least that step's share of max_iters (so a run of N steps warms up as nanoGPT's)."""
        return max(self.progress(), min((self.state.step + 1) / self.cfg.stop.max_iters, 1.0))

    def lr(self) -> float:
        """The learning rate of the next step, following the run's progress."""
        st = self.state
        branch = (st.decay_start, st.decay_end) if st.decay_start >= 0 else None
        return lr_at(self.schedule_progress(), self.cfg.optim, branch)

    def accumulate(self) -> float:
        """Forward and backward over this rank's micro-batches of the current step (gradients
        add up; under DDP they are averaged across ranks). Returns the mean loss."""
        st, A = self.state, self.cfg.grad_accum
        total = 0.0
        for m in range(A):
            x, y = self.batches.micro(st.step, m)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            torch.manual_seed(derive_seed(self.cfg.seed, st.step, self.dist.rank, m, 1))
            no_sync = self.dist.enabled and m < A - 1
            sync = self.run_model.no_sync() if no_sync else contextlib.nullcontext()
            with sync, autocast(self.device, self.dtype):
                loss = self.run_model(x, y) / A
            self.scaler.scale(loss).backward()
            total += loss.item()
        return total

    def train_step(self, stop_requested: bool = False) -> StepResult:
        """One optimizer step: accumulate gradients, clip them, then apply them unless the
        loss or gradient is not finite on some rank (then the step is skipped on every rank).
        One collective agrees on rank 0's clock, the skip, and a stop requested anywhere."""
        st, cfg = self.state, self.cfg
        t0 = self.clock()
        lr = self.last_lr = self.lr()
        set_lr(self.opt, lr, cfg.optim, self.schedule_progress())
        loss = self.accumulate()
        if st.step < cfg.freeze_embeddings:
            self.model.wte.weight.grad = None  # the optimizer skips a parameter without one
        self.opt.unscale_(self.scaler)
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        norm = float(nn.utils.clip_grad_norm_(params, clip)) if params else 0.0
        bad = not math.isfinite(loss) or (not self.scaler.is_enabled() and not math.isfinite(norm))
        t1 = self.clock()
        elapsed, seconds, stop, any_bad = self.dist.sync(
            [self.budget.spent(t1), t1 - t0, float(stop_requested), float(bad)],
            ["rank0", "rank0", "max", "max"],
        )
        outcome = "bad" if any_bad else apply_step(self.opt, self.scaler, self.ema, self.model)
        self.opt.zero_grad()
        st.bad_steps = st.bad_steps + 1 if outcome == "bad" else 0
        st.step += 1
        st.tokens += cfg.batch_size * self.block * cfg.grad_accum * self.dist.world
        self.budget.elapsed = elapsed  # rank 0's clock, the same on every rank
        st.train_seconds += seconds
        if st.bad_steps >= cfg.stop.max_bad_steps:
            raise DivergedError(diverged_message(st.step, st.bad_steps, lr))
        return StepResult(loss, norm, lr, outcome == "applied", stop > 0, t1 - t0)

    # ------------------------------------------------------------ the loss estimate

    @torch.no_grad()
    def estimate_loss(self) -> dict[str, float]:
        """The mean loss per split of the weights in use (the EMA's, if any) over
        ``eval_iters`` fixed batches: the same batches at every estimate, so that two
        estimates of one run differ only by what the model learnt (nanoGPT's
        ``estimate_loss``). Under DDP each rank computes every world-th batch and the sums
        are combined. Raises :class:`DivergedError` when a loss or a weight is not finite:
        the one place that decides a run has diverged."""
        model, d, iters = self.eval_model, self.dist, self.cfg.eval.eval_iters
        model.eval()
        out = {}
        for name, data in self.splits.items():
            g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, 2**32))
            total = 0.0
            for i in range(iters):
                offsets = random_offsets(len(data), self.block, self.cfg.batch_size, g)
                if i % d.world != d.rank:
                    continue
                x, y = get_rows(data, offsets, self.block)
                with autocast(self.device, self.dtype):
                    total += model(x.to(self.device), y.to(self.device)).item()
            out[name] = d.sync([total], ["sum"])[0] / iters
        self.model.train()
        check_finite(self.model, out, self.state.step)
        return out

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated, saved as the model and sampled: the EMA's, if any."""
        return self.ema.model if self.ema is not None else self.model

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Weights (of the plain module: no DDP or compile prefixes), optimizer, scaler and
        loop state. ``model`` holds the weights to use (the EMA's, if any); with EMA the
        trained weights travel as ``train_model``."""
        d = {
            "model": self.eval_model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "state": {**self.state.state_dict(), **self.budget.state_dict()},
        }
        if self.ema is not None:
            d["train_model"] = self.model.state_dict()
            d["ema_updates"] = self.ema.updates
        if self.scaler.is_enabled():
            d["scaler"] = self.scaler.state_dict()
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.model.load_state_dict(d.get("train_model", d["model"]))
        if self.ema is not None:
            self.ema.model.load_state_dict(d["model"])
            self.ema.updates = int(d.get("ema_updates", 0))
        self.opt.load_state_dict(d["optimizer"])
        if "scaler" in d and self.scaler.is_enabled():
            self.scaler.load_state_dict(d["scaler"])
        self.state.load_state_dict(d["state"])
        self.budget.load_state_dict(d["state"])

    def close(self) -> None:
        """Drop the DDP and compile wrappers (DDP's reducer must go before its process group)."""
        self.run_model = self.model


def diverged_message(step: int, bad: int, lr: float) -> str:
    return (
        f"training diverged: the loss or gradient was not finite for {bad} steps in a row "
        f"(steps {step - bad + 1}-{step}, lr {lr:.2e}); those steps were skipped and nothing "
        "was saved from them. Try a lower --lr or --grad-clip, or --dtype fp32"
    )


def wrap(model: nn.Module, cfg: TrainConfig, device: torch.device, d: Dist) -> nn.Module:
    """The model in DDP (several processes) and torch.compile (see :func:`compiles`)."""
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    if compiles(cfg, device):
        model = torch.compile(model)
    return model


def compiles(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether training compiles the model: as asked, else on CUDA when the run is long
    enough to win back the compile time (no time budget, or at least COMPILE_MIN_BUDGET)."""
    if cfg.compile is not None:
        return cfg.compile
    budget = cfg.stop.time_budget
    long = not budget or budget >= COMPILE_MIN_BUDGET
    return device.type == "cuda" and long


def check_finite(model: nn.Module, losses: dict[str, float], step: int) -> None:
    bad = non_finite(model.state_dict())
    if bad or not all(math.isfinite(v) for v in losses.values()):
        what = f"weights ({bad[0]})" if bad else "the estimated loss"
        raise DivergedError(
            f"training diverged: {what} not finite at step {step}; nothing from it was saved "
            "(last.pt is the previous evaluation's). Try a lower --lr or --grad-clip"
        )


def apply_step(opt, scaler, ema: EMA | None, model: nn.Module) -> str:
    """Step the optimizers (and the EMA): "applied". With fp16 the gradient scaler skips a
    step whose scaled gradients overflowed and lowers its scale: "skipped" while the scale
    is still at least 1 (the gradients were only too large for fp16), "bad" below (they are
    not finite themselves: it counts towards max_bad_steps)."""
    scale = scaler.get_scale() if scaler.is_enabled() else None
    opt.step(scaler)
    if scale is not None and scaler.get_scale() < scale:
        return "skipped" if scale >= 1.0 else "bad"
    if ema is not None:
        ema.update(model)
    return "applied"
