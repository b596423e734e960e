"""Training a GPT on a data folder, from the first check to the report, in the order it
happens: :func:`train` is the whole procedure.

1. **Set-up** (:func:`plan` and what follows it in :func:`train`): every check that can be
   made before anything is written (settings, data, the run folder, the checkpoint to resume,
   the device, the memory it needs); then the run folder's lock, the model (from word vectors
   or another run's weights when asked), the dtype, and the
   :class:`~wordgpt.training.trainer.Trainer`, with a resumed run's state.
2. **The loop** (:func:`fit`): one optimizer step at a time until the run's first limit
   (steps, seconds, passes over the text, a plateau, patience, Ctrl-C); an evaluation at the
   start, whenever one is due, and at the end, each written by :class:`RunWriter`
   (metrics.csv, loss.png, last.pt and best.pt, TensorBoard, one line).
3. **Finish**: ``summary.json``, then the run's report (a whole-split evaluation and
   samples).

A time budget is the wall time the user waits: the set-up, the evaluations, the checkpoints
and the report are inside it. The loop keeps back what the end will take (measured by the
evaluations on the way) and evaluates less often when evaluations would take more than a
tenth of it. Output goes through the ``wordgpt`` logger (:mod:`wordgpt.logs`), rank 0 only.
Under several processes every decision is taken collectively.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ModelConfig, TrainConfig, from_dict, settings_of, to_dict, with_settings
from ..corpus.tokenfiles import load_meta, load_split, load_tokenizer, split_bits_per_char
from ..corpus.tokenizer import Tokenizer
from ..errors import CheckpointError, InterruptError, WordGPTError
from ..fileio import read_json_object
from ..folders import PREPARE_FIRST, expect
from ..logs import console, log, only_rank0
from ..model.device import (
    autocast_dtype,
    check_memory,
    cpu_prefers_bf16,
    dtype_name,
    peak_flops,
    pick_device,
    step_timer,
)
from ..model.gpt import GPT, estimate_flops, estimate_params
from ..presets import preset_configs
from ..runs import checkpoint
from ..runs.folder import RunDir
from ..use.loaded import member_checkpoints
from ..use.ngram import HELD_OUT, gpt_tokens, partner_order
from .distributed import Dist, init, shutdown
from .optim import plateau_branch
from .trainer import DivergedError, Trainer, compiles

EVAL_SHARE = 0.1
"""With a time budget, evaluations take at most this share of it (they are spread out)."""
FINISH_SLACK_S = 3.0
"""Seconds a time budget keeps for the end beyond what was measured; a budgeted run ends
within about this much of its time."""


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


# ======================================================================== the procedure


def train(
    data_dir: str | Path,
    out: str | Path | None = None,
    preset: str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    trust_pickle: bool = False,
    report: bool = True,
    dry_run: bool = False,
    clock: Callable[[], float] = time.perf_counter,
    started: float | None = None,
    **settings: Any,
):
    """Train a GPT on the token files in ``data_dir``, writing the run folder ``out``
    (default ``runs/DATA-PRESET``), and return a :class:`TrainResult`.

    ``settings`` are fields of ModelConfig or TrainConfig (its optimiser, stopping and
    evaluation parts included): ``n_layer=2``, ``lr=1e-3``, ``time_budget=60``. Without a
    ``preset`` the recipe measured best for the time budget on this machine is taken (with
    ``init_from``: the ``finetune`` recipe). A folder that holds a run is refused unless
    ``resume`` (continue from ``out/last.pt`` with its saved configs; training settings may
    still change, e.g. a larger ``max_iters``) or ``overwrite`` (move the old run aside
    first). ``trust_pickle`` lets ``init_embeddings`` be a gensim .kv file (a pickle: it can
    run code). ``report`` writes RUN/report.html and report.md at the end. ``dry_run``
    checks everything and returns the :class:`Plan` (its ``str`` says what would run),
    writing nothing. ``started``: when the caller began (a ``clock`` reading; the command
    line passes its own start, so a time budget counts its imports too); default now.
    Raises :class:`DivergedError` when the loss stays non-finite, and
    :class:`InterruptError` after a Ctrl-C (``last.pt`` saved).
    """
    started = clock() if started is None else started
    console()
    d = init(str(settings.get("device") or "auto"))
    try:
        with only_rank0(d.master):
            # ---------------------------------------------------------------- 1. set-up
            p, error = None, None
            try:
                p = plan(data_dir, out, preset, resume, overwrite, settings, trust_pickle)
            except WordGPTError as e:
                error = e
            d.agree(error)
            if dry_run:
                return p
            if p.why:
                log.info(f"recipe: {p.why}")
            lock_run(p, d)
            trainer = None
            try:
                trainer, emb_info = build(p, d, clock, started)
                log.info(model_line(p, trainer))
                writer = RunWriter(p, trainer, emb_info, d, report)
                peak = peak_flops(trainer.device, trainer.dtype) if d.master else None
                # ------------------------------------------------------------ 2. the loop
                try:
                    stopped = fit(trainer, writer, peak)
                except DivergedError:
                    finish(p, trainer, "diverged", d, peak)
                    raise
                finally:
                    writer.close()
                # ---------------------------------------------------------------- 3. finish
                result = finish(p, trainer, stopped, d, peak)
                if stopped == "epochs" and p.train.members > 1:
                    train_members(p, d, trainer)
                if p.train.ngram and d.master:
                    fit_partner(p, trainer)
            finally:
                if trainer is not None:
                    trainer.close()
                p.run.unlock()
            if report and d.master:
                write_run_report(p.run.path, report_deadline(p, trainer))
            d.barrier()  # every rank done before the process group goes
            if result.stopped.startswith("signal"):
                raise InterruptError(
                    f"stopped at step {result.step} by a signal; saved {result.run_dir}/last.pt "
                    "(continue with --resume)",
                    int(result.stopped.removeprefix("signal ")),
                )
            return replace(result, elapsed_s=clock() - started)
    finally:
        shutdown(d)


# ======================================================================== 1. set-up


@dataclass
class Plan:
    """A run about to start: resolved configs, data and checks passed; nothing written."""

    data_dir: Path
    run: RunDir
    preset: str
    model: ModelConfig
    train: TrainConfig
    meta: dict
    tokenizer: Tokenizer
    resume_from: dict | None = None
    """The checkpoint a resumed run continues from."""
    overwrite: bool = False
    trust_pickle: bool = False
    """Word vectors may be a gensim .kv pickle (the user said so)."""
    init: Any = None
    """With ``init_from``: the run the weights come from (a :class:`.init_from.Source`)."""
    init_info: dict | None = None
    """Where the weights came from, once the model is built: recorded in the run."""
    why: str | None = None
    """Why this preset: the recipe picked for the budget on this machine, when it was."""

    def __str__(self) -> str:
        m, t, stop = self.model, self.train, self.train.stop
        what = f"resume {self.run.path}/last.pt" if self.resume_from else f"new run {self.run.path}"
        limits = f"{stop.time_budget:g} s or " if stop.time_budget else ""
        tokens = self.meta.get("splits", {}).get("train", {}).get("tokens")
        if stop.epochs:
            of = f" of {gpt_tokens(tokens, t.ngram):,} tokens" if tokens else ""
            limits += f"{stop.epochs:g} passes over the training split{of} or "
        why = f"\nrecipe: {self.why}" if self.why else ""
        if t.ngram:
            why += (f"\nn-gram partner: order {t.ngram}; the GPT trains on all but the last "
                    f"{HELD_OUT:.0%} of the training split, where the mixture's weight is "
                    "fitted")  # fmt: skip
        return (
            f"{what}: preset {self.preset}, {estimate_params(m):,} parameters "
            f"({m.n_layer} layers, {m.n_head} heads, {m.n_embd} wide, block {m.block_size}, "
            f"{m.head} head, {m.pos} positions) on {self.data_dir} "
            f"(vocabulary {m.vocab_size:,}); {limits}{stop.max_iters:,} steps of "
            f"{t.batch_size} x {t.grad_accum} sequences, lr {t.optim.lr:g}, device {t.device}, "
            f"dtype {t.dtype}{why}"
        )


def plan(
    data_dir: str | Path,
    out: str | Path | None,
    preset: str | None,
    resume: bool,
    overwrite: bool,
    settings: dict[str, Any],
    trust_pickle: bool = False,
) -> Plan:
    """Resolve and check everything before anything is written; one clear error if not."""
    data_dir = Path(data_dir)
    run = RunDir(out or Path("runs") / f"{data_dir.name}-{preset or 'auto'}")
    if resume and overwrite:
        raise WordGPTError("--resume and --overwrite contradict each other; choose one")
    if resume and settings.get("init_from"):
        raise WordGPTError(
            "--init-from starts a new run from another one's weights, --resume continues "
            "this one; choose one (a fine-tune is a new run: give it a new --out)"
        )
    meta, tok = data_folder(data_dir)
    if resume:
        p = resumed(run, data_dir, meta, tok, preset, settings)
    else:
        run.check_new(overwrite)
        p = new_run(run, data_dir, meta, tok, preset, settings)
    p.overwrite, p.trust_pickle = overwrite, trust_pickle
    check_data(meta, p.model, data_dir)
    if not p.resume_from:  # a resumed run keeps the partner it started with
        order, note = partner_order(meta["splits"]["train"]["tokens"], meta["vocab_size"],
                                    p.train.ngram)  # fmt: skip
        p.train = replace(p.train, ngram=order)
        if note:
            log.info(note)
    check_memory(p.model, p.train.batch_size, p.train.device)
    pick_device(p.train.device)  # a device that does not exist is refused now
    return p


def data_folder(data_dir: Path) -> tuple[dict, Tokenizer]:
    """A data folder's meta.json and tokenizer, checked against each other."""
    expect(data_dir, ("data",), "--data", PREPARE_FIRST)
    meta = load_meta(data_dir)
    tok = load_tokenizer(data_dir)
    if tok.vocab_size != meta["vocab_size"]:
        raise WordGPTError(
            f"{data_dir}: tokenizer.json ({tok.vocab_size:,} tokens) and meta.json "
            f"({meta['vocab_size']:,}) disagree; prepare the folder again"
        )
    return meta, tok


