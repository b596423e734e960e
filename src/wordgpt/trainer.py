"""The trainer: one optimisation step, evaluation, and the loop that ties them to a run folder.

The trainer knows nothing about text: it reads token files and copies the tokenizer into the
run folder. All randomness after initialisation is a function of (seed, step, rank): the
global batch of step s is drawn from a generator seeded by (seed, s) and cut into each
rank's micro-batches, and dropout is reseeded before every micro-batch. There is no RNG
state to save, a resumed run draws exactly what an uninterrupted one would, and 2 ranks x
B/2 sequences (or 2 accumulated micro-batches of B/2) see the same rows as one process with
B. Under DDP every decision (time, stop, skip a step) is taken collectively.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .config import TrainConfig
from .data import get_rows
from .device import autocast
from .distributed import Dist
from .errors import WordGPTError
from .optim import EMA, build_optimizer, lr_at, set_lr


class DivergedError(WordGPTError):
    """The loss stayed non-finite: training stopped without saving those steps."""

    exit_code = 3


def derive_seed(*parts: int) -> int:
    """A 64-bit seed from several integers (collision-free in practice, unlike sums)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0])


@dataclass
class TrainState:
    """The loop's counters: everything besides weights and optimizer that a resume needs."""

    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0
    """Seconds of training (rank 0's clock; evaluations and checkpoints not counted)."""
    best_val: float = math.inf
    last_val: float = math.nan
    evals_since_best: int = 0
    bad_steps: int = 0
    """Steps in a row whose loss or gradient was not finite (they were skipped)."""

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, d: dict) -> None:
        for k, v in d.items():
            if hasattr(self, k):
                setattr(self, k, type(getattr(self, k))(v))


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


class Batches:
    """Training batches as a function of the step: the global batch of step s holds
    ``batch_size * grad_accum * world`` rows at offsets drawn from a generator seeded by
    (seed, s); rank r's micro-batch m is the slice ``(r * grad_accum + m) * batch_size``."""

    def __init__(self, data, batch_size: int, block_size: int, grad_accum: int, seed: int, d: Dist):
        self.data, self.B, self.T, self.A, self.seed, self.dist = (
            data,
            batch_size,
            block_size,
            grad_accum,
            seed,
            d,
        )

    def micro(self, step: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, step))
        n = len(self.data) - self.T - 1
        offsets = torch.randint(n, (self.B * self.A * self.dist.world,), generator=g).numpy()
        first = (self.dist.rank * self.A + m) * self.B
        return get_rows(self.data, offsets[first : first + self.B], self.T)


