"""Loss, perplexity and bits per character over a whole split.

Bits per character = total cross-entropy in bits / number of characters of the split's text.
It does not depend on how the text was cut into tokens, so word-, char- and BPE-level models
compare fairly on it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..corpus.tokenfiles import bits_per_char


@dataclass(frozen=True)
class EvalResult:
    split: str
    tokens: int
    """Tokens predicted (every token of the split but the first)."""
    chars: int
    loss: float
    """Mean cross-entropy per token, in nats."""
    perplexity: float
    bits_per_token: float
    bits_per_char: float

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.split}: {self.tokens:,} tokens, {self.chars:,} chars | loss {self.loss:.4f} | "
            f"perplexity {self.perplexity:.2f} | {self.bits_per_token:.4f} bits/token | "
            f"{self.bits_per_char:.4f} bits/char"
        )


@torch.no_grad()
def total_nll(
    model,
    data: np.ndarray,
    block_size: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[float, int]:
    """Sum of the cross-entropy (nats) of predicting ``data[1:]``, in consecutive windows of
    ``block_size`` tokens (each token is predicted once, from the window it falls in); a
    progress bar on a terminal when asked."""
    n = len(data) - 1
    full = n // block_size
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        starts = np.arange(full) * block_size
        for i in tqdm(
            range(0, full, batch_size),
            desc="evaluating",
            unit="batch",
            disable=None if progress else True,
            leave=False,
        ):
            s = starts[i : i + batch_size]
            rows = torch.from_numpy(data[s[:, None] + np.arange(block_size + 1)].astype(np.int64))
            rows = rows.to(device)
            total += model(rows[:, :-1], rows[:, 1:], reduction="sum").item()
            count += rows[:, 1:].numel()
        if (rest := n - full * block_size) > 0:
            row = torch.from_numpy(data[full * block_size :].astype(np.int64))[None].to(device)
            total += model(row[:, :-1], row[:, 1:], reduction="sum").item()
            count += rest
    finally:
        model.train(was_training)
    return total, count


def evaluate(
    model,
    data: np.ndarray,
    chars: int,
    block_size: int,
    split: str = "val",
    batch_size: int = 16,
    device="cpu",
    progress: bool = False,
) -> EvalResult:
    nll, n = total_nll(model, data, block_size, batch_size, device, progress)
    loss = nll / max(n, 1)
    return EvalResult(
        split,
        n,
        chars,
        loss,
        math.exp(min(loss, 700.0)),
        loss / math.log(2),
        bits_per_char(nll, chars),
    )