def new_run(run, data_dir, meta, tok, preset, settings) -> Plan:
    """A new run: the preset's recipe with the settings; with ``init_from``, the model's
    shape from that run and the ``finetune`` recipe unless a preset is given; with neither,
    the recipe measured best for the budget on this machine (:mod:`.speed`)."""
    why = None
    with_settings(ModelConfig(), TrainConfig(), settings)  # a setting that cannot work: now
    if preset is None and not settings.get("init_from"):
        from .speed import pick_recipe, probe_speed

        budget = settings.get("time_budget") or TrainConfig().stop.time_budget
        log.info("measuring this machine's speed to pick the recipe for the budget (2 s)")
        pick = pick_recipe(meta["tokenizer"], budget, probe_speed(settings.get("device", "auto")))
        preset, why = pick.preset, pick.why
        settings = {"time_budget": budget, **settings}  # the run keeps its budget
    preset = preset or "finetune"
    model, tcfg = with_settings(*preset_configs(preset), settings)
    p = Plan(data_dir, run, preset, replace(model, vocab_size=meta["vocab_size"]), tcfg, meta, tok)
    p.why = why
    if tcfg.init_from:
        from .init_from import load_source

        model_settings = {k: v for k, v in settings.items() if hasattr(model, k)}
        p.init, p.model = load_source(tcfg.init_from, model_settings, tok)
    return p


