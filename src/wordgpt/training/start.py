"""Starting a planned run: take the run folder's lock (moving an old run aside when asked),
build the model (from word vectors when asked), choose the dtype, build the
:class:`~wordgpt.training.trainer.Trainer` and restore a resumed run's state.

Every failure after the lock is taken releases it again, so that a failed start leaves the
folder free for the next try in the same process.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch

from ..config import to_dict
from ..corpus.tokenfiles import load_split
from ..errors import WordGPTError
from ..model.gpt import GPT
from .device import autocast_dtype, cpu_prefers_bf16, pick_device, step_timer
from .distributed import Dist
from .plan import Plan
from .trainer import Trainer


def build_model(plan: Plan, say) -> tuple[GPT, dict | None]:
    """The model with its initial weights (from word vectors when asked), and where its
    embedding came from. With ``embeddings_fit="model"`` the width follows the vectors and
    ``plan.model`` is updated to the width built."""
    mcfg, tcfg = plan.model, plan.train
    torch.manual_seed(tcfg.seed)
    info, matrix = None, None
    if tcfg.init_embeddings and plan.resume_from is None:
        from .embedding_init import embedding_matrix

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
            trust_pickle=plan.trust_pickle,
        )
        if matrix.shape[1] != mcfg.n_embd:  # fit == "model": the width follows the vectors
            mcfg = plan.model = replace(mcfg, n_embd=matrix.shape[1])
    model = GPT(mcfg)
    if matrix is not None:
        with torch.no_grad():
            model.wte.weight.copy_(torch.from_numpy(matrix))
    if plan.init is not None and plan.resume_from is None:
        from .init_from import init_weights

        plan.init_info = {
            **plan.init.provenance(),
            **init_weights(model, plan.init, plan.tokenizer),
        }
        say(
            f"starting from {plan.init.path} (step {plan.init.ck.get('step')}): "
            + ("the same vocabulary" if plan.init.same_vocabulary else
               f"{plan.init_info['shared_tokens']:,} tokens shared, "
               f"{plan.init_info['new_tokens']:,} new (the mean of its rows)")
        )  # fmt: skip
    if plan.resume_from is not None:
        info = plan.resume_from.get("provenance", {}).get("embeddings")
        plan.init_info = plan.resume_from.get("provenance", {}).get("init_from")
    return model, info


def choose_dtype(plan: Plan, model: GPT, device: torch.device, d: Dist) -> torch.dtype | None:
    """The autocast dtype; for auto on a CPU rank 0 measures and every rank takes its answer."""
    mcfg, tcfg = model.cfg, plan.train

    def probe() -> bool:
        ok = 0.0
        if d.master:
            B = min(tcfg.batch_size, 4)
            x = torch.randint(mcfg.vocab_size, (B, mcfg.block_size))
            shape = json.dumps(to_dict(mcfg), sort_keys=True)
            ok = float(cpu_prefers_bf16(f"{shape} batch {B}", step_timer(model, x, x)))
        return d.sync([ok], ["rank0"])[0] > 0

    return autocast_dtype(tcfg.dtype, device, probe)


def lock_run(plan: Plan, d: Dist, say) -> None:
    """Rank 0 takes the folder's lock, first (a folder in use is never moved), and moves an
    old run aside when asked; every rank learns whether that worked."""
    error = None
    if d.master:
        try:
            plan.run.lock()
            if plan.overwrite and plan.run.holds_run():
                moved = plan.run.move_aside()
                plan.run.unlock()  # the moved folder kept its lock while it moved
                plan.run.lock()
                say(f"moved the previous run aside to {moved}")
        except WordGPTError as e:
            plan.run.unlock()
            error = e
    d.agree(error)


def start(plan: Plan, d: Dist, say, clock=None) -> tuple[Trainer, dict | None]:
    """Lock the run folder, build the trainer, restore a resumed run's state. On any
    failure the lock is released before the error goes on."""
    lock_run(plan, d, say)
    try:
        return _build(plan, d, say, clock)
    except BaseException:
        plan.run.unlock()
        raise


def _build(plan: Plan, d: Dist, say, clock) -> tuple[Trainer, dict | None]:
    device = d.device or pick_device(plan.train.device)
    model, emb_info = build_model(plan, say)
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
        say(f"resumed {plan.run.path}/last.pt at step {trainer.state.step}{_world_note(plan, d)}")
    return trainer, emb_info


def _world_note(plan: Plan, d: Dist) -> str:
    was = plan.resume_from.get("world_size", 1)
    if was == d.world:
        return ""
    t = plan.train
    return (
        f"; world size {d.world} (was {was}): the global batch is now "
        f"{t.batch_size * t.grad_accum * d.world} sequences, so the data order continues by "
        "step but differs from an uninterrupted run"
    )
