"""What a run keeps at each evaluation: small sinks that the loop calls in turn.

:class:`MetricsSink` (a row of ``metrics.csv``), :class:`PlotSink` (``loss.png``),
:class:`CheckpointSink` (``last.pt``, and ``best.pt`` on a strictly better val loss),
:class:`TensorBoardSink` (scalars and a text sample) and :class:`ConsoleSink` (one line).
They run on rank 0 only; :class:`Recorder` calls them and makes every rank stop when one of
them fails. Whether a run has diverged is not decided here but by the trainer, before any
sink sees the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..config import SampleConfig, to_dict
from ..corpus.tokenizer import Tokenizer, decode_stream, start_ids, unk_id
from ..errors import WordGPTError
from ..model.sampling import generate_ids
from ..runs import checkpoint
from ..runs.folder import RunDir
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
    flops_per_s: float
    mfu: float | None
    """Achieved FLOP/s over the measured peak of the dtype in use (None: no peak known)."""


class Sink(Protocol):
    def on_eval(self, e: Evaluation) -> None: ...

    def close(self) -> None: ...


class MetricsSink:
    """One row of ``metrics.csv`` per evaluation, the file rewritten atomically."""

    def __init__(self, run: RunDir, step: int, warn):
        self.run = run
        self.rows = run.read_metrics(step, warn=warn)

    def on_eval(self, e: Evaluation) -> None:
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

    def close(self) -> None:
        pass


class PlotSink:
    """``loss.png`` redrawn from ``metrics.csv``."""

    def __init__(self, run: RunDir):
        self.run = run

    def on_eval(self, e: Evaluation) -> None:
        self.run.plot()

    def close(self) -> None:
        pass


class CheckpointSink:
    """``last.pt`` at every evaluation (everything a resume needs); ``best.pt`` when the val
    loss is the best yet, with only what sampling and evaluation need."""

    def __init__(self, run: RunDir, trainer: Trainer, extra: dict):
        self.run, self.trainer, self.extra = run, trainer, extra

    def payload(self) -> dict:
        t, st = self.trainer, self.trainer.state
        p = {**t.state_dict(), **self.extra}
        p.update(step=st.step, tokens=st.tokens, best_val=st.best_val, last_val=st.last_val)
        return p

    def on_eval(self, e: Evaluation) -> None:
        payload = self.payload()
        checkpoint.save(payload, self.run / "last.pt")
        if e.is_best:
            best = {k: v for k, v in payload.items() if k not in RESUME_ONLY}
            checkpoint.save(best, self.run / "best.pt")

    def save_last(self) -> None:
        """``last.pt`` now, without an evaluation (a run stopped by a signal)."""
        checkpoint.save(self.payload(), self.run / "last.pt")

    def close(self) -> None:
        pass


class TensorBoardSink:
    """Losses, learning rate, tokens/s and a short text sample per evaluation."""

    def __init__(self, writer, sample: Callable[[], str]):
        self.tb, self.sample = writer, sample

    def on_eval(self, e: Evaluation) -> None:
        for split, loss in e.losses.items():
            self.tb.add_scalar(f"loss/{split}", loss, e.step)
        self.tb.add_scalar("lr", e.lr, e.step)
        self.tb.add_scalar("tokens_per_s", e.tokens_per_s, e.step)
        self.tb.add_text("sample", self.sample(), e.step)
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()


class ConsoleSink:
    """The line printed at each evaluation."""

    def __init__(self, say):
        self.say = say

    def on_eval(self, e: Evaluation) -> None:
        mfu = f" | MFU {e.mfu:.1%}" if e.mfu is not None else ""
        self.say(
            f"step {e.step:>6} | train {e.losses['train']:.4f} | val {e.losses['val']:.4f} | "
            f"lr {e.lr:.2e} | {e.tokens_per_s:,.0f} tok/s{mfu} | {e.elapsed:.0f}s"
        )

    def close(self) -> None:
        pass


class Recorder:
    """The sinks of a run, called in turn on rank 0; a failure there stops every rank."""

    def __init__(self, sinks: list[Sink], dist: Dist):
        self.sinks, self.dist = sinks, dist

    def _each(self, fn: Callable) -> None:
        error = None
        if self.dist.master:
            try:
                fn()
            except WordGPTError as e:
                error = e
        self.dist.agree(error)

    def on_eval(self, e: Evaluation) -> None:
        def run() -> None:
            for s in self.sinks:
                s.on_eval(e)

        self._each(run)

    def save_last(self) -> None:
        self._each(lambda: [s.save_last() for s in self.sinks if hasattr(s, "save_last")])

    def close(self) -> None:
        if self.dist.master:
            for s in self.sinks:
                s.close()


# ------------------------------------------------------------------------ the run's sinks


def run_extra(plan: Plan, emb_info: dict | None, world: int) -> dict:
    """What every checkpoint carries besides the trainer's state: configs, tokenizer,
    provenance of the data and embeddings."""
    return {
        "model_config": to_dict(plan.model),
        "train_config": to_dict(plan.train),
        "data_config": plan.meta["config"],
        "data_dir": str(plan.data_dir.resolve()),
        "preset": plan.preset,
        "world_size": world,
        "tokenizer": checkpoint.tokenizer_json(plan.tokenizer),
        "provenance": {
            "data": plan.meta["source"],
            "embeddings": emb_info,
            "init_from": plan.init_info,
        },
    }


def text_sample(trainer: Trainer, tok: Tokenizer, n: int = 40) -> str:
    """A short seeded sample of the weights in use, for TensorBoard."""
    cfg = SampleConfig(max_new_tokens=n, temperature=0.8, top_k=50, seed=1)
    ids = generate_ids(trainer.eval_model, start_ids(tok), cfg, trainer.device, unk_id(tok))
    return "".join(decode_stream(tok, ids, strip_start=True))


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


def make_recorder(plan: Plan, trainer: Trainer, emb_info: dict | None, say, d: Dist) -> Recorder:
    """The run's sinks (on rank 0; the other ranks get none), after writing config.json and
    tokenizer.json."""
    if not d.master:
        return Recorder([], d)
    run = plan.run
    extra = run_extra(plan, emb_info, d.world)
    run.write_json(
        "config.json",
        {
            "data_dir": extra["data_dir"],
            "preset": plan.preset,
            "recipe": plan.why,
            "data": plan.meta["config"],
            "model": extra["model_config"],
            "train": extra["train_config"],
            "init_from": plan.init_info,
        },
    )
    run.write_tokenizer(plan.tokenizer)
    sinks: list[Sink] = [
        MetricsSink(run, trainer.state.step, say),
        PlotSink(run),
        CheckpointSink(run, trainer, extra),
    ]
    tb = open_tensorboard(run.base, plan.train.tensorboard)
    if tb is not None:
        sinks.append(TensorBoardSink(tb, lambda: text_sample(trainer, plan.tokenizer)))
    sinks.append(ConsoleSink(say))
    return Recorder(sinks, d)
