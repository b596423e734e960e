"""How a model learns as it reads in adaptive evaluation (``wordgpt eval --adapt``): the
settings of :mod:`wordgpt.use.adapt`, one dataclass that the CLI's flags follow, as in
:mod:`wordgpt.config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .fields import check, check_choices, check_numbers, in_unit

ADAPT_RATES = {"rms": 4e-5, "sgd": 0.02}
"""Each adaptive rule's rate, measured best on Don Quixote (benchmarks/RESULTS.md, "Dynamic
evaluation"): SGD of 1e-4 to 0.3, the RMS-normalised step of 1e-5 to 2e-4."""


@dataclass(frozen=True)
class AdaptConfig:
    """How a model learns as it reads in adaptive evaluation (``eval --adapt``): after
    scoring each window it takes one step on that window's loss."""

    adapt_rule: Literal["rms", "sgd"] = "rms"
    """How --adapt steps. rms: each parameter's gradient divided by its root-mean-square
    gradient on the training text (Krause et al. 2019); sgd: the plain gradient step."""
    adapt_lr: float | None = None
    """The step's rate for a window of new tokens (windows that overlap, with a stride, each
    take stride / block of it); unset: the rule's measured best (rms 4e-5, sgd 0.02)."""
    adapt_decay: float = 0.0
    """Pull the weights back toward the ones the reading started with (the trained ones; with
    --warm, those it learned on the held-out slice) by this share after each step (rms:
    scaled by each parameter's RMS gradient relative to the mean); 0: none."""

    def __post_init__(self) -> None:
        check_choices(self)
        check_numbers(self)
        check(self.adapt_lr is None or self.adapt_lr > 0,
              f"adapt_lr must be above 0, got {self.adapt_lr}")  # fmt: skip
        in_unit(self, "adapt_decay")

    @property
    def rate(self) -> float:
        """The step's rate: adapt_lr, else the rule's (:data:`ADAPT_RATES`)."""
        return self.adapt_lr if self.adapt_lr is not None else ADAPT_RATES[self.adapt_rule]