def resumed(run, data_dir, meta, tok, preset, settings) -> Plan:
    """A resumed run: its own configs from last.pt (training settings may change)."""
    run.check_writable()
    ck = checkpoint.read(run / "last.pt", resume=True)
    checkpoint.check_tokenizer(ck, tok, run / "last.pt", str(data_dir))
    saved = ck.get("preset") or "cpu"  # runs made before runs recorded it: the cpu recipe
    if preset is not None and preset != saved:
        raise WordGPTError(
            f"{run.path} was trained with preset {saved!r}; a resume keeps it "
            f"(drop --preset {preset}, or start a new run)"
        )
    mcfg = checkpoint.model_config(ck, run / "last.pt")
    try:
        tcfg = from_dict(TrainConfig, {"ngram": 0, **ck["train_config"]})  # older: no partner
        model, tcfg = with_settings(mcfg, tcfg, settings)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{run.path}/last.pt has a train config that fails: {e}") from None
    if model != mcfg:
        changed = sorted(k for k in to_dict(mcfg) if getattr(model, k) != getattr(mcfg, k))
        raise WordGPTError(f"the model's shape cannot change on resume: {changed}")
    tokens = ck.get("state", {}).get("tokens", 0)
    n = gpt_tokens(meta["splits"]["train"]["tokens"], tcfg.ngram)
    if tcfg.stop.epochs and n and tokens / n >= tcfg.stop.epochs:
        raise WordGPTError(
            f"{run.path} has already made {tokens / n:.2f} passes over the training split, its "
            f"--epochs {tcfg.stop.epochs:g}; give a larger --epochs (or --epochs 0: no cap) "
            "to go on"
        )
    return Plan(data_dir, run, saved, mcfg, tcfg, meta, tok, resume_from=ck)


