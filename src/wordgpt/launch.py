"""From a data folder and settings to a finished run folder: ``train()``.

Three steps, each a short function: :func:`plan_run` resolves the configs and checks
everything that can be checked before anything is written (settings, data, the run folder,
the checkpoint to resume, the device); :func:`start` takes the run folder's lock and builds
the model and :class:`~wordgpt.train.Trainer`; :class:`RunWriter` keeps the records at each
evaluation (metrics, plot, checkpoints, TensorBoard, a console line).
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint, distributed, tokenizers
from .config import (
    DEFAULT_PRESET,
    ModelConfig,
    SampleConfig,
    TrainConfig,
    from_dict,
    get_preset,
    split_overrides,
    to_dict,
)
from .data import load_meta, load_split
from .device import autocast_dtype, cpu_prefers_bf16, dtype_name, pick_device, step_timer
from .distributed import Dist
from .errors import CheckpointError, WordGPTError
from .model import GPT, estimate_params
from .rundir import RunDir
from .trainer import DivergedError, Trainer


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
    """Why the loop ended: max_iters, time_budget, patience or signal."""


@dataclass
class Plan:
    """A run about to start: resolved configs, data and checks passed; nothing written."""

    data_dir: Path
    run: RunDir
    preset: str
    model: ModelConfig
    train: TrainConfig
    meta: dict
    tokenizer: tokenizers.Tokenizer
    resume_from: dict | None
    overwrite: bool

    def describe(self) -> str:
        m, t = self.model, self.train
        what = f"resume {self.run.path}/last.pt" if self.resume_from else f"new run {self.run.path}"
        budget = f"{t.time_budget:g} s or " if t.time_budget else ""
        return (
            f"{what}: preset {self.preset}, {estimate_params(m):,} parameters "
            f"({m.n_layer} layers, {m.n_head} heads, {m.n_embd} wide, block {m.block_size}, "
            f"{m.head} head, {m.pos} positions) on {self.data_dir} "
            f"(vocabulary {m.vocab_size:,}); {budget}{t.max_iters:,} steps of "
            f"{t.batch_size} x {t.grad_accum} sequences, lr {t.lr:g}, device {t.device}, "
            f"dtype {t.dtype}"
        )


# ------------------------------------------------------------------------ planning


def plan_run(
    data_dir: str | Path,
    out: str | Path,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **overrides: Any,
) -> Plan:
    """Resolve and check everything before anything is written; one clear error if not."""
    data_dir, run = Path(data_dir), RunDir(out)
    if resume and overwrite:
        raise WordGPTError("--resume and --overwrite contradict each other; choose one")
    meta = load_meta(data_dir)
    tok = tokenizers.load(data_dir / "tokenizer.json")
    m_over, t_over = split_overrides(overrides)
    ck = None
    if resume:
        run.check_writable()
        ck = checkpoint.load(run / "last.pt", resume=True)
        checkpoint.check_tokenizer(ck, tok, run / "last.pt", str(data_dir))
        saved = ck.get("preset") or DEFAULT_PRESET
        if preset is not None and preset != saved:
            raise WordGPTError(
                f"{run.path} was trained with preset {saved!r}; a resume keeps it "
                f"(drop --preset {preset}, or start a new run)"
            )
        if m_over:
            raise WordGPTError(f"the model's shape cannot change on resume: {sorted(m_over)}")
        preset = saved
        mcfg = checkpoint.model_config(ck, run / "last.pt")
        try:
            tcfg = replace(from_dict(TrainConfig, ck["train_config"]), **t_over)
        except TypeError as e:
            raise CheckpointError(
                f"{run.path}/last.pt has a train config that fails: {e}"
            ) from None
    else:
        run.check_new(overwrite)
        preset = preset or DEFAULT_PRESET
        p = get_preset(preset)
        mcfg = replace(p.model, vocab_size=meta["vocab_size"], **m_over)
        tcfg = replace(p.train, **t_over)
    check_data(meta, mcfg, data_dir)
    check_memory(mcfg)
    pick_device(tcfg.device)  # a device that does not exist is refused now
    return Plan(data_dir, run, preset, mcfg, tcfg, meta, tok, ck, overwrite)


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


def check_memory(mcfg: ModelConfig) -> None:
    """Refuse a model whose weights, gradients and optimizer state cannot fit in memory."""
    need = estimate_params(mcfg) * 16  # fp32 weights, gradients, two AdamW moments
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > total:
        raise WordGPTError(
            f"a model of {estimate_params(mcfg):,} parameters needs about {need / 1e9:,.0f} GB "
            f"to train, more than this machine's {total / 1e9:,.0f} GB; make it smaller"
        )


# ------------------------------------------------------------------------ starting


def build_model(plan: Plan, say) -> tuple[GPT, ModelConfig, dict | None]:
    """The model with its initial weights (from word vectors when asked)."""
    mcfg, tcfg = plan.model, plan.train
    torch.manual_seed(tcfg.seed)
    info, matrix = None, None
    if tcfg.init_embeddings and plan.resume_from is None:
        from .embeddings import embedding_matrix

        train = load_split(plan.data_dir, "train")
        matrix, info = embedding_matrix(
            tcfg.init_embeddings,
            plan.tokenizer,
            mcfg.n_embd,
            fit=tcfg.embeddings_fit,
            limit=tcfg.embeddings_limit,
            seed=tcfg.seed,
            counts=np.bincount(np.asarray(train), minlength=plan.tokenizer.vocab_size),
            log=say,
        )
        if matrix.shape[1] != mcfg.n_embd:  # fit == "model": the width follows the vectors
            mcfg = replace(mcfg, n_embd=matrix.shape[1])
    model = GPT(mcfg)
    if matrix is not None:
        with torch.no_grad():
            model.wte.weight.copy_(torch.from_numpy(matrix))
    if plan.resume_from is not None:
        info = plan.resume_from.get("provenance", {}).get("embeddings")
    return model, mcfg, info


def choose_dtype(plan: Plan, model: GPT, device: torch.device, d: Dist) -> torch.dtype | None:
    """The autocast dtype; for auto on a CPU rank 0 measures and every rank takes its answer."""
    mcfg, tcfg = model.cfg, plan.train

    def probe() -> bool:
        ok = 0.0
        if d.master:
            B = min(tcfg.batch_size, 4)
            x = torch.randint(mcfg.vocab_size, (B, mcfg.block_size))
            shape = json.dumps(to_dict(replace(mcfg, vocab_size=mcfg.vocab_size)), sort_keys=True)
            ok = float(cpu_prefers_bf16(f"{shape} batch {B}", step_timer(model, x, x)))
        return d.sync([ok], ["rank0"])[0] > 0

    return autocast_dtype(tcfg.dtype, device, probe)


def start(plan: Plan, d: Dist, say, clock=None) -> tuple[Trainer, dict | None]:
    """Lock the run folder (moving an old run aside when asked), build the trainer, restore
    a resumed run's state."""
    error = None
    if d.master:
        try:
            plan.run.lock()  # first: a folder in use is never moved
            if plan.overwrite and plan.run.holds_run():
                plan.run.unlock_after(moved := plan.run.move_aside())
                plan.run.lock()
                say(f"moved the previous run aside to {moved}")
        except WordGPTError as e:
            error = e
    d.agree(error)
    device = d.device or pick_device(plan.train.device)
    model, mcfg, emb_info = build_model(plan, say)
    plan.model = mcfg
    dtype = choose_dtype(plan, model, device, d)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model.to(device)
    splits = [load_split(plan.data_dir, s) for s in ("train", "val")]
    kw = {"clock": clock} if clock is not None else {}
    trainer = Trainer(model, plan.train, *splits, device, dtype, d, **kw)
    if (ck := plan.resume_from) is not None:
        trainer.load_state_dict(ck)
        was = ck.get("world_size", 1)
        note = (
            ""
            if was == d.world
            else (
                f"; world size {d.world} (was {was}): the global batch is now "
                f"{plan.train.batch_size * plan.train.grad_accum * d.world} sequences, so the data "
                "order continues by step but differs from an uninterrupted run"
            )
        )
        say(f"resumed {plan.run.path}/last.pt at step {trainer.state.step}{note}")
    return trainer, emb_info


