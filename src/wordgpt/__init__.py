"""wordgpt: train small GPT language models from scratch on a book or a Wikipedia sample.

The Python API a notebook uses::

    import wordgpt
    prep = wordgpt.prepare("data/dq", dataset="don-quixote", tokenizer="word")
    wordgpt.train("data/dq", "runs/dq", preset="tiny", max_iters=300)
    m = wordgpt.load("runs/dq")
    print(m.generate("the knight", max_new_tokens=50, temperature=0.8, seed=1))
    print(m.evaluate("val").bits_per_char)
"""

from __future__ import annotations

from pathlib import Path

from .config import PRESETS, DataConfig, ModelConfig, SampleConfig, TrainConfig
from .errors import CheckpointError, DataError, WordGPTError
from .evaluate import EvalResult
from .launch import TrainResult, train
from .run import Model, load
from .train import DivergedError

__version__ = "0.1.0"


def prepare(out: str | Path, cfg: DataConfig | None = None, **fields):
    """Write token files for a data set into ``out``; ``fields`` are DataConfig fields."""
    from dataclasses import replace

    from .data import prepare as _prepare

    return _prepare(replace(cfg or DataConfig(), **fields), out)


__all__ = [
    "PRESETS",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "SampleConfig",
    "WordGPTError",
    "DataError",
    "CheckpointError",
    "EvalResult",
    "Model",
    "TrainResult",
    "DivergedError",
    "prepare",
    "train",
    "load",
]
