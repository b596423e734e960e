"""Training batches as a function of (seed, step, rank): no generator state to save or lose.

The global batch of step s is drawn from a generator seeded by (seed, s) and cut into each
rank's micro-batches, so a resumed run draws exactly what an uninterrupted one would, and 2
ranks x B/2 sequences (or 2 accumulated micro-batches of B/2) see the same rows as one
process with B.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .distributed import Dist


def derive_seed(*parts: int) -> int:
    """A 64-bit seed from several integers (collision-free in practice, unlike sums)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0])


def get_rows(data: np.ndarray, offsets: np.ndarray, block_size: int):
    """``(x, y)`` of shape ``(len(offsets), block_size)``: the tokens at each offset and the
    ones after them. One vectorised gather, no Python loop per sequence or token."""
    rows = data[offsets[:, None] + np.arange(block_size + 1)].astype(np.int64)  # (B, T+1)
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


def get_batch(data: np.ndarray, batch_size: int, block_size: int, generator):
    """``(x, y)`` of shape ``(batch_size, block_size)`` from random offsets, y shifted by one."""
    n = len(data) - block_size - 1
    if n < 1:
        raise DataError(f"a split of {len(data)} tokens is too short for block_size {block_size}")
    return get_rows(data, torch.randint(n, (batch_size,), generator=generator).numpy(), block_size)


class Batches:
    """The training batches of a run: the global batch of step s holds
    ``batch_size * grad_accum * world`` rows at offsets drawn from a generator seeded by
    (seed, s); rank r's micro-batch m is the slice ``(r * grad_accum + m) * batch_size``."""

    def __init__(self, data, batch_size: int, block_size: int, grad_accum: int, seed: int, d: Dist):
        self.data, self.B, self.T = data, batch_size, block_size
        self.A, self.seed, self.dist = grad_accum, seed, d

    def micro(self, step: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, step))
        n = len(self.data) - self.T - 1
        offsets = torch.randint(n, (self.B * self.A * self.dist.world,), generator=g).numpy()
        first = (self.dist.rank * self.A + m) * self.B
        return get_rows(self.data, offsets[first : first + self.B], self.T)