# ------------------------------------------------------------------------ records


class RunWriter:
    """Rank 0's records at each evaluation: a metrics row, the plot, last.pt (and best.pt
    when the val loss is the best yet), TensorBoard, and a console line."""

    def __init__(self, plan: Plan, trainer: Trainer, emb_info: dict | None, say, d: Dist):
        self.plan, self.trainer, self.say, self.dist = plan, trainer, say, d
        self.run = plan.run
        self.extra = {
            "model_config": to_dict(plan.model),
            "train_config": to_dict(plan.train),
            "data_config": plan.meta["config"],
            "data_dir": str(plan.data_dir.resolve()),
            "preset": plan.preset,
            "world_size": d.world,
            "tokenizer": checkpoint.tokenizer_json(plan.tokenizer),
            "provenance": {"data": plan.meta["source"], "embeddings": emb_info},
        }
        self.rows = self.run.read_metrics(trainer.state.step, warn=say) if d.master else []
        self.tb = None
        if d.master:
            self.run.write_json(
                "config.json",
                {
                    "data_dir": self.extra["data_dir"],
                    "preset": plan.preset,
                    "data": plan.meta["config"],
                    "model": self.extra["model_config"],
                    "train": self.extra["train_config"],
                },
            )
            self.run.write_tokenizer(plan.tokenizer)
            self.tb = open_tensorboard(self.run.path, plan.train.tensorboard)

    def on_eval(self, losses: dict[str, float], is_best: bool) -> None:
        """Called on every rank; rank 0 writes, and a failure there stops every rank."""
        error = None
        if self.dist.master:
            try:
                self.record(losses, is_best)
            except WordGPTError as e:
                error = e
        self.dist.agree(error)

    def record(self, losses: dict[str, float], is_best: bool) -> None:
        t, st = self.trainer, self.trainer.state
        lr = t.last_lr if t.last_lr is not None else t.lr()
        rate = st.tokens / st.elapsed if st.elapsed > 0 else 0.0
        self.rows.append(
            {
                "step": st.step,
                "train_loss": f"{losses['train']:.5f}",
                "val_loss": f"{losses['val']:.5f}",
                "lr": f"{lr:.6g}",
                "tokens": st.tokens,
                "elapsed_s": f"{st.elapsed:.2f}",
            }
        )
        self.run.write_metrics(self.rows)
        self.run.plot()
        bad = checkpoint.non_finite(t.model.state_dict())
        if bad or not all(np.isfinite(v) for v in losses.values()):
            what = f"weights ({bad[0]})" if bad else "the evaluated loss"
            raise DivergedError(
                f"training diverged: {what} not finite at step {st.step}; nothing from it was "
                "saved (last.pt is the previous evaluation's). Try a lower --lr or --grad-clip"
            )
        payload = {**t.state_dict(), **self.extra}
        payload.update(step=st.step, tokens=st.tokens, best_val=st.best_val, last_val=st.last_val)
        checkpoint.save(payload, self.run / "last.pt")
        if is_best:
            checkpoint.copy(self.run / "last.pt", self.run / "best.pt")
        if self.tb is not None:
            for split, loss in losses.items():
                self.tb.add_scalar(f"loss/{split}", loss, st.step)
            self.tb.add_scalar("lr", lr, st.step)
            self.tb.add_scalar("tokens_per_s", rate, st.step)
            self.tb.add_text("sample", self.sample(), st.step)
            self.tb.flush()
        self.say(
            f"step {st.step:>6} | train {losses['train']:.4f} | val {losses['val']:.4f} | "
            f"lr {lr:.2e} | {rate:,.0f} tok/s | {st.elapsed:.0f}s"
        )

    def sample(self, n: int = 40) -> str:
        from .sample import stream_text

        cfg = SampleConfig(max_new_tokens=n, temperature=0.8, top_k=50, seed=1)
        t = self.trainer
        return "".join(stream_text(t.eval_model, self.plan.tokenizer, "", cfg, t.device))

    def finish(self, stopped: str, params: int) -> dict:
        st = self.trainer.state
        summary = {
            "step": st.step,
            "stopped": stopped,
            "best_val": st.best_val if np.isfinite(st.best_val) else None,
            "last_val": st.last_val if np.isfinite(st.last_val) else None,
            "elapsed_s": st.elapsed,
            "tokens": st.tokens,
            "tokens_per_s": st.tokens / st.elapsed if st.elapsed > 0 else 0.0,
            "params": params,
            "preset": self.plan.preset,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if self.dist.master:
            self.run.write_json("summary.json", summary)
            if self.tb is not None:
                self.tb.close()
        return summary


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


# ------------------------------------------------------------------------ train()


def train(
    data_dir: str | Path,
    out: str | Path,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log=print,
    clock=None,
    **overrides: Any,
) -> TrainResult:
    """Train a GPT on the token files in ``data_dir``, writing the run folder ``out``.

    ``overrides`` are ModelConfig or TrainConfig fields (``n_layer=2``, ``max_iters=500``).
    A folder that holds a run is refused unless ``resume`` (continue from ``out/last.pt``
    with its saved configs; training settings may still be overridden, e.g. a larger
    ``max_iters``) or ``overwrite`` (move the old run aside first). Raises
    :class:`~wordgpt.trainer.DivergedError` when the loss stays non-finite.
    """
    d = distributed.init()
    try:
        if log is print:  # lines appear as they come, even when piped to a file
            log = functools.partial(print, flush=True)
        say = log if d.master else (lambda *a, **k: None)
        error, plan = None, None
        try:
            plan = plan_run(data_dir, out, preset, resume, overwrite, **overrides)
        except WordGPTError as e:
            error = e
        d.agree(error)
        result = _run(plan, d, say, clock)
        d.barrier()  # every rank done before the process group goes
        return result
    finally:
        distributed.shutdown(d)


def _run(plan: Plan, d: Dist, say, clock) -> TrainResult:
    trainer, emb_info = start(plan, d, say, clock)
    try:
        writer = RunWriter(plan, trainer, emb_info, say, d)
        m = plan.model
        say(
            f"model: {trainer.model.num_params():,} parameters | {m.n_layer} layers, "
            f"{m.n_head} heads, {m.n_embd} wide, block {m.block_size}, {m.head} head | "
            f"device {trainer.device}, {dtype_name(trainer.dtype)}"
        )
        bar, progress = progress_bar(plan, trainer, d)
        if bar is not None and say is not None and getattr(say, "func", None) is print:
            writer.say = bar.write
        try:
            stopped = trainer.fit(writer.on_eval, progress)
        except DivergedError:
            writer.finish("diverged", trainer.model.num_params())
            raise
        finally:
            if bar is not None:
                bar.close()
        if stopped == "signal":
            say(
                f"stopped by signal at step {trainer.state.step}; saved {plan.run.path}/last.pt "
                "(continue with --resume)"
            )
        elif stopped == "patience":
            say(
                f"stopped at step {trainer.state.step}: no better val loss in "
                f"{plan.train.patience} evaluations (best.pt keeps the best)"
            )
        s = writer.finish(stopped, trainer.model.num_params())
        st = trainer.state
        return TrainResult(
            plan.run.path,
            st.step,
            st.best_val,
            st.last_val,
            st.elapsed,
            s["tokens_per_s"],
            s["params"],
            stopped,
        )
    finally:
        trainer.close()
        plan.run.unlock()


def progress_bar(plan: Plan, trainer: Trainer, d: Dist):
    """A tqdm bar on rank 0 when asked for (and a terminal is there), and its update."""
    if not (d.master and plan.train.progress):
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(
        total=plan.train.max_iters,
        initial=trainer.state.step,
        unit="step",
        dynamic_ncols=True,
        disable=None,
        leave=False,
    )

    def update(r) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{r.loss:.3f}", lr=f"{r.lr:.1e}", refresh=False)

    return bar, update
