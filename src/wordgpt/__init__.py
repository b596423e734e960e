"""wordgpt: train small GPT language models from scratch on a book or any text.

The Python API, as a notebook or a script uses it::

    import wordgpt
    wordgpt.prepare("data/dq", dataset="don-quixote")            # text -> token files
    wordgpt.train("data/dq", "runs/dq", time_budget=60)          # token files -> a run
    m = wordgpt.load("runs/dq")                                   # a run -> a model
    print(m.generate("the knight", max_new_tokens=50, seed=1))   # as sample shows it
    print(m.evaluate("val").headline_bits_per_char)  # what `wordgpt eval` prints last

``prepare``, ``train`` and ``load`` are the package's three verbs; the configs
(``DataConfig``, ``ModelConfig``, ``TrainConfig``, ``SampleConfig``) hold every setting, and
each function takes their fields as keyword arguments. Names are imported on first use, so
``import wordgpt`` (and the ``wordgpt`` command's start-up) does not pay for torch until
something needs it.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

_LAZY = {
    "prepare": "corpus.build",
    "train": "use.train_run",
    "load": "use.loaded",
    "Model": "use.loaded",
    "Generation": "use.generate",
    "EvalResult": "use.evaluate",
    "TrainResult": "training.train",
    "Prepared": "corpus.build",
    "DataConfig": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "OptimConfig": "config",
    "StopConfig": "config",
    "EvalConfig": "config",
    "SampleConfig": "config",
    "AdaptConfig": "adapt_config",
    "PRESETS": "presets",
    "WordGPTError": "errors",
    "DataError": "errors",
    "CheckpointError": "errors",
    "DivergedError": "training.trainer",
}

if _typing.TYPE_CHECKING:  # for readers and type checkers: what the lazy names are
    from .adapt_config import AdaptConfig
    from .config import (
        DataConfig,
        EvalConfig,
        ModelConfig,
        OptimConfig,
        SampleConfig,
        StopConfig,
        TrainConfig,
    )
    from .corpus.build import Prepared, prepare
    from .errors import CheckpointError, DataError, WordGPTError
    from .presets import PRESETS
    from .training.train import TrainResult
    from .training.trainer import DivergedError
    from .use.evaluate import EvalResult
    from .use.generate import Generation
    from .use.loaded import Model, load
    from .use.train_run import train

__all__ = [
    "prepare",
    "train",
    "load",
    "Model",
    "Generation",
    "EvalResult",
    "TrainResult",
    "Prepared",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "OptimConfig",
    "StopConfig",
    "EvalConfig",
    "SampleConfig",
    "AdaptConfig",
    "PRESETS",
    "WordGPTError",
    "DataError",
    "CheckpointError",
    "DivergedError",
]


def __getattr__(name: str):
    if name == "__version__":
        from .version import package_version

        return package_version()
    if name in _LAZY:
        value = getattr(_importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # once found, an ordinary attribute
        return value
    raise AttributeError(f"module 'wordgpt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