def check_data(meta: dict, mcfg: ModelConfig, data_dir: Path) -> None:
    V = meta["vocab_size"]
    if V < 2 or mcfg.vocab_size != V:
        raise WordGPTError(
            f"{data_dir} has a vocabulary of {V} token(s); a language model needs at least 2"
            if V < 2
            else "the model's vocabulary size differs from the data's"
        )
    for split in ("train", "val"):
        n = meta["splits"][split]["tokens"]
        if n < mcfg.block_size + 2:
            raise WordGPTError(
                f"block_size {mcfg.block_size:,} needs more tokens than the {split} split has "
                f"({n:,}); use a smaller --block-size"
            )


def lock_run(p: Plan, d: Dist) -> None:
    """Rank 0 takes the folder's lock, first (a folder in use is never moved), and moves an
    old run aside when asked; every rank learns whether that worked."""
    error = None
    if d.master:
        try:
            p.run.lock()
            if p.overwrite and p.run.holds_run():
                moved = p.run.move_aside()
                p.run.unlock()  # the moved folder kept its lock while it moved
                p.run.lock()
                log.info(f"moved the previous run aside to {moved}")
        except WordGPTError as e:
            p.run.unlock()
            error = e
    d.agree(error)


def build(p: Plan, d: Dist, clock, started: float) -> tuple[Trainer, dict | None]:
    """The model (its initial weights from word vectors or another run when asked), the
    dtype, the trainer on the data, and a resumed run's state."""
    device = d.device or pick_device(p.train.device)
    model, emb_info = build_model(p)
    dtype = choose_dtype(p, model, device, d)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model.to(device)
    train, val = load_split(p.data_dir, "train"), load_split(p.data_dir, "val")
    train = train[: gpt_tokens(len(train), p.train.ngram)]  # a partner's slice held out
    trainer = Trainer(model, p.train, train, val, device, dtype, d, clock=clock)
    if (ck := p.resume_from) is not None:
        trainer.load_state_dict(ck)
        log.info(f"resumed {p.run.path}/last.pt at step {trainer.state.step}{world_note(p, d)}")
    trainer.start_clock(started)
    return trainer, emb_info


def build_model(p: Plan) -> tuple[GPT, dict | None]:
    """The model with its initial weights, and where its embedding came from. With
    ``embeddings_fit="model"`` the width follows the vectors (``p.model`` is updated)."""
    mcfg, tcfg = p.model, p.train
    torch.manual_seed(tcfg.seed)
    info, matrix = None, None
    if tcfg.init_embeddings and p.resume_from is None:
        from .embedding_init import embedding_matrix

        train_ids = np.asarray(load_split(p.data_dir, "train"))
        matrix, info = embedding_matrix(
            tcfg.init_embeddings, p.tokenizer, mcfg.n_embd, fit=tcfg.embeddings_fit,
            limit=tcfg.embeddings_limit, seed=tcfg.seed, trust_pickle=p.trust_pickle,
            counts=np.bincount(train_ids, minlength=p.tokenizer.vocab_size),
        )  # fmt: skip
        if matrix.shape[1] != mcfg.n_embd:  # fit == "model": the width follows the vectors
            mcfg = p.model = replace(mcfg, n_embd=matrix.shape[1])
    model = GPT(mcfg)
    if matrix is not None:
        with torch.no_grad():
            model.wte.weight.copy_(torch.from_numpy(matrix))
    if p.init is not None and p.resume_from is None:
        from .init_from import init_weights

        p.init_info = {**p.init.provenance(), **init_weights(model, p.init, p.tokenizer)}
        vocab = (
            "the same vocabulary" if p.init.same_vocabulary else
            f"{p.init_info['shared_tokens']:,} tokens shared, {p.init_info['new_tokens']:,} "
            "new (the mean of its rows)"
        )  # fmt: skip
        log.info(f"starting from {p.init.path} (step {p.init.ck.get('step')}): {vocab}")
    if p.resume_from is not None:
        info = p.resume_from.get("provenance", {}).get("embeddings")
        p.init_info = p.resume_from.get("provenance", {}).get("init_from")
    return model, info


