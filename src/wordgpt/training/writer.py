"""What a run keeps, written by rank 0: :class:`RunWriter` writes config.json and
tokenizer.json at the start; at each evaluation a row of metrics.csv, loss.png, last.pt (and
best.pt on a strictly better val loss, with only what sampling needs), TensorBoard scalars
and a sample, and one line; summary.json at the end. A failure to write stops every rank.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..corpus.tokenfiles import split_bits_per_char
from ..corpus.tokenizer import start_ids, unk_id
from ..errors import WordGPTError
from ..logs import log
from ..model.device import dtype_name, mfu
from ..model.gpt import estimate_flops
from ..model.sampling import SHOWCASE, generate_ids
from ..runs import checkpoint
from ..settings import to_dict
from .distributed import Dist
from .plan import Plan
from .trainer import Trainer

RESUME_ONLY = ("optimizer", "train_model", "ema_updates", "scaler")
"""What ``last.pt`` holds for resuming and ``best.pt`` leaves out (it is for sampling and
evaluation)."""


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


class RunWriter:
    """The run folder's files as the run goes (see the module); ``provenance`` says where
    the data, the embedding and the weights came from."""

    def __init__(self, p: Plan, trainer: Trainer, provenance: dict, d: Dist):
        self.run, self.trainer, self.d, self.tokenizer = p.run, trainer, d, p.tokenizer
        self.extra = {
            "model_config": to_dict(trainer.model.cfg),
            "train_config": to_dict(p.train),
            "data_config": p.meta["config"],
            "data_dir": str(p.data_dir.resolve()),
            "data_fingerprint": p.meta.get("fingerprint"),
            "preset": p.preset,
            "world_size": d.world,
            "tokenizer": checkpoint.tokenizer_json(p.tokenizer),
            "provenance": provenance,
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
                "init_from": self.extra["provenance"]["init_from"],
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
        mfu_ = f" | MFU {e.mfu:.1%}" if e.mfu is not None else ""
        log.info(
            f"step {e.step:>6} | train {e.losses['train']:.4f} | val {e.losses['val']:.4f} | "
            f"lr {e.lr:.2e} | {e.tokens_per_s:,.0f} tok/s{mfu_} | {e.elapsed:.0f}s"
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
        """A short seeded sample of the weights in use (the showcase setting), starting a
        sentence."""
        tok, cfg = self.tokenizer, replace(SHOWCASE, max_new_tokens=tokens)
        ids = generate_ids(self.trainer.eval_model, start_ids(tok), cfg, unk_id(tok))
        return tok.decode(list(ids)).lstrip()

    def summary(self, p: Plan, stopped: str, peak: float | None, threads: dict | None) -> None:
        """``summary.json``: how the run ended, its figures and where it ran (on a CPU with
        how many threads, and why)."""
        t, st = self.trainer, self.trainer.state
        rate, flops = t.tokens_per_s(), estimate_flops(t.model.cfg)
        val = p.meta["splits"]["val"]
        best = st.best_val if math.isfinite(st.best_val) else None
        self.run.write_json(
            "summary.json",
            {
                "step": st.step,
                "stopped": stopped,
                "best_val": best,
                "best_val_bits_per_char_estimate": (
                    split_bits_per_char(val, best) if best is not None else None
                ),
                "last_val": st.last_val if math.isfinite(st.last_val) else None,
                "elapsed_s": t.budget.elapsed,
                "train_seconds": st.train_seconds,
                "tokens": st.tokens,
                "tokens_per_s": rate,
                "params": t.model.num_params(),
                "flops_per_token": flops,
                "flops_per_s": rate * flops,
                "peak_flops": peak,
                "mfu": mfu(rate, flops, peak),
                "device": str(t.device),
                "dtype": dtype_name(t.dtype),
                "threads": threads,
                "preset": p.preset,
                "recipe": p.why,
                "init_from": self.extra["provenance"]["init_from"],
                "val_unk_share": val.get("unk_share", 0.0),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )

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
