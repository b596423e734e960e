"""Dynamic evaluation (Krause et al. 2018, 2019): a copy of the model reads the text as a
compressor does, window by window, each window scored first and then learned from with one
step on its mean loss, so every token is predicted by weights that learned only from the
tokens before it.

Two rules (:class:`..adapt_config.AdaptConfig`):

- ``sgd``: ``theta -= lr * g``;
- ``rms``: ``theta -= lr * g / (rms + eps)``, where ``rms`` is each parameter's
  root-mean-square gradient over :data:`MS_WINDOWS` windows of the training text (how far the
  training text moves it) and ``eps`` :data:`EPS_SHARE` of the mean ``rms``; with a decay
  ``d``, also ``theta += d * (theta_0 - theta) * min(rms / mean rms, 1 / d)`` (``sgd``: ``d *
  (theta_0 - theta)``), a pull back toward the trained weights ``theta_0``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..adapt_config import AdaptConfig
from ..errors import WordGPTError

MS_WINDOWS = 64
"""Training windows whose squared gradients, averaged, give each parameter's RMS gradient."""
EPS_SHARE = 0.1
"""The RMS step divides by RMS + this share of the mean RMS: a parameter the training windows
barely move (a rare word's embedding) takes no giant step."""
WARM_SHARE = 0.5
"""The share of the rule's rate at which a warmed evaluation (``eval --warm``) learns from the
held-out end of the training split before it reads: half the rate was better than the whole on
both books it was chosen on (benchmarks/RESULTS.md, "Reading on from where training
stopped")."""


@dataclass(frozen=True)
class Adaptation:
    """An :class:`AdaptConfig` made ready for a model: with the ``rms`` rule, each of the
    model's parameters' RMS gradient on its training text (:meth:`of`)."""

    config: AdaptConfig
    rms: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def sgd(cls, lr: float, decay: float = 0.0) -> Adaptation:
        """The plain gradient step of rate ``lr`` (needs no training text)."""
        return cls(AdaptConfig(adapt_rule="sgd", adapt_lr=lr, adapt_decay=decay))

    @classmethod
    def of(cls, config: AdaptConfig, model, train: np.ndarray | None, block_size: int,
           device="cpu") -> Adaptation:  # fmt: skip
        """``config`` for ``model``: the ``rms`` rule measures the RMS gradients on
        ``train`` (the model's training tokens)."""
        if config.adapt_rule != "rms":
            return cls(config)
        if train is None or len(train) < 2:
            raise WordGPTError("the rms rule of adaptive evaluation measures its steps on the "
                               "run's training tokens, which this run has not: use "
                               "--adapt-rule sgd")  # fmt: skip
        return cls(config, tuple(rms_gradients(model, train, block_size, device)))

    def summary(self) -> dict:
        """What an adaptive figure was measured with: its rule, rate and decay."""
        c = self.config
        return {"rule": c.adapt_rule, "lr": c.rate, "decay": c.adapt_decay}


def rms_gradients(model, train: np.ndarray, block_size: int, device="cpu") -> list:
    """Each parameter's root-mean-square gradient over :data:`MS_WINDOWS` windows of
    ``train`` drawn at fixed places (the same for every evaluation of a run), each window's
    mean loss on its own."""
    learner = copy.deepcopy(model).to(device).eval()
    params = list(learner.parameters())
    ms = [torch.zeros_like(p) for p in params]
    length = min(block_size, len(train) - 1)
    for at in np.random.default_rng(0).integers(0, len(train) - length, MS_WINDOWS).tolist():
        row = torch.from_numpy(train[at : at + length + 1].astype(np.int64))[None].to(device)
        learner.zero_grad(set_to_none=True)
        learner(row[:, :-1], row[:, 1:], reduction="none").mean().backward()
        for s, p in zip(ms, params, strict=True):
            if p.grad is not None:
                s += p.grad.detach() ** 2 / MS_WINDOWS
    return [s.sqrt() for s in ms]


class Learner:
    """A copy of ``model`` (no dropout) that takes one step of ``adaptation``'s rule on each
    loss it is given (:meth:`learn`); ``model`` itself is left as it was. ``share``: the
    share of its rate each step takes, ``stride / block`` where windows overlap (a token read
    in ``block / stride`` windows moves the weights as much as in one)."""

    def __init__(self, model, adaptation: Adaptation, device="cpu", share: float = 1.0):
        cfg = adaptation.config
        self.model = copy.deepcopy(model).to(device).eval()
        self.params = list(self.model.parameters())
        self.lr, self.decay = cfg.rate * share, cfg.adapt_decay
        self.scale: list[torch.Tensor | float] = [1.0] * len(self.params)  # sgd
        self.pull: list[torch.Tensor | float] = [1.0] * len(self.params)
        if adaptation.rms is not None:
            rms = [r.to(device) for r in adaptation.rms]
            mean = torch.cat([r.flatten() for r in rms]).mean()
            self.scale = [1.0 / (r + EPS_SHARE * mean) for r in rms]
            if self.decay:
                self.pull = [torch.clamp(r / mean, max=1.0 / self.decay) for r in rms]
        self.start = [p.detach().clone() for p in self.params] if self.decay else None

    def learn(self, loss: torch.Tensor) -> None:
        """One step on ``loss`` (a scalar of :attr:`model`'s output); a loss that is no
        longer finite (a rate too large made the weights diverge) is refused in one line."""
        if not torch.isfinite(loss):
            raise WordGPTError(f"adaptive evaluation diverged: after steps of rate {self.lr:g} "
                               "its loss is not finite; give a smaller --adapt-lr")  # fmt: skip
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if p.grad is not None:
                    p -= self.lr * p.grad * self.scale[i]
                if self.start is not None:
                    p += self.decay * (self.start[i] - p) * self.pull[i]
