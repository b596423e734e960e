"""The whole ``wordgpt train`` command, top to bottom: :func:`train` plans the run, trains its
model (:func:`wordgpt.training.train.train_model`), then, as the run asks and its time budget
allows, further members of its ensemble, the n-gram partner's weight and the report.

The time budget is the command's (:class:`~wordgpt.training.budget.Budget`): the model keeps
back what the end will take, each further member trains for the time left, and the report
leaves out what would not end in time. The run folder's lock is held from the first model to
the partner. The finish reads the run once, as ``wordgpt eval`` and ``sample`` will
(:func:`~.loaded.load`: ``best.pt`` and every member's), so the partner's weight is fitted on
exactly the weights every later use mixes it with, and the report evaluates that model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import InterruptError, WordGPTError
from ..fileio import read_json_object
from ..logs import console, log, only_rank0
from ..runs.members import member_dir
from ..settings import settings_of
from ..training.budget import Budget
from ..training.distributed import Dist, init, shutdown
from ..training.plan import Plan, plan
from ..training.setup import holding
from ..training.train import TrainResult, train_model
from ..training.trainer import DivergedError
from .loaded import Model, load


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
    checks everything and returns the :class:`~wordgpt.training.plan.Plan` (its ``str`` says
    what would run), writing nothing. ``started``: when the caller began (a ``clock``
    reading; the command line passes its own start, so a time budget counts its imports
    too); default now. Raises :class:`DivergedError` when the loss stays non-finite, and
    :class:`InterruptError` after a Ctrl-C (``last.pt`` saved).
    """
    started = clock() if started is None else started
    console()
    d = init(str(settings.get("device") or "auto"))
    try:
        with only_rank0(d.master):
            p = agreed(d, lambda: plan(data_dir, out, preset, settings, resume=resume,
                                       overwrite=overwrite, trust_pickle=trust_pickle))  # fmt: skip
            if dry_run:
                return p
            if p.why:
                log.info(f"recipe: {p.why}")
            budget = Budget(p.train.stop.time_budget, clock, started, report=report)
            with holding(p, d):
                result, stopped = train_model(p, budget, d), None
                if result.stopped == "epochs" and p.train.members > 1:
                    stopped = train_members(p, budget, d)  # a member a signal stopped
                    result = replace(result, stopped=stopped.stopped) if stopped else result
                m = read_run(p) if d.master and (report or p.train.ngram) else None
                if m is not None and p.train.ngram:
                    fit_partner(m, p.train.ngram, budget)
                if d.master and not result.stopped.startswith("signal"):
                    mark_complete(p)
            if report and d.master:  # the lock released: the report tells of a finished run
                write_run_report(m or p.run.path, budget.deadline())
            d.barrier()  # every rank done before the process group goes
            if result.stopped.startswith("signal"):
                at = stopped or result  # the model that was training: the run's or a member
                raise InterruptError(
                    f"stopped at step {at.step} by a signal; saved {at.run_dir}/last.pt "
                    "(continue the run with --resume)",
                    int(result.stopped.removeprefix("signal ")),
                )
            return replace(result, elapsed_s=clock() - started)
    finally:
        shutdown(d)


def agreed(d: Dist, make: Callable[[], Plan]) -> Plan:
    """The plan, made on every rank; a failure on any stops every rank with one line."""
    p, error = None, None
    try:
        p = make()
    except WordGPTError as e:
        error = e
    d.agree(error)
    return p


