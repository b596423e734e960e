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
    expect(data_dir, ("data",), "--data", PREPARE_FIRST)
    meta = load_meta(data_dir)
    tok = load_tokenizer(data_dir)
    if tok.vocab_size != meta["vocab_size"]:
        raise WordGPTError(
            f"{data_dir}: tokenizer.json ({tok.vocab_size:,} tokens) and meta.json "
            f"({meta['vocab_size']:,}) disagree; prepare the folder again"
        )
    m_over, t_over = split_overrides(overrides)
    ck = None
    if resume:
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
        preset = saved
        mcfg = checkpoint.model_config(ck, run / "last.pt")
        try:
            tcfg = replace(from_dict(TrainConfig, dict(ck["train_config"])), **t_over)
        except (TypeError, ValueError) as e:
            raise CheckpointError(
                f"{run.path}/last.pt has a train config that fails: {e}"
            ) from None
    else:
        run.check_new(overwrite)
        preset = preset or default_preset()
        p = get_preset(preset)
        mcfg = replace(p.model, vocab_size=meta["vocab_size"], **m_over)
        tcfg = replace(p.train, **t_over)
    check_data(meta, mcfg, data_dir)
    check_memory(mcfg)
    pick_device(tcfg.device)  # a device that does not exist is refused now
    return Plan(data_dir, run, preset, mcfg, tcfg, meta, tok, ck, overwrite, trust_pickle)


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
