"""From a data folder and settings to a finished run folder: :func:`train`.

:func:`~wordgpt.training.plan.plan_run` checks everything before anything is written;
:func:`~wordgpt.training.start.start` takes the folder's lock and builds the trainer;
:func:`fit` runs the loop, calling the run's sinks (:mod:`.records`) at each evaluation;
:func:`finish` writes ``summary.json``.

Evaluations are spaced by the run's real length: every ``eval_interval`` steps when it is
set, else ``eval_points`` times over the run, by its progress (steps or time, whichever ends
first), so that every run's curve has points to show. Between two evaluations one cheap line
(the mean training loss of the steps since) is printed, and a progress bar counts towards
the real end. The first Ctrl-C stops after the current step and saves ``last.pt`` (exit code
130); a second one stops at once.
"""

from __future__ import annotations

import functools
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..corpus.tokenfiles import split_bits_per_char
from ..errors import InterruptError, WordGPTError
from ..model.gpt import estimate_flops
from .device import dtype_name, peak_flops
from .distributed import Dist, init, shutdown
from .optim import plateau_branch
from .plan import Plan, plan_run
from .records import Evaluation, Recorder, make_recorder
from .start import start
from .trainer import DivergedError, StepResult, Trainer


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    best_val: float
    last_val: float
    elapsed_s: float
    tokens_per_s: float
    params: int
    stopped: str
    """Why the loop ended: max_iters, time_budget, epochs, decayed, patience or signal."""
    mfu: float | None = None


# ------------------------------------------------------------------------ signals


class StopFlag:
    """The first SIGINT/SIGTERM asks the loop to stop after its step (and says so); a second
    one stops at once (KeyboardInterrupt)."""

    def __init__(self, say=None):
        self.signum: int | None = None
        self.say = say
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        if self.say is not None:
            self.say("stopping after this step, saving last.pt; Ctrl-C again to stop now")

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------ the loop


def eval_count(cfg) -> int:
    """How many evaluations a run spaced by its progress gets: eval_points, and one every
    eval_seconds of a time budget, unless epochs may end the run long before the budget (a
    900 s budget capped at a few passes of a book would evaluate every few seconds)."""
    budget = 0 if cfg.epochs else (cfg.time_budget or 0)
    return max(cfg.eval_points, math.ceil(budget / cfg.eval_seconds))


def progress_points(trainer: Trainer) -> tuple[int, int]:
    """(the evaluation point the run is at now, the one of its latest evaluation): points
    are 1 / eval_points of the run's progress apart."""
    k, st = eval_count(trainer.cfg), trainer.state
    now = math.floor(trainer.progress() * k + 1e-9)
    last = math.floor(st.last_eval_progress * k + 1e-9) if st.last_eval_step >= 0 else -1
    return now, last


def eval_due(trainer: Trainer) -> bool:
    """Whether to evaluate after the step just taken (a function of agreed values only)."""
    st, cfg = trainer.state, trainer.cfg
    if cfg.eval_interval is not None:
        return st.step % cfg.eval_interval == 0
    now, last = progress_points(trainer)
    return now > last


def stop_reason(trainer: Trainer) -> str | None:
    """Why the loop must end before the next step, decided from agreed values only."""
    st, cfg = trainer.state, trainer.cfg
    if st.step >= cfg.max_iters:
        return "max_iters"
    if cfg.time_budget is not None and st.elapsed >= cfg.time_budget:
        return "time_budget"
    if cfg.epochs and trainer.epochs_done() >= cfg.epochs:
        return "epochs"
    if st.decay_start >= 0 and trainer.progress() >= st.decay_end:
        return "decayed"
    return None


def record(trainer: Trainer, rec: Recorder, peak: float | None, say=None) -> None:
    """Estimate the losses (the trainer raises if they diverged), branch the decay off at a
    plateau (``decay_on_plateau``), then call the sinks."""
    losses = trainer.estimate_loss()
    is_best = trainer.state.record_eval(losses["val"], trainer.progress())
    st = trainer.state
    branch_decay(trainer, say)
    rate = st.tokens / st.elapsed if st.elapsed > 0 else 0.0
    flops = rate * estimate_flops(trainer.model.cfg)
    lr = trainer.last_lr if trainer.last_lr is not None else trainer.lr()
    e = Evaluation(st.step, st.tokens, st.elapsed, lr, losses, is_best, rate, flops, None)
    if peak and rate > 0:
        e = Evaluation(**{**e.__dict__, "mfu": flops / peak})
    rec.on_eval(e)


