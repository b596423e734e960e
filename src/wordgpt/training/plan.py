"""A run about to start: every check that can be made before anything is written (settings,
data, the run folder, the checkpoint to resume, the device, the memory it needs)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import (
    DEFAULT_PRESET,
    ModelConfig,
    TrainConfig,
    from_dict,
    get_preset,
    split_overrides,
)
from ..corpus.tokenfiles import load_meta, load_tokenizer
from ..corpus.tokenizer import Tokenizer
from ..errors import CheckpointError, WordGPTError
from ..folders import PREPARE_FIRST, expect
from ..model.gpt import estimate_params
from ..runs import checkpoint
from ..runs.folder import RunDir
from .device import pick_device


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
    resume_from: dict | None
    overwrite: bool
    trust_pickle: bool = False
    """Word vectors may be a gensim .kv pickle (the user said so on the command line)."""
    init: Any = None
    """With ``init_from``: the run the weights come from (a :class:`.init_from.Source`)."""
    init_info: dict | None = None
    """Where the weights came from, once the model is built: recorded in the run."""
    why: str | None = None
    """Why this preset: the recipe picked for the budget on this machine, when it was."""

    def describe(self) -> str:
        m, t = self.model, self.train
        what = f"resume {self.run.path}/last.pt" if self.resume_from else f"new run {self.run.path}"
        budget = f"{t.time_budget:g} s or " if t.time_budget else ""
        if t.epochs:
            tokens = self.meta.get("splits", {}).get("train", {}).get("tokens")
            of = f" of {tokens:,} tokens" if tokens else ""
            budget += f"{t.epochs:g} passes over the training split{of} or "
        why = f"\nrecipe: {self.why}" if self.why else ""
        return (
            f"{what}: preset {self.preset}, {estimate_params(m):,} parameters "
            f"({m.n_layer} layers, {m.n_head} heads, {m.n_embd} wide, block {m.block_size}, "
            f"{m.head} head, {m.pos} positions) on {self.data_dir} "
            f"(vocabulary {m.vocab_size:,}); {budget}{t.max_iters:,} steps of "
            f"{t.batch_size} x {t.grad_accum} sequences, lr {t.lr:g}, device {t.device}, "
            f"dtype {t.dtype}{why}"
        )


# ------------------------------------------------------------------------ planning


def default_preset() -> str:
    """The preset ``train`` uses when none is given: the best measured recipe for the
    device it runs on (``cpu``; it is also the one measured best on a GPU so far)."""
    return DEFAULT_PRESET


def plan_run(
    data_dir: str | Path,
    out: str | Path,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    trust_pickle: bool = False,
    **overrides: Any,
) -> Plan:
    """Resolve and check everything before anything is written; one clear error if not."""
    data_dir, run = Path(data_dir), RunDir(out)
    if resume and overwrite:
        raise WordGPTError("--resume and --overwrite contradict each other; choose one")
    if resume and overrides.get("init_from"):
        raise WordGPTError(
            "--init-from starts a new run from another one's weights, --resume continues "
            "this one; choose one (a fine-tune is a new run: give it a new --out)"
        )
    meta, tok = data_folder(data_dir)
    m_over, t_over = split_overrides(overrides)
    if resume:
        preset, mcfg, tcfg, ck = _resume(run, data_dir, tok, preset, m_over, t_over)
        src = why = None
    else:
        run.check_new(overwrite)
        preset, mcfg, tcfg, src, why = _new(preset, meta, tok, m_over, t_over)
        ck = None
    check_data(meta, mcfg, data_dir)
    if ck is not None:
        check_passes_left(ck, tcfg, meta, run)
    check_memory(mcfg)
    pick_device(tcfg.device)  # a device that does not exist is refused now
    plan = Plan(data_dir, run, preset, mcfg, tcfg, meta, tok, ck, overwrite, trust_pickle, src)
    plan.why = why
    return plan


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


def _new(preset, meta, tok, m_over, t_over):
    """A new run: the preset's recipe with the overrides; with ``init_from``, the model's
    shape from that run, and the ``finetune`` recipe unless a preset is given; with neither,
    the recipe measured best for the budget on this machine (:mod:`.recipes`)."""
    init, why = t_over.get("init_from"), None
    if preset is None and not init:
        from .recipes import pick_recipe, probe_speed

        speed = probe_speed(t_over.get("device", "auto"))
        pick = pick_recipe(meta["tokenizer"], t_over.get("time_budget"), speed)
        preset, why = pick.preset, pick.why
    preset = preset or "finetune"
    p = get_preset(preset)
    tcfg = replace(p.train, **t_over)
    if init:
        from .init_from import load_source

        src, mcfg = load_source(init, m_over, tok)
        return preset, mcfg, tcfg, src, why
    return preset, replace(p.model, vocab_size=meta["vocab_size"], **m_over), tcfg, None, why


def _resume(run, data_dir, tok, preset, m_over, t_over):
    """A resumed run: its own configs from last.pt (training settings may be overridden)."""
    run.check_writable()
    ck = checkpoint.load(run / "last.pt", resume=True)
    checkpoint.check_tokenizer(ck, tok, run / "last.pt", str(data_dir))
    saved = ck.get("preset") or default_preset()
    if preset is not None and preset != saved:
        raise WordGPTError(
            f"{run.path} was trained with preset {saved!r}; a resume keeps it "
            f"(drop --preset {preset}, or start a new run)"
        )
    if m_over:
        raise WordGPTError(f"the model's shape cannot change on resume: {sorted(m_over)}")
    mcfg = checkpoint.model_config(ck, run / "last.pt")
    try:
        tcfg = replace(from_dict(TrainConfig, dict(ck["train_config"])), **t_over)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{run.path}/last.pt has a train config that fails: {e}") from None
    return saved, mcfg, tcfg, ck


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


def check_passes_left(ck: dict, tcfg: TrainConfig, meta: dict, run: RunDir) -> None:
    """A resumed run that has already made its ``epochs`` passes would stop at once: say so."""
    tokens, n = ck.get("state", {}).get("tokens", 0), meta["splits"]["train"]["tokens"]
    if tcfg.epochs and n and tokens / n >= tcfg.epochs:
        raise WordGPTError(
            f"{run.path} has already made {tokens / n:.2f} passes over the training split, its "
            f"--epochs {tcfg.epochs:g}; give a larger --epochs (or --epochs 0: no cap) to go on"
        )


def check_memory(mcfg: ModelConfig, bytes_per_param: int = 16, doing: str = "train") -> None:
    """Refuse a model that cannot fit in memory before it is built: to train, its fp32
    weights, gradients and two AdamW moments (16 bytes a parameter); to use it, its weights."""
    need = estimate_params(mcfg) * bytes_per_param
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > total:
        raise WordGPTError(
            f"a model of {estimate_params(mcfg):,} parameters needs about {need / 1e9:,.0f} GB "
            f"to {doing}, more than this machine's {total / 1e9:,.0f} GB"
        )
