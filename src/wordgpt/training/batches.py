"""Training batches as a function of (seed, step, rank): no generator state to save or lose.

The global batch of step s is drawn from a generator seeded by (seed, s) and cut into each
rank's micro-batches, so a resumed run draws exactly what an uninterrupted one would, and 2
ranks x B/2 sequences (or 2 accumulated micro-batches of B/2) see the same rows as one
process with B.
"""

from __future__ import annotations

import numpy as np
import torch

from ..corpus.tokenfiles import token_rows
from ..errors import DataError
from .distributed import Dist


def derive_seed(*parts: int) -> int:
    """A 64-bit seed from several integers (collision-free in practice, unlike sums)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0])


def get_rows(data: np.ndarray, offsets: np.ndarray, block_size: int):
    """``(x, y)`` of shape ``(len(offsets), block_size)``: the tokens at each offset and the
    ones after them."""
    t = torch.from_numpy(token_rows(data, offsets, block_size + 1))  # (B, T+1)
    return t[:, :-1], t[:, 1:]


def random_offsets(n_tokens: int, block_size: int, count: int, generator) -> np.ndarray:
    """``count`` random starts of a row of ``block_size + 1`` tokens in a split of
    ``n_tokens``, drawn from ``generator``."""
    n = n_tokens - block_size - 1
    if n < 1:
        raise DataError(f"a split of {n_tokens} tokens is too short for block_size {block_size}")
    return torch.randint(n, (count,), generator=generator).numpy()


class Batches:
    """The training batches of a run: the global batch of step s holds
    ``batch_size * grad_accum * world`` rows at offsets drawn from a generator seeded by
    (seed, s); rank r's micro-batch m is the slice ``(r * grad_accum + m) * batch_size``."""

    def __init__(self, data, batch_size: int, block_size: int, grad_accum: int, seed: int, d: Dist):
        self.data, self.B, self.T = data, batch_size, block_size
        self.A, self.seed, self.dist = grad_accum, seed, d

    def micro(self, step: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, step))
        offsets = random_offsets(len(self.data), self.T, self.B * self.A * self.dist.world, g)
        first = (self.dist.rank * self.A + m) * self.B
        return get_rows(self.data, offsets[first : first + self.B], self.T)