def branch_decay(trainer: Trainer, say=None) -> None:
    """At a plateau of the val loss, start the WSD decay now (``decay_on_plateau``)."""
    st, p = trainer.state, trainer.progress()
    if st.decay_start >= 0 or (b := plateau_branch(trainer.cfg, st.evals_since_best, p)) is None:
        return
    st.decay_start, st.decay_end = b
    if say is not None:
        say(
            f"the val loss has not improved for {trainer.cfg.decay_on_plateau} evaluations: "
            f"the learning rate decays from here (step {st.step}, {p:.0%} of the run) to "
            f"{b[1]:.0%}, where the run ends"
        )


def fit(trainer: Trainer, rec: Recorder, ticker=None, peak: float | None = None, say=None) -> str:
    """Train until max_iters, the time budget, patience or a signal, evaluating at step 0,
    whenever due, and at the end. Returns why it stopped; raises :class:`DivergedError`."""
    st, cfg = trainer.state, trainer.cfg
    with StopFlag(say) as flag:
        if st.step == 0:
            record(trainer, rec, peak, say)
        while (reason := stop_reason(trainer)) is None:
            r = trainer.train_step(flag.signum is not None)
            if r.stop:
                rec.save_last()
                return "signal"
            if ticker is not None:
                ticker.update(r)
            if eval_due(trainer):
                record(trainer, rec, peak, say)
                if cfg.patience and st.evals_since_best >= cfg.patience:
                    return "patience"
        if st.last_eval_step != st.step:
            record(trainer, rec, peak, say)
    return reason


# ------------------------------------------------------------------------ progress


class Ticker:
    """Between evaluations: a progress bar towards the real end (the time budget, epochs or
    max_iters) on a terminal, and a cheap line (the mean training loss of the steps since
    the last line) halfway between two evaluation points."""

    def __init__(self, trainer: Trainer, say, bar: bool):
        self.trainer, self.say = trainer, say
        self.losses: list[float] = []
        self.bar = None
        self.half = math.floor(trainer.progress() * 2 * eval_count(trainer.cfg))
        if bar:
            from tqdm.auto import tqdm

            total, unit = self.bar_total(trainer.cfg)
            self.bar = tqdm(
                total=total,
                initial=min(self.bar_done(), total),
                unit=unit,
                dynamic_ncols=True,
                disable=None,
                leave=False,
            )
            self.say = self.bar.write

    @staticmethod
    def bar_total(cfg) -> tuple[float, str]:
        """The bar's end and unit: percent of the run when epochs may end it before the
        time budget or max_iters, else seconds of the budget, else steps."""
        if cfg.epochs:
            return 100.0, "%"
        return (cfg.time_budget, "s") if cfg.time_budget else (cfg.max_iters, "step")

    def bar_done(self) -> float:
        t, st = self.trainer, self.trainer.state
        if t.cfg.epochs:
            return round(100 * t.progress(), 1)
        return st.elapsed if t.cfg.time_budget else st.step

    def update(self, r: StepResult) -> None:
        t, st = self.trainer, self.trainer.state
        self.losses.append(r.loss)
        if self.bar is not None:
            self.bar.update(min(self.bar_done(), self.bar.total) - self.bar.n)
            self.bar.set_postfix(step=st.step, loss=f"{r.loss:.3f}", refresh=False)
        half = math.floor(t.progress() * 2 * eval_count(t.cfg))
        if half > self.half and half % 2 == 1 and t.cfg.eval_interval is None:
            rate = st.tokens / st.elapsed if st.elapsed > 0 else 0.0
            mean = sum(self.losses) / len(self.losses)
            self.say(
                f"step {st.step:>6} | train {mean:.4f} (mean of {len(self.losses)} steps) | "
                f"lr {r.lr:.2e} | {rate:,.0f} tok/s | {st.elapsed:.0f}s"
            )
            self.losses = []
        self.half = max(self.half, half)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------ train()


