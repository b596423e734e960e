"""The loss estimate of the training loop (nanoGPT's ``estimate_loss``): the mean loss over
``eval_iters`` fixed batches per split, the same batches at every estimate, so that two
estimates of one run differ only by what the model learnt. The whole-split measurement is
:mod:`wordgpt.use.evaluate`."""

from __future__ import annotations

import torch
import torch.nn as nn

from .batches import derive_seed, get_rows
from .device import autocast
from .distributed import Dist


@torch.no_grad()
def estimate_loss(
    model: nn.Module,
    splits: dict,
    batch_size: int,
    block: int,
    eval_iters: int,
    seed: int,
    device: torch.device,
    dtype: torch.dtype | None,
    d: Dist,
) -> dict[str, float]:
    """Mean loss per split in eval mode; under DDP each rank computes every world-th batch
    and the sums are combined, so every rank gets the same numbers."""
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(derive_seed(seed, 2**32))
        n = len(data) - block - 1
        total = 0.0
        for i in range(eval_iters):
            offsets = torch.randint(n, (batch_size,), generator=g).numpy()
            if i % d.world != d.rank:
                continue
            x, y = get_rows(data, offsets, block)
            with autocast(device, dtype):
                total += model(x.to(device), y.to(device)).item()
        out[name] = d.sync([total], ["sum"])[0] / eval_iters
    return out