def choose_dtype(p: Plan, model: GPT, device: torch.device, d: Dist) -> torch.dtype | None:
    """The autocast dtype; for auto on a CPU rank 0 measures and every rank takes its answer."""
    mcfg, B = model.cfg, min(p.train.batch_size, 4)

    def probe() -> bool:
        ok = 0.0
        if d.master:
            x = torch.randint(mcfg.vocab_size, (B, mcfg.block_size))
            shape = json.dumps(to_dict(mcfg), sort_keys=True)
            ok = float(cpu_prefers_bf16(f"{shape} batch {B}", step_timer(model, x, x)))
        return d.sync([ok], ["rank0"])[0] > 0

    return autocast_dtype(p.train.dtype, device, probe)


def world_note(p: Plan, d: Dist) -> str:
    was = p.resume_from.get("world_size", 1)
    if was == d.world:
        return ""
    t = p.train
    return (
        f"; world size {d.world} (was {was}): the global batch is now "
        f"{t.batch_size * t.grad_accum * d.world} sequences, so the data order continues by "
        "step but differs from an uninterrupted run"
    )


def model_line(p: Plan, trainer: Trainer) -> str:
    m = p.model
    return (
        f"model: {trainer.model.num_params():,} parameters, "
        f"{estimate_flops(trainer.model.cfg) / 1e6:,.1f} MFLOPs per token | {m.n_layer} layers, "
        f"{m.n_head} heads, {m.n_embd} wide, block {m.block_size}, {m.head} head | "
        f"device {trainer.device}, {dtype_name(trainer.dtype)}"
        + (", torch.compile" if compiles(trainer.cfg, trainer.device) else "")
    )


# ======================================================================== 2. the loop


def fit(trainer: Trainer, writer, peak: float | None = None, progress=None) -> str:
    """Train until the run's first limit, evaluating at step 0, whenever due, and at the
    end; ``writer`` keeps each evaluation (:class:`RunWriter`). Returns why it stopped;
    raises :class:`DivergedError`."""
    st, cfg = trainer.state, trainer.cfg
    bar = progress if progress is not None else Progress(trainer, cfg.progress)
    try:
        with StopFlag() as flag:
            if st.step == 0:
                evaluate_and_save(trainer, writer, peak)
            while (reason := stop_reason(trainer)) is None:
                r = trainer.train_step(flag.signum is not None)
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
    if stop.time_budget is not None and st.elapsed >= trainer.train_until():
        return "time_budget"
    if stop.epochs and trainer.epochs_done() >= stop.epochs:
        return "epochs"
    if st.decay_start >= 0 and trainer.progress() >= st.decay_end:
        return "decayed"
    return None


