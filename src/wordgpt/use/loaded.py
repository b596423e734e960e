"""A trained run loaded for use: generate text, evaluate, export.

``load(run_dir)`` reads the run folder's ``best.pt`` (or ``last.pt``) on its own: the
checkpoint carries the model config, the weights and the tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..config import DataConfig, SampleConfig, from_dict
from ..corpus.build import prepare
from ..corpus.tokenfiles import load_meta, load_split, load_tokenizer
from ..corpus.tokenizer import Tokenizer
from ..errors import CheckpointError
from ..model.gpt import GPT
from ..runs import checkpoint
from ..training.device import pick_device
from ..training.plan import check_memory
from .evaluate import EvalResult, evaluate
from .sample import stream_text


@dataclass
class Model:
    """A trained run, ready to generate text and to be evaluated (what :func:`load` returns)."""

    gpt: GPT
    tokenizer: Tokenizer
    run_dir: Path
    config: dict
    step: int
    device: torch.device
    path: Path | None = None
    """The checkpoint file the weights came from."""

    def stream(
        self, prompt: str = "", cfg: SampleConfig | None = None, ids: list | None = None, **kw
    ) -> Iterator[str]:
        """Yield the generated text piece by piece (the prompt is not repeated); the new
        token ids go into ``ids`` when given."""
        cfg = replace(cfg or SampleConfig(), **kw)
        return stream_text(self.gpt, self.tokenizer, prompt, cfg, self.device, ids)

    def sample(
        self, prompt: str = "", cfg: SampleConfig | None = None, copy_min: int | None = None, **kw
    ):
        """The generated continuation of ``prompt`` with its copied spans: a
        :class:`~wordgpt.use.copies.Written` (text, ids, copies; copies is None when the
        run's data folder is not there to look in)."""
        from .copies import Written

        ids: list[int] = []
        text = "".join(self.stream(prompt, cfg, ids, **kw))
        return Written(text, ids, self.copies(ids, copy_min, lstrip=not prompt))

    def copies(self, ids: list[int], copy_min: int | None = None, lstrip: bool = False):
        """The copied spans of generated ``ids`` in this run's training text (None without
        its data folder); ``lstrip``: offsets into the text shown without leading spaces."""
        from .copies import find_copies

        data = Path(self.config.get("data_dir") or "")
        if not (data / "train.bin").is_file():
            return None
        return find_copies(self.tokenizer, data, ids, copy_min, lstrip)

    def generate(self, prompt: str = "", cfg: SampleConfig | None = None, **kw) -> str:
        """The generated continuation of ``prompt`` as one string."""
        return "".join(self.stream(prompt, cfg, **kw))

    def evaluate(
        self,
        split: str = "val",
        data_dir: str | Path | None = None,
        batch_size: int = 16,
        progress: bool = False,
    ) -> EvalResult:
        """Loss, perplexity and bits per character over the whole ``split`` (a progress bar
        on a terminal with ``progress``)."""
        data_dir = Path(data_dir or self.config["data_dir"])
        meta = load_meta(data_dir)
        if checkpoint.tokenizer_json(load_tokenizer(data_dir)) != (
            checkpoint.tokenizer_json(self.tokenizer)
        ):
            raise CheckpointError(
                f"{data_dir} was tokenized with another vocabulary than run {self.run_dir}"
            )
        return evaluate(
            self.gpt,
            load_split(data_dir, split),
            meta["splits"][split],
            self.gpt.cfg.block_size,
            split,
            batch_size,
            self.device,
            progress,
        )

    def evaluate_text(self, path: str | Path, encoding: str | None = None) -> EvalResult:
        """Loss and bits per character over any text file, cleaned as the run's training
        text was and encoded with the run's vocabulary (unknown words count as <unk>)."""
        import tempfile

        cfg = from_dict(DataConfig, {**self.config.get("data", {}), "dataset": str(path)})
        if encoding:
            cfg = replace(cfg, encoding=encoding)
        with tempfile.TemporaryDirectory(prefix="wordgpt-eval-") as tmp:
            prepare(cfg, tmp, tokenizer_from=self.tokenizer, progress=False, holdout=False)
            return replace(self.evaluate("val", tmp), split=Path(path).name)


def load(run_dir: str | Path, which: str = "best", device: str = "auto") -> Model:
    """Load a run folder's ``best.pt`` (or ``last.pt``, or a checkpoint path) for use."""
    path = checkpoint.checkpoint_path(run_dir, which)
    ck = checkpoint.load(path)
    dev = pick_device(device)
    cfg = checkpoint.model_config(ck, path)
    check_memory(cfg, bytes_per_param=4, doing="load")
    tok = checkpoint.tokenizer(ck, path)
    if tok.vocab_size != cfg.vocab_size:
        raise CheckpointError(f"{path}: tokenizer and model disagree on the vocabulary size")
    gpt = GPT(cfg)
    checkpoint.load_weights(gpt, ck, path)
    bad = checkpoint.non_finite(ck["model"])
    if bad:
        raise CheckpointError(f"{path} holds weights that are not finite ({bad[0]}, ...)")
    gpt.to(dev).eval()
    config = {
        "data_dir": ck.get("data_dir", ""),
        "model": ck["model_config"],
        "train": ck.get("train_config", {}),
        "data": ck.get("data_config", {}),
        "preset": ck.get("preset"),
    }
    return Model(gpt, tok, path.parent, config, int(ck.get("step", 0)), dev, path)
