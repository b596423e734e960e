"""Training one model on a data folder, from its plan to its summary, in the order it
happens: :func:`train_model` is the procedure, and :func:`fit` its loop.

1. **Set-up**: the checks are the :class:`~.plan.Plan`'s (made before anything is written);
   :func:`.setup.build` gives the model (from word vectors or another run's weights when
   asked), the dtype, and the :class:`~.trainer.Trainer`, with a resumed run's state.
2. **The loop** (:func:`fit`): one optimizer step at a time until the run's first limit
   (steps, seconds, passes over the text, a plateau, patience, Ctrl-C); an evaluation at the
   start, whenever one is due, and at the end, each written by the
   :class:`~.writer.RunWriter` (metrics.csv, loss.png, last.pt and best.pt, TensorBoard, one
   line).
3. **Finish**: ``summary.json`` and the result.

Time is the run's :class:`~.budget.Budget`: it keeps back what the end will take (measured by
the evaluations on the way) and spaces the evaluations so that they take at most a tenth of
it. Output goes through the ``wordgpt`` logger (:mod:`wordgpt.logs`), rank 0 only. Under
several processes every decision is taken collectively. What follows the model (further
members, the n-gram partner, the report) is the whole command's (``use/train_run.py``).
"""

from __future__ import annotations

import math
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..corpus.tokenfiles import load_split
from ..logs import log
from ..model.device import mfu, peak_flops, pick_device
from ..model.gpt import estimate_flops
from ..model.threads import Threads, given_threads
from .budget import Budget
from .distributed import Dist
from .holdout import counting_seconds, gpt_tokens
from .optim import plateau_branch
from .plan import Plan
from .setup import build
from .trainer import DivergedError, Trainer
from .writer import Evaluation, RunWriter


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    best_val: float
    last_val: float
    elapsed_s: float
    """Wall seconds of the run: set-up, steps, evaluations and checkpoints."""
    tokens_per_s: float
    """Training tokens per second of the optimizer steps alone."""
    params: int
    stopped: str
    """Why the loop ended: max_iters, time_budget, epochs, decayed, patience, or "signal N"
    (2: Ctrl-C, 15: SIGTERM)."""
    mfu: float | None = None


def train_model(p: Plan, budget: Budget, d: Dist) -> TrainResult:
    """Train the model of plan ``p`` in its run folder (whose lock the caller holds), on the
    ``budget``'s time and the ranks of ``d``; returns a :class:`TrainResult` (a run stopped
    by a signal says so in ``stopped``, ``last.pt`` saved). Raises :class:`DivergedError`
    when the loss stays non-finite."""
    # ---------------------------------------------------------------- 1. set-up
    n_train, n_val = (p.meta["splits"][s]["tokens"] for s in ("train", "val"))
    counting = 0.0
    if p.train.ngram and budget.seconds:  # counted twice: to fit the weight, to use it
        train_tokens = load_split(p.data_dir, "train")
        counting = 2 * counting_seconds(train_tokens, p.meta["vocab_size"], p.train.ngram)
    budget.expect_end(n_train - gpt_tokens(n_train, p.train.ngram), n_val, counting)
    trainer = None
    try:
        # on a CPU, till the first trial of its steps: the count the probe found fastest
        cpu = (d.device or pick_device(p.train.device)).type == "cpu"
        threads = Threads(given_threads(p.train.threads), start=p.probe_threads) if cpu else None
        trainer, provenance = build(p, budget, d)
        writer = RunWriter(p, trainer, provenance, d)
        peak = peak_flops(trainer.device, trainer.dtype) if d.master else None
        # ------------------------------------------------------------ 2. the loop
        try:
            stopped = fit(trainer, writer, peak, threads=threads)
        except DivergedError:
            finish(p, trainer, writer, "diverged", peak, threads)
            raise
        finally:
            writer.close()
        # ---------------------------------------------------------------- 3. finish
        return finish(p, trainer, writer, stopped, peak, threads)
    finally:
        if trainer is not None:
            trainer.close()


# ======================================================================== 2. the loop


def fit(trainer: Trainer, writer, peak: float | None = None, progress=None,
        threads: Threads | None = None) -> str:  # fmt: skip
    """Train until the run's first limit, evaluating at step 0, whenever due, and at the
    end; ``writer`` keeps each evaluation (:class:`RunWriter`); ``threads`` chooses the CPU's
    thread count by timing the steps. Returns why it stopped; raises :class:`DivergedError`."""
    st, cfg = trainer.state, trainer.cfg
    bar = progress if progress is not None else Progress(trainer, cfg.progress)
    try:
        with StopFlag() as flag:
            if st.step == 0:
                evaluate_and_save(trainer, writer, peak)
            while (reason := stop_reason(trainer)) is None:
                if threads is not None:
                    threads.before()
                r = trainer.train_step(flag.signum is not None)
                if threads is not None and (line := threads.after(r.seconds)):
                    log.info(line)
                if r.stop:
                    writer.save_last()
                    return f"signal {flag.signum or signal.SIGINT}"
                bar.update(r)
                if eval_due(trainer):
                    evaluate_and_save(trainer, writer, peak)
                    if cfg.stop.patience and st.evals_since_best >= cfg.stop.patience:
                        log.info(
                            f"stopped at step {st.step}: no better val loss in "
                            f"{cfg.stop.patience} evaluations (best.pt keeps the best)"
                        )
                        return "patience"
            if st.last_eval_step != st.step and not asked_to_stop(trainer, flag):
                log.info("final evaluation")
                evaluate_and_save(trainer, writer, peak)
            if asked_to_stop(trainer, flag):  # a signal after the last step: stop as asked
                writer.save_last()
                return f"signal {flag.signum or signal.SIGINT}"
        return reason
    finally:
        bar.close()