def eval_count(trainer: Trainer) -> int:
    """How many evaluations a run spaced by its progress gets: eval_points, and one every
    eval_seconds of a time budget (unless epochs may end the run long before the budget);
    fewer when, as measured, they would take more than EVAL_SHARE of the budget."""
    ev, stop, st = trainer.cfg.eval, trainer.cfg.stop, trainer.state
    budget = 0 if stop.epochs else (stop.time_budget or 0)
    k = max(ev.eval_points, math.ceil(budget / ev.eval_seconds))
    if stop.time_budget and st.eval_cost > 0:
        k = min(k, max(1, int(EVAL_SHARE * stop.time_budget / st.eval_cost)))
    return k


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


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the estimated losses, and where the run was."""

    step: int
    tokens: int
    elapsed: float
    lr: float
    losses: dict[str, float]
    is_best: bool
    tokens_per_s: float
    mfu: float | None
    """Achieved FLOP/s over the measured peak of the dtype in use (None: no peak known)."""


def evaluate_and_save(trainer: Trainer, writer, peak: float | None) -> None:
    """Estimate the losses (the trainer raises if they diverged), branch the decay off at a
    plateau (``decay_on_plateau``), then write what the run keeps; the time it all took is
    measured, for the end of a budget."""
    t0 = trainer.clock()
    losses = trainer.estimate_loss()
    st = trainer.state
    is_best = st.record_eval(losses["val"], trainer.progress())
    branch_decay(trainer)
    rate = st.tokens / st.train_seconds if st.train_seconds > 0 else 0.0
    mfu = rate * estimate_flops(trainer.model.cfg) / peak if peak and rate > 0 else None
    lr = trainer.last_lr if trainer.last_lr is not None else trainer.lr()
    writer.on_eval(Evaluation(st.step, st.tokens, st.elapsed, lr, losses, is_best, rate, mfu))
    trainer.measure_eval(trainer.clock() - t0, writer.final_tokens, writer.slack)


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
            rate = st.tokens / st.train_seconds if st.train_seconds > 0 else 0.0
            mean = sum(self.losses) / len(self.losses)
            log.info(
                f"step {st.step:>6} | train {mean:.4f} (mean of {len(self.losses)} steps) | "
                f"lr {r.lr:.2e} | {rate:,.0f} tok/s | {st.elapsed:.0f}s"
            )
            self.losses = []
        self.half = max(self.half, half)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


RESUME_ONLY = ("optimizer", "train_model", "ema_updates", "scaler")
"""What ``last.pt`` holds for resuming and ``best.pt`` leaves out (it is for sampling and
evaluation)."""


class RunWriter:
    """What a run keeps, written by rank 0: config.json and tokenizer.json at the start;
    at each evaluation a row of metrics.csv, loss.png, last.pt (and best.pt on a strictly
    better val loss, with only what sampling needs), TensorBoard scalars and a sample, and
    one line. A failure to write stops every rank."""

    def __init__(
        self, p: Plan, trainer: Trainer, emb_info: dict | None, d: Dist, report: bool = True
    ):
        self.run, self.trainer, self.d, self.tokenizer = p.run, trainer, d, p.tokenizer
        n_train = p.meta["splits"]["train"]["tokens"]
        held = n_train - gpt_tokens(n_train, p.train.ngram)
        self.final_tokens = held + (p.meta["splits"]["val"]["tokens"] if report else 0)
        """Tokens the end of the run evaluates besides a loss estimate: the partner's
        held-out slice and the report's whole val split (the trainer keeps back the seconds
        they take at its evaluation speed)."""
        self.slack = FINISH_SLACK_S if report else 0.5
        """Seconds kept for the end beyond what is measured (the report's samples, loading
        the model again, summary.json)."""
        self.extra = {
            "model_config": to_dict(p.model),
            "train_config": to_dict(p.train),
            "data_config": p.meta["config"],
            "data_dir": str(p.data_dir.resolve()),
            "preset": p.preset,
            "world_size": d.world,
            "tokenizer": checkpoint.tokenizer_json(p.tokenizer),
            "provenance": {
                "data": p.meta["source"],
                "embeddings": emb_info,
                "init_from": p.init_info,
            },
        }
        self.rows: list[dict] = []
        self.tb = None
        if d.master:
            self._agreed(lambda: self._start(p))
        else:
            d.agree(None)

    def _start(self, p: Plan) -> None:
        self.run.write_json(
            "config.json",
            {
                "data_dir": self.extra["data_dir"],
                "preset": p.preset,
                "recipe": p.why,
                "data": p.meta["config"],
                "model": self.extra["model_config"],
                "train": self.extra["train_config"],
                "init_from": p.init_info,
            },
        )
        self.run.write_tokenizer(p.tokenizer)
        step = self.trainer.state.step
        self.rows = self.run.read_metrics(step)
        if step > 0 and not self.rows:
            log.warning(
                f"warning: {self.run.path}/metrics.csv is missing or empty: the curve starts "
                f"again at step {step} (the rows before it are lost)"
            )
        self.tb = open_tensorboard(self.run.base, p.train.tensorboard)

    def _agreed(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on rank 0; a failure there stops every rank."""
        error = None
        if self.d.master:
            try:
                fn()
            except WordGPTError as e:
                error = e
        self.d.agree(error)

    def on_eval(self, e: Evaluation) -> None:
        self._agreed(lambda: self._write(e))

    def _write(self, e: Evaluation) -> None:
        self.rows.append(
            {
                "step": e.step,
                "train_loss": f"{e.losses['train']:.5f}",
                "val_loss": f"{e.losses['val']:.5f}",
                "lr": f"{e.lr:.6g}",
                "tokens": e.tokens,
                "elapsed_s": f"{e.elapsed:.2f}",
            }
        )
        self.run.write_metrics(self.rows)
        self.run.plot()
        payload = self.payload()
        checkpoint.save(payload, self.run / "last.pt")
        if e.is_best:
            checkpoint.save({k: v for k, v in payload.items() if k not in RESUME_ONLY},
                            self.run / "best.pt")  # fmt: skip
        if self.tb is not None:
            for split, loss in e.losses.items():
                self.tb.add_scalar(f"loss/{split}", loss, e.step)
            self.tb.add_scalar("lr", e.lr, e.step)
            self.tb.add_scalar("tokens_per_s", e.tokens_per_s, e.step)
            self.tb.add_text("sample", self.sample(), e.step)
            self.tb.flush()
        mfu = f" | MFU {e.mfu:.1%}" if e.mfu is not None else ""
        log.info(
            f"step {e.step:>6} | train {e.losses['train']:.4f} | val {e.losses['val']:.4f} | "
            f"lr {e.lr:.2e} | {e.tokens_per_s:,.0f} tok/s{mfu} | {e.elapsed:.0f}s"
        )

    def payload(self) -> dict:
        t, st = self.trainer, self.trainer.state
        p = {**t.state_dict(), **self.extra}
        p.update(step=st.step, tokens=st.tokens, best_val=st.best_val, last_val=st.last_val)
        return p

    def save_last(self) -> None:
        """``last.pt`` now, without an evaluation (a run stopped by a signal)."""
        self._agreed(lambda: checkpoint.save(self.payload(), self.run / "last.pt"))

    def sample(self, tokens: int = 40) -> str:
        """A short seeded sample of the weights in use (the showcase setting)."""
        from ..use.generate import SHOWCASE, stream_text

        cfg = replace(SHOWCASE, max_new_tokens=tokens)
        return "".join(stream_text(self.trainer.eval_model, self.tokenizer, "", cfg))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def open_tensorboard(run_dir: Path, wanted: bool | None):
    """A SummaryWriter in RUN/tensorboard, if wanted (unset: when the package is installed)."""
    if wanted is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if wanted:
            raise WordGPTError(
                "--tensorboard needs the tensorboard package: pip install 'wordgpt[tensorboard]'"
            ) from None
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