def train(
    data_dir: str | Path,
    out: str | Path,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log=print,
    clock=None,
    trust_pickle: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Train a GPT on the token files in ``data_dir``, writing the run folder ``out``.

    ``overrides`` are ModelConfig or TrainConfig fields (``n_layer=2``, ``max_iters=500``).
    A folder that holds a run is refused unless ``resume`` (continue from ``out/last.pt``
    with its saved configs; training settings may still be overridden, e.g. a larger
    ``max_iters``) or ``overwrite`` (move the old run aside first). ``trust_pickle`` lets
    ``init_embeddings`` be a gensim .kv file (a pickle: it can run code). Raises
    :class:`~wordgpt.training.trainer.DivergedError` when the loss stays non-finite, and
    :class:`~wordgpt.errors.InterruptError` after a Ctrl-C (``last.pt`` saved).
    """
    d = init(str(overrides.get("device") or "auto"))
    try:
        if log is print:  # lines appear as they come, even when piped to a file
            log = functools.partial(print, flush=True)
        say = log if d.master else (lambda *a, **k: None)
        error, plan = None, None
        try:
            plan = plan_run(data_dir, out, preset, resume, overwrite, trust_pickle, **overrides)
        except WordGPTError as e:
            error = e
        d.agree(error)
        result = _run(plan, d, say, clock)
        d.barrier()  # every rank done before the process group goes
        if result.stopped == "signal":
            raise InterruptError(
                f"stopped at step {result.step} by a signal; saved {result.run_dir}/last.pt "
                "(continue with --resume)"
            )
        return result
    finally:
        shutdown(d)


def _run(plan: Plan, d: Dist, say, clock) -> TrainResult:
    trainer, emb_info = start(plan, d, say, clock)
    ticker = None
    try:
        tty = getattr(say, "func", None) is print and plan.train.progress and d.master
        ticker = Ticker(trainer, say, bar=tty)
        rec = make_recorder(plan, trainer, emb_info, ticker.say, d)
        say(_model_line(plan, trainer))
        peak = peak_flops(trainer.device, trainer.dtype) if d.master else None
        try:
            stopped = fit(trainer, rec, ticker, peak, ticker.say)
        except DivergedError:
            finish(plan, trainer, "diverged", d, peak)
            raise
        finally:
            ticker.close()
            rec.close()
        if stopped == "patience":
            say(
                f"stopped at step {trainer.state.step}: no better val loss in "
                f"{plan.train.patience} evaluations (best.pt keeps the best)"
            )
        return finish(plan, trainer, stopped, d, peak)
    finally:
        trainer.close()
        plan.run.unlock()


def _model_line(plan: Plan, trainer: Trainer) -> str:
    m = plan.model
    return (
        f"model: {trainer.model.num_params():,} parameters, "
        f"{estimate_flops(trainer.model.cfg) / 1e6:,.1f} MFLOPs per token | {m.n_layer} layers, "
        f"{m.n_head} heads, {m.n_embd} wide, block {m.block_size}, {m.head} head | "
        f"device {trainer.device}, {dtype_name(trainer.dtype)}"
    )


def finish(plan: Plan, trainer: Trainer, stopped: str, d: Dist, peak: float | None):
    """``summary.json`` (rank 0) and the result every rank returns."""
    st = trainer.state
    rate = st.tokens / st.elapsed if st.elapsed > 0 else 0.0
    flops = rate * estimate_flops(trainer.model.cfg)
    mfu = flops / peak if peak and rate > 0 else None
    params = trainer.model.num_params()
    if d.master:
        plan.run.write_json(
            "summary.json",
            {
                "step": st.step,
                "stopped": stopped,
                "best_val": st.best_val if math.isfinite(st.best_val) else None,
                "best_val_bits_per_char_estimate": (
                    split_bits_per_char(plan.meta["splits"]["val"], st.best_val)
                    if math.isfinite(st.best_val)
                    else None
                ),
                "last_val": st.last_val if math.isfinite(st.last_val) else None,
                "elapsed_s": st.elapsed,
                "tokens": st.tokens,
                "tokens_per_s": rate,
                "params": params,
                "flops_per_token": estimate_flops(trainer.model.cfg),
                "flops_per_s": flops,
                "peak_flops": peak,
                "mfu": mfu,
                "device": str(trainer.device),
                "dtype": dtype_name(trainer.dtype),
                "preset": plan.preset,
                "recipe": plan.why,
                "init_from": plan.init_info,
                "val_unk_share": plan.meta["splits"]["val"].get("unk_share", 0.0),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
    return TrainResult(
        plan.run.path, st.step, st.best_val, st.last_val, st.elapsed, rate, params, stopped, mfu
    )
