"""An ensemble of GPTs trained on the same text: their next-token probabilities averaged,
``p = (p_1 + ... + p_n) / n``, behind the calls of one :class:`.gpt.GPT` (logits, the loss,
the KV cache), so evaluation and generation take either.

When a run's pass cap ends its training with budget left, training goes on with further
members (other seeds) rather than more passes over a text the model already overfits; on a
fixed amount of data an ensemble lowers the loss where one model no longer does.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gpt import GPT


class Ensemble(nn.Module):
    """Members of one vocabulary and block size, their probabilities averaged."""

    def __init__(self, members: list[GPT]):
        super().__init__()
        shapes = {(m.cfg.vocab_size, m.cfg.block_size) for m in members}
        if len(shapes) != 1:
            raise ValueError("an ensemble needs members of one vocabulary and block size")
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg

    @property
    def wte(self) -> nn.Embedding:
        """The first member's token embedding (what the words map shows)."""
        return self.members[0].wte

    def num_params(self) -> int:
        return sum(m.num_params() for m in self.members)

    def new_cache(self, batch_size: int) -> list:
        return [m.new_cache(batch_size) for m in self.members]

    def forward(self, idx, targets=None, cache: list | None = None, pos: int = 0,
                reduction: str = "mean"):  # fmt: skip
        """As :meth:`.gpt.GPT.forward`: the log of the members' mean probability (B, T, V)
        for ``idx`` (B, T), or with ``targets`` its cross-entropy."""
        caches = cache if cache is not None else [None] * len(self.members)
        logp = torch.stack(
            [
                m(idx, cache=c, pos=pos).float().log_softmax(-1)
                for m, c in zip(self.members, caches, strict=True)
            ]
        )  # (n, B, T, V)
        logits = logp.logsumexp(0) - math.log(len(self.members))  # (B, T, V)
        if targets is None:
            return logits
        return F.cross_entropy(
            logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction
        )