# ======================================================================== 3. finish


def finish(p: Plan, trainer: Trainer, stopped: str, d: Dist, peak: float | None) -> TrainResult:
    """``summary.json`` (rank 0) and the result every rank returns."""
    st = trainer.state
    rate = st.tokens / st.train_seconds if st.train_seconds > 0 else 0.0
    flops = rate * estimate_flops(trainer.model.cfg)
    mfu = flops / peak if peak and rate > 0 else None
    params = trainer.model.num_params()
    val = p.meta["splits"]["val"]
    best = st.best_val if math.isfinite(st.best_val) else None
    if d.master:
        p.run.write_json(
            "summary.json",
            {
                "step": st.step,
                "stopped": stopped,
                "best_val": best,
                "best_val_bits_per_char_estimate": (
                    split_bits_per_char(val, best) if best is not None else None
                ),
                "last_val": st.last_val if math.isfinite(st.last_val) else None,
                "elapsed_s": st.elapsed,
                "train_seconds": st.train_seconds,
                "tokens": st.tokens,
                "tokens_per_s": rate,
                "params": params,
                "flops_per_token": estimate_flops(trainer.model.cfg),
                "flops_per_s": flops,
                "peak_flops": peak,
                "mfu": mfu,
                "device": str(trainer.device),
                "dtype": dtype_name(trainer.dtype),
                "preset": p.preset,
                "recipe": p.why,
                "init_from": p.init_info,
                "val_unk_share": val.get("unk_share", 0.0),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
    return TrainResult(
        p.run.path, st.step, st.best_val, st.last_val, st.elapsed, rate, params, stopped, mfu
    )


MEMBER_SHARE = 0.5
"""A further member starts only with at least this share of the first model's wall time left
(then it trains for the time left, its schedule following its own budget)."""


def train_members(p: Plan, d: Dist, trainer: Trainer) -> None:
    """Further members of the run's ensemble, one after another while the time budget holds
    at least MEMBER_SHARE of what the first took (its pass cap ended it): the same recipe
    with seeds + 1, + 2, ..., each a run folder of its own in RUN/members/K (the same held-out
    slice kept from each), each with the time left less what the end of the run will take
    for every member. Not under several processes, nor without a time budget."""
    budget, took = p.train.stop.time_budget, trainer.wall_seconds()  # the first model's
    if not budget or d.enabled:
        if d.enabled:
            log.info("note: no further members under several processes")
        return
    members = 1 + len(member_checkpoints(p.run.path))  # a resumed run's too
    while members < p.train.members:
        end = (members + 1) * trainer.state.reserve  # the report evaluates every member
        left = budget - trainer.wall_seconds() - end  # the whole run's wall time so far
        if left < MEMBER_SHARE * took:
            break
        members += 1
        log.info(
            f"the pass cap ended training with {left:.0f} s of the budget left: member "
            f"{members} (seed {p.train.seed + members - 1}) in {p.run.path}/members/{members}"
        )
        try:
            train(p.data_dir, p.run.path / "members" / str(members), p.preset, overwrite=True,
                  trust_pickle=p.trust_pickle, report=False, clock=trainer.clock,
                  **member_settings(p, members, left))  # fmt: skip
        except DivergedError as e:  # the ensemble leaves it out (its summary says diverged)
            log.warning(f"warning: member {members} left out: {e}")
            members -= 1
            break
    if members > 1:
        summary = read_json_object(p.run.path / "summary.json")
        p.run.write_json("summary.json", {**summary, "members": members})


def member_settings(p: Plan, k: int, budget: float) -> dict:
    """Every setting of the run, for its member ``k``: another seed, the budget left."""
    every = settings_of(p.model, p.train)
    return {**every, "seed": p.train.seed + k - 1, "time_budget": budget, "members": 1}


def fit_partner(p: Plan, trainer: Trainer) -> None:
    """Fit the n-gram partner's weight on the slice of the training split kept from the GPT,
    with the weights of best.pt (:meth:`.loaded.Model.fit_partner`): RUN/partner.json."""
    from ..use.loaded import load

    if not (p.run.path / "best.pt").is_file():
        return
    fit = load(p.run.path, device=str(trainer.device)).fit_partner(p.train.ngram)
    h = fit["held_out_nats"]
    log.info(
        f"n-gram partner: order {fit['order']}, the GPT's weight {fit['gpt_weight']:.2f}, "
        f"fitted on the last {fit['held_out_tokens']:,} training tokens (kept from the GPT): "
        f"{h['gpt']:.4f} nats/token (GPT) -> {h['mixed']:.4f} (mixed)"
    )


def report_deadline(p: Plan, trainer: Trainer) -> float | None:
    """When the report must be done (a ``time.perf_counter()`` reading): a time budget is the
    whole run's wall time (a resumed run's earlier trainings included), the report too; None
    without one."""
    budget = p.train.stop.time_budget
    if budget is None:
        return None
    return time.perf_counter() + max(budget - trainer.wall_seconds(), 0.0)


def write_run_report(run_dir: Path, deadline: float | None = None) -> None:
    """The run's report; a run is complete without it (``wordgpt report RUN`` writes it).
    With a ``deadline`` what would not be done by then is left out, and the report says so."""
    from ..use.report import write_report

    what = "the whole val split and three samples"
    log.info(f"writing the report: {what}{', as the time budget allows' if deadline else ''}")
    try:
        page, _ = write_report(run_dir, deadline=deadline)
        log.info(f"report: {page}")
    except WordGPTError as e:
        log.warning(f"warning: no report written ({e}); `wordgpt report RUN` writes it later")
