"""wordgpt: train small GPT language models from scratch on a book or a Wikipedia sample.

The Python API a notebook uses::

    import wordgpt
    prep = wordgpt.prepare("data/dq", dataset="don-quixote", tokenizer="word")
    wordgpt.train("data/dq", "runs/dq", preset="tiny", max_iters=300)
    m = wordgpt.load("runs/dq")
    print(m.generate("the knight", max_new_tokens=50, temperature=0.8, seed=1))
    print(m.evaluate("val").bits_per_char)

Names are imported on first use, so ``import wordgpt`` (and the ``wordgpt`` command's
start-up) does not pay for torch until something needs it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

_LAZY = {
    "PRESETS": "config",
    "DataConfig": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "SampleConfig": "config",
    "WordGPTError": "errors",
    "DataError": "errors",
    "CheckpointError": "errors",
    "EvalResult": "use.evaluate",
    "TrainResult": "training.loop",
    "train": "api",
    "Model": "use.loaded",
    "load": "use.loaded",
    "DivergedError": "training.trainer",
}

if TYPE_CHECKING:  # for readers and type checkers: what the lazy names are
    from .api import train
    from .config import PRESETS, DataConfig, ModelConfig, SampleConfig, TrainConfig
    from .errors import CheckpointError, DataError, WordGPTError
    from .training.loop import TrainResult
    from .training.trainer import DivergedError
    from .use.evaluate import EvalResult
    from .use.loaded import Model, load


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from .version import package_version

        return package_version()
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'wordgpt' has no attribute {name!r}")


def prepare(
    out: str | Path,
    cfg=None,
    overwrite: bool = False,
    tokenizer_from=None,
    workers: int = 0,
    progress: bool = True,
    **fields,
):
    """Write token files for a data set into ``out``; ``fields`` are DataConfig fields. An
    existing data folder is replaced only with ``overwrite`` (and only once the new one is
    complete). ``tokenizer_from`` (a data or run folder, or a tokenizer) encodes the text
    with that vocabulary instead of making one: what a fine-tune needs. ``workers``
    processes tokenize (0: every core)."""
    from dataclasses import replace

    from .config import DataConfig
    from .corpus.build import prepare as _prepare

    cfg = replace(cfg or DataConfig(), **fields)
    return _prepare(cfg, out, workers, tokenizer_from, progress, overwrite=overwrite)


__all__ = [
    "PRESETS",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "SampleConfig",
    "WordGPTError",
    "DataError",
    "CheckpointError",
    "DivergedError",
    "EvalResult",
    "Model",
    "TrainResult",
    "prepare",
    "train",
    "load",
]