def train_members(p: Plan, budget: Budget, d: Dist) -> TrainResult | None:
    """Further members of the run's ensemble, one after another while the budget holds at
    least :data:`~wordgpt.training.budget.MEMBER_SHARE` of what the first model took (its
    pass cap ended it): the same recipe with seeds + 1, + 2, ..., each a run folder of its own
    in RUN/members/K (the same held-out slice kept from each), each with the time left less
    what the end of the run will take for every member. A resumed run counts the members it
    trained before (their time spent) and resumes the one it was training when it stopped.
    Not under several processes, nor without a time budget. Returns the result of a member
    that a signal stopped (no further member then starts), else None."""
    if d.enabled:
        log.info("note: no further members under several processes")
        return None
    took = budget.spent()  # the first model's
    models = 1
    while models < p.train.members:
        folder = member_dir(p.run.path, models + 1)
        summary = read_json_object(folder / "summary.json")
        ended, took_s = str(summary.get("stopped", "")), summary.get("elapsed_s")
        if ended == "diverged":
            break
        if ended and not ended.startswith("signal"):  # trained to its end before a resume
            budget.before += took_s if isinstance(took_s, int | float) else 0.0
            models += 1
            continue
        if (folder / "last.pt").is_file():  # the member the run was training when it stopped
            log.info(f"member {models + 1}: resuming its training in {folder}")
            keep = {
                k: getattr(p.train, k) for k in ("device", "threads", "progress", "tensorboard")
            }
            member = plan(p.data_dir, folder, None, keep, resume=True, trust_pickle=p.trust_pickle)
            left = member.train.stop.time_budget
        elif (left := budget.member_time(models, took)) is not None:
            log.info(
                f"the pass cap ended training with {left:.0f} s of the budget left: member "
                f"{models + 1} (seed {p.train.seed + models}) in {folder}"
            )
            settings = {**settings_of(p.model, p.train), "seed": p.train.seed + models,
                        "time_budget": left, "members": 1}  # fmt: skip
            member = plan(p.data_dir, folder, p.preset, settings, overwrite=True,
                          trust_pickle=p.trust_pickle)  # fmt: skip
        else:
            break
        try:
            with holding(member, d):
                result = train_model(member, Budget(left, budget.clock), d)
        except DivergedError as e:  # the ensemble leaves it out (its summary says diverged)
            log.warning(f"warning: member {models + 1} left out: {e}")
            break
        models += 1
        if result.stopped.startswith("signal"):
            return result
    if models > 1:
        summary = read_json_object(p.run.path / "summary.json")
        p.run.write_json("summary.json", {**summary, "members": models})
    return None


def mark_complete(p: Plan) -> None:
    """summary.json says the whole command ended (members and partner; the report may
    follow): a ``--resume`` of a run that made its passes then has nothing left to do."""
    summary = read_json_object(p.run.path / "summary.json")
    p.run.write_json("summary.json", {**summary, "complete": True})


def read_run(p: Plan) -> Model | None:
    """The trained run as every later use reads it (its ensemble with its members), for the
    partner's fit and the report; None when it cannot be read (the report then says why)."""
    try:
        return load(p.run.path, device=p.train.device)
    except WordGPTError:
        return None


def fit_partner(m: Model, order: int, budget: Budget) -> None:
    """The n-gram partner's weight, fitted with the weights of best.pt on the slice of the
    training split kept from the GPT (:meth:`.loaded.Model.fit_partner`), or on as much of its
    start as the budget holds: RUN/partner.json."""
    if m.path.name != "best.pt":
        return
    fit = m.fit_partner(order, budget.fit_tokens())
    h, n = fit["held_out_nats"], fit["held_out_tokens"]
    of = f"{n:,} of the last {budget.partner_tokens:,}" if n < budget.partner_tokens - 1 else (
        f"the last {n:,}")  # fmt: skip
    log.info(
        f"n-gram partner: order {fit['order']}, the GPT's weight {fit['gpt_weight']:.2f}, "
        f"fitted on {of} training tokens (kept from the GPT): {h['gpt']:.4f} nats/token "
        f"(GPT) -> {h['mixed']:.4f} (mixed)"
    )


def write_run_report(m: Model | Path, deadline: float | None = None) -> None:
    """The run's report; a run is complete without it (``wordgpt report RUN`` writes it).
    With a ``deadline`` what would not be done by then is left out, and the report says so."""
    from .report import write_report

    what = "the whole val split and three samples"
    log.info(f"writing the report: {what}{', as the time budget allows' if deadline else ''}")
    try:
        page, _ = write_report(m, deadline=deadline)
        log.info(f"report: {page}")
    except WordGPTError as e:
        log.warning(f"warning: no report written ({e}); `wordgpt report RUN` writes it later")