class Trainer:
    """A model, its optimizer and data, and the state of the loop over them.

    ``train_step`` does one optimizer step, ``evaluate`` estimates the losses (sharded across
    ranks), ``state_dict``/``load_state_dict`` carry everything a resume needs.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        train_data,
        val_data,
        device: torch.device,
        dtype: torch.dtype | None,
        dist: Dist | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.model, self.cfg, self.device, self.dtype = model, cfg, device, dtype
        self.dist = dist or Dist()
        self.clock = clock
        self.block = model.cfg.block_size
        self.splits = {"train": train_data, "val": val_data}
        self.batches = Batches(
            train_data, cfg.batch_size, self.block, cfg.grad_accum, cfg.seed, self.dist
        )
        self.opt = build_optimizer(model, cfg, device)
        self.ema = EMA(model, cfg.ema) if cfg.ema else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        self.state = TrainState()
        self.last_lr: float | None = None
        """The learning rate of the latest step."""
        self.run_model: nn.Module = model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device] if device.type == "cuda" else None
            self.run_model = DistributedDataParallel(model, device_ids=ids)
        if cfg.compile or (cfg.compile is None and device.type == "cuda"):
            self.run_model = torch.compile(self.run_model)

    # ------------------------------------------------------------ one step

    def lr(self) -> float:
        """The learning rate of the next step: progress is steps or time, whichever is
        further along."""
        st, cfg = self.state, self.cfg
        progress = st.step / cfg.max_iters
        if cfg.time_budget:
            progress = max(progress, st.elapsed / cfg.time_budget)
        return lr_at(st.step, progress, cfg)

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
        set_lr(self.opt, lr, cfg, st.step)
        loss = self.accumulate()
        if st.step < cfg.freeze_embeddings:
            self.model.wte.weight.grad = None  # the optimizer skips a parameter without one
        self.opt.unscale_(self.scaler)
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        norm = float(nn.utils.clip_grad_norm_(params, clip)) if params else 0.0
        bad = not math.isfinite(loss) or (not self.scaler.is_enabled() and not math.isfinite(norm))
        elapsed, stop, any_bad = self.dist.sync(
            [st.elapsed + self.clock() - t0, float(stop_requested), float(bad)],
            ["rank0", "max", "max"],
        )
        if not any_bad:
            self.opt.step(self.scaler)
            if self.ema is not None:
                self.ema.update(self.model)
        self.opt.zero_grad()
        st.bad_steps = st.bad_steps + 1 if any_bad else 0
        st.step += 1
        st.tokens += cfg.batch_size * self.block * cfg.grad_accum * self.dist.world
        st.elapsed = elapsed  # rank 0's clock, the same on every rank
        return StepResult(loss, norm, lr, not any_bad, stop > 0)

    # ------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss over ``eval_iters`` batches per split, the same batches at every
        evaluation; under DDP each rank computes its share and the sums are combined. With
        EMA the averaged weights are evaluated."""
        model = self.eval_model
        model.eval()
        out = {}
        B, d = self.cfg.batch_size, self.dist
        for name, data in self.splits.items():
            g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, 2**32))
            n = len(data) - self.block - 1
            total = 0.0
            for i in range(self.cfg.eval_iters):
                offsets = torch.randint(n, (B,), generator=g).numpy()
                if i % d.world != d.rank:
                    continue
                x, y = get_rows(data, offsets, self.block)
                with autocast(self.device, self.dtype):
                    total += model(x.to(self.device), y.to(self.device)).item()
            out[name] = d.sync([total], ["sum"])[0] / self.cfg.eval_iters
        self.model.train()
        return out

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated, saved as the model and sampled: the EMA's, if any."""
        return self.ema.model if self.ema is not None else self.model

    def record_eval(self, losses: dict[str, float]) -> bool:
        """Update the best and patience counters; True if this val loss is the best yet
        (strictly lower than every earlier one, across resumes)."""
        st = self.state
        st.last_val = losses["val"]
        if losses["val"] < st.best_val:
            st.best_val, st.evals_since_best = losses["val"], 0
            return True
        st.evals_since_best += 1
        return False

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Weights (of the plain module: no DDP or compile prefixes), optimizer, scaler and
        loop state. ``model`` holds the weights to use (the EMA's, if any); with EMA the
        trained weights travel as ``train_model``."""
        d = {
            "model": self.eval_model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "state": self.state.state_dict(),
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

    def close(self) -> None:
        """Drop the DDP and compile wrappers (DDP's reducer must go before its process group)."""
        self.run_model = self.model

    # ------------------------------------------------------------ the loop

    def stop_reason(self) -> str | None:
        """Why the loop must end before the next step, decided from agreed values only."""
        st, cfg = self.state, self.cfg
        if st.step >= cfg.max_iters:
            return "max_iters"
        if cfg.time_budget is not None and st.elapsed >= cfg.time_budget:
            return "time_budget"
        return None

    def fit(self, on_eval: Callable[[dict[str, float], bool], None], progress=None) -> str:
        """Train until max_iters, the time budget, patience or a signal; ``on_eval(losses,
        is_best)`` runs at every evaluation (step 0, every eval_interval steps, the end).
        Returns why it stopped; raises :class:`DivergedError`."""
        st, cfg = self.state, self.cfg
        with StopFlag() as flag:
            if st.step == 0:
                self._evaluate(on_eval)
            evaluated_at = st.step
            while (reason := self.stop_reason()) is None:
                r = self.train_step(flag.signum is not None)
                if progress is not None:
                    progress(r)
                if st.bad_steps >= cfg.max_bad_steps:
                    raise DivergedError(self._diverged_message(r))
                if r.stop:
                    reason = "signal"
                    break
                if st.step % cfg.eval_interval == 0:
                    self._evaluate(on_eval)
                    evaluated_at = st.step
                    if cfg.patience and st.evals_since_best >= cfg.patience:
                        reason = "patience"
                        break
        if evaluated_at != st.step:
            self._evaluate(on_eval)
        return reason

    def _evaluate(self, on_eval) -> None:
        losses = self.evaluate()
        on_eval(losses, self.record_eval(losses))

    def _diverged_message(self, r: StepResult) -> str:
        st = self.state
        return (
            f"training diverged: the loss or gradient was not finite for {st.bad_steps} steps "
            f"in a row (steps {st.step - st.bad_steps + 1}-{st.step}, lr {r.lr:.2e}); those "
            "steps were skipped and nothing was saved from them. Try a lower --lr or "
            "--grad-clip, or --dtype fp32"
        )


class StopFlag:
    """Set by SIGINT/SIGTERM so the loop can save a checkpoint and exit cleanly."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
