"""Set-up, second half: from a checked :class:`~.plan.Plan` to a trainer ready for its first
step. The run folder's lock (an old run moved aside first with ``--overwrite``), the GPT
(from word vectors or another run's weights when asked), the dtype (``--dtype auto`` times
fp32 against bf16 on a CPU), the token files memory-mapped, the :class:`~.trainer.Trainer`,
and a resumed run's state. A failure on any rank stops every rank with the same line.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch

from ..corpus.tokenfiles import load_split
from ..errors import WordGPTError
from ..logs import log
from ..model.device import autocast_dtype, cpu_prefers_bf16, dtype_name, pick_device, step_timer
from ..model.gpt import GPT, estimate_flops
from ..settings import to_dict
from .budget import Budget
from .distributed import Dist
from .holdout import gpt_tokens
from .plan import Plan
from .trainer import Trainer, compiles


@contextlib.contextmanager
def holding(p: Plan, d: Dist) -> Iterator[None]:
    """The run folder's lock while the block runs. Rank 0 takes it, first (a folder in use is
    never moved), and moves an old run aside when asked; every rank learns whether that
    worked."""
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
    try:
        yield
    finally:
        p.run.unlock()


def build(p: Plan, budget: Budget, d: Dist) -> tuple[Trainer, dict]:
    """The trainer of the plan's model on its data (a resumed run's state loaded), and the
    run's provenance: where its data, embedding and weights came from."""
    device = d.device or pick_device(p.train.device)
    model, provenance = build_model(p)
    dtype = choose_dtype(p, model, device, d)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model.to(device)
    train, val = load_split(p.data_dir, "train"), load_split(p.data_dir, "val")
    train = train[: gpt_tokens(len(train), p.train.ngram)]  # a partner's slice held out
    trainer = Trainer(model, p.train, train, val, device, dtype, d, budget)
    if (ck := p.resume_from) is not None:
        trainer.load_state_dict(ck)
        left = (f"; {max(budget.left(), 0.0):,.0f} s of its {budget.seconds:g} s time budget left "
                f"({budget.before:,.0f} s spent before)" if budget.seconds else "")  # fmt: skip
        log.info(f"resumed {p.run.path}/last.pt at step {trainer.state.step}{left}"
                 f"{world_note(p, d)}")  # fmt: skip
    log.info(model_line(trainer))
    return trainer, provenance


def build_model(p: Plan) -> tuple[GPT, dict]:
    """The model with its initial weights, and the provenance of the run. With
    ``embeddings_fit="model"`` the width follows the vectors (the model's config says so)."""
    mcfg, tcfg = p.model, p.train
    torch.manual_seed(tcfg.seed)
    provenance = {"data": p.meta["source"], "embeddings": None, "init_from": None}
    matrix = None
    if tcfg.init_embeddings and p.resume_from is None:
        from .embedding_init import embedding_matrix

        train_ids = np.asarray(load_split(p.data_dir, "train"))
        matrix, provenance["embeddings"] = embedding_matrix(
            tcfg.init_embeddings, p.tokenizer, mcfg.n_embd, fit=tcfg.embeddings_fit,
            limit=tcfg.embeddings_limit, seed=tcfg.seed, trust_pickle=p.trust_pickle,
            counts=np.bincount(train_ids, minlength=p.tokenizer.vocab_size),
        )  # fmt: skip
        if matrix.shape[1] != mcfg.n_embd:  # fit == "model": the width follows the vectors
            mcfg = replace(mcfg, n_embd=matrix.shape[1])
    model = GPT(mcfg)
    if matrix is not None:
        with torch.no_grad():
            model.wte.weight.copy_(torch.from_numpy(matrix))
    if p.init is not None and p.resume_from is None:
        from .init_from import init_weights

        provenance["init_from"] = {**p.init.provenance(), **init_weights(model, p.init,
                                                                         p.tokenizer)}  # fmt: skip
        info = provenance["init_from"]
        vocab = (
            "the same vocabulary" if p.init.same_vocabulary else
            f"{info['shared_tokens']:,} tokens shared, {info['new_tokens']:,} new (the mean of "
            "its rows)"
        )  # fmt: skip
        log.info(f"starting from {p.init.path} (step {p.init.ck.get('step')}): {vocab}")
    if p.resume_from is not None:
        was = p.resume_from.get("provenance", {})
        provenance.update(embeddings=was.get("embeddings"), init_from=was.get("init_from"))
    return model, provenance


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


def model_line(trainer: Trainer) -> str:
    m = trainer.model.cfg
    return (
        f"model: {trainer.model.num_params():,} parameters, "
        f"{estimate_flops(m) / 1e6:,.1f} MFLOPs per token | {m.n_layer} layers, "
        f"{m.n_head} heads, {m.n_embd} wide, block {m.block_size}, {m.head} head | "
        f"device {trainer.device}, {dtype_name(trainer.dtype)}"
        + (", torch.compile" if compiles(trainer.cfg, trainer.device) else "")
    )
