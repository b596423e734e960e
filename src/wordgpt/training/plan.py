"""Set-up, first half: every check that can be made before anything is written, and the
:class:`Plan` that comes out of them (frozen once built; ``train --dry-run`` prints it).

The data folder (``meta.json`` against its schema, the tokenizer against it); the recipe (the
``--preset`` given; on ``--resume`` the run's own; with ``--init-from`` the ``finetune``
recipe; otherwise the speed probe of :mod:`.speed` and the row of ``RECIPES`` for the budget
and tokens); the flags applied on top and validated by the dataclasses; the run folder (a run
there is refused unless ``--resume`` or ``--overwrite``); a resumed run's ``last.pt`` (loaded
without code, its tokenizer checked against the data); the n-gram partner the data allows
(:mod:`.holdout`); the memory the model needs; the device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..corpus.tokenfiles import check_fingerprint, load_meta, load_tokenizer
from ..corpus.tokenizer import Tokenizer
from ..errors import CheckpointError, WordGPTError
from ..fileio import read_json_object
from ..folders import PREPARE_FIRST, expect
from ..logs import log
from ..model.device import check_memory, pick_device
from ..model.gpt import estimate_params
from ..presets import preset_configs
from ..runs import checkpoint
from ..runs.folder import RunDir
from ..settings import from_dict, to_dict, with_settings
from .holdout import HELD_OUT, gpt_tokens, partner_order
from .init_from import Source, load_source


@dataclass(frozen=True)
class Plan:
    """A run about to start: resolved configs, data and checks passed; nothing written.
    Frozen once built: what the run becomes (its model's final width, where its weights came
    from) is the set-up's to say (:mod:`.setup`)."""

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
    init: Source | None = None
    """With ``init_from``: the run the weights come from."""
    why: str | None = None
    """Why this preset: the recipe picked for the budget on this machine, when it was."""
    probe_threads: int | None = None
    """The thread count the speed probe found fastest, when it ran on a CPU: what training
    starts with, before it times its own steps."""

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
    settings: dict[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    trust_pickle: bool = False,
) -> Plan:
    """The plan of a run of ``data_dir`` into ``out`` with ``preset`` (None: the recipe for
    the budget) and ``settings`` (fields by name); every check made before anything is
    written, one clear error if one fails (see :func:`wordgpt.train` for the rest)."""
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
    check_data(meta, p.model, data_dir)
    train = p.train
    if not p.resume_from:  # a resumed run keeps the partner it started with
        order, note = partner_order(meta["splits"]["train"]["tokens"], meta["vocab_size"],
                                    train.ngram)  # fmt: skip
        train = replace(train, ngram=order)
        if note:
            log.info(note)
    check_memory(p.model, train.batch_size, train.device)
    pick_device(train.device)  # a device that does not exist is refused now
    return replace(p, train=train, overwrite=overwrite, trust_pickle=trust_pickle)


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
    why, threads = None, None
    with_settings(ModelConfig(), TrainConfig(), settings)  # a setting that cannot work: now
    if preset is None and not settings.get("init_from"):
        from .speed import pick_recipe, probe_speed

        budget = settings.get("time_budget") or TrainConfig().stop.time_budget
        log.info("measuring this machine's speed to pick the recipe for the budget (a second)")
        probe = probe_speed(settings.get("device", "auto"), threads=settings.get("threads"))
        pick = pick_recipe(meta["tokenizer"], budget, probe)
        preset, why, threads = pick.preset, pick.why, probe.threads
        settings = {"time_budget": budget, **settings}  # the run keeps its budget
    preset = preset or "finetune"
    model, tcfg = with_settings(*preset_configs(preset), settings)
    model, init = replace(model, vocab_size=meta["vocab_size"]), None
    if tcfg.init_from:
        model_settings = {k: v for k, v in settings.items() if hasattr(model, k)}
        init, model = load_source(tcfg.init_from, model_settings, tok)
    return Plan(data_dir, run, preset, model, tcfg, meta, tok, init=init, why=why,
                probe_threads=threads)  # fmt: skip


def resumed(run, data_dir, meta, tok, preset, settings) -> Plan:
    """A resumed run: its own configs from last.pt (training settings may change)."""
    run.check_writable()
    ck = checkpoint.read(run / "last.pt", resume=True)
    checkpoint.check_tokenizer(ck, tok, run / "last.pt", str(data_dir))  # its data
    check_fingerprint(data_dir, ck.get("data_fingerprint"), str(run.path))
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
        if read_json_object(run / "summary.json").get("complete"):
            report = "" if (run / "report.html").is_file() else (
                "; `wordgpt report RUN` writes its report")  # fmt: skip
            raise WordGPTError(
                f"{run.path} has already made {tokens / n:.2f} passes over the training split, "
                f"its --epochs {tcfg.stop.epochs:g}, and the run is complete; give a larger "
                f"--epochs (or --epochs 0: no cap) to go on{report}"
            )
        log.info(f"{run.path}: its model made its {tcfg.stop.epochs:g} passes before the run "
                 "stopped; resuming finishes the run (its further members, its n-gram "
                 "partner, its report)")  # fmt: skip
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