def asked_to_stop(trainer: Trainer, flag: StopFlag) -> bool:
    """Whether a signal asked any rank to stop (one collective: every rank agrees)."""
    return trainer.dist.sync([float(flag.signum is not None)], ["max"])[0] > 0


def stop_reason(trainer: Trainer) -> str | None:
    """Why the loop must end before the next step, decided from agreed values only."""
    st, stop = trainer.state, trainer.cfg.stop
    if st.step >= stop.max_iters:
        return "max_iters"
    if trainer.budget.over():
        return "time_budget"
    if stop.epochs and trainer.epochs_done() >= stop.epochs:
        return "epochs"
    if st.decay_start >= 0 and trainer.progress() >= st.decay_end:
        return "decayed"
    return None


def eval_count(trainer: Trainer) -> int:
    """How many evaluations a run spaced by its progress gets (the budget's say:
    :meth:`.budget.Budget.evaluations`)."""
    ev, passes_may_end = trainer.cfg.eval, bool(trainer.cfg.stop.epochs)
    return trainer.budget.evaluations(ev.eval_points, ev.eval_seconds, passes_may_end)


def eval_due(trainer: Trainer) -> bool:
    """Whether to evaluate after the step just taken (a function of agreed values only):
    every eval_interval steps, or when the run's progress passes the next of eval_count
    evenly spaced points."""
    st, ev = trainer.state, trainer.cfg.eval
    if ev.eval_interval is not None:
        return st.step % ev.eval_interval == 0
    k = eval_count(trainer)
    now = math.floor(trainer.progress() * k + 1e-9)
    last = math.floor(st.last_eval_progress * k + 1e-9) if st.last_eval_step >= 0 else -1
    return now > last


def evaluate_and_save(trainer: Trainer, writer, peak: float | None) -> None:
    """Estimate the losses (the trainer raises if they diverged), branch the decay off at a
    plateau (``decay_on_plateau``), then write what the run keeps; the time it all took is
    measured, for the end of a budget."""
    t0 = trainer.clock()
    losses = trainer.estimate_loss()
    st = trainer.state
    is_best = st.record_eval(losses["val"], trainer.progress())
    branch_decay(trainer)
    rate = trainer.tokens_per_s()
    util = mfu(rate, estimate_flops(trainer.model.cfg), peak)
    lr = trainer.last_lr if trainer.last_lr is not None else trainer.lr()
    elapsed = trainer.budget.elapsed
    writer.on_eval(Evaluation(st.step, st.tokens, elapsed, lr, losses, is_best, rate, util))
    trainer.measure_eval(trainer.clock() - t0)


def branch_decay(trainer: Trainer) -> None:
    """At a plateau of the val loss, start the WSD decay now (``decay_on_plateau``)."""
    st, p = trainer.state, trainer.progress()
    optim = trainer.cfg.optim
    if st.decay_start >= 0 or (b := plateau_branch(optim, st.evals_since_best, p)) is None:
        return
    st.decay_start, st.decay_end = b
    log.info(
        f"the val loss has not improved for {optim.decay_on_plateau} evaluations: the "
        f"learning rate decays from here (step {st.step}, {p:.0%} of the run) to "
        f"{b[1]:.0%}, where the run ends"
    )


class StopFlag:
    """The first SIGINT/SIGTERM asks the loop to stop after its step (and says so); a second
    one stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.signum: int | None = None
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
        log.info("stopping after this step, saving last.pt; Ctrl-C again to stop now")

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


class Progress:
    """Between evaluations: a progress bar towards the run's real end (percent of it) on a
    terminal, and a cheap line (the mean training loss of the steps since the last line)
    halfway between two evaluation points."""

    def __init__(self, trainer: Trainer, bar: bool):
        self.trainer, self.losses = trainer, []
        self.half = math.floor(trainer.progress() * 2 * eval_count(trainer))
        self.bar = None
        if bar and trainer.dist.master:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=100.0,
                initial=round(100 * trainer.progress(), 1),
                unit="%",
                bar_format="{l_bar}{bar}| {n:.0f}/100% [{elapsed}<{remaining}{postfix}]",
                dynamic_ncols=True,
                disable=None,
                leave=False,
            )

    def update(self, r) -> None:
        t, st = self.trainer, self.trainer.state
        self.losses.append(r.loss)
        if self.bar is not None:
            self.bar.update(round(100 * t.progress(), 1) - self.bar.n)
            self.bar.set_postfix(step=st.step, loss=f"{r.loss:.3f}", refresh=False)
        half = math.floor(t.progress() * 2 * eval_count(t))
        if half > self.half and half % 2 == 1 and t.cfg.eval.eval_interval is None:
            mean = sum(self.losses) / len(self.losses)
            log.info(
                f"step {st.step:>6} | train {mean:.4f} (mean of {len(self.losses)} steps) | "
                f"lr {r.lr:.2e} | {t.tokens_per_s():,.0f} tok/s | {t.budget.elapsed:.0f}s"
            )
            self.losses = []
        self.half = max(self.half, half)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ======================================================================== 3. finish


def finish(p: Plan, trainer: Trainer, writer: RunWriter, stopped: str, peak,
           threads: Threads | None = None) -> TrainResult:  # fmt: skip
    """``summary.json`` (rank 0) and the result every rank returns."""
    st, rate = trainer.state, trainer.tokens_per_s()
    if trainer.dist.master:
        writer.summary(p, stopped, peak, threads.summary() if threads is not None else None)
    return TrainResult(
        p.run.path, st.step, st.best_val, st.last_val, trainer.budget.elapsed, rate,
        trainer.model.num_params(), stopped, mfu(rate, estimate_flops(trainer.model.cfg), peak),
    )  # fmt: skip
