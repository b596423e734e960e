"""Loss, perplexity and bits per character over a whole split.

Bits per character = (the model's total cross-entropy in bits + the bits to spell every
token that was <unk>) / the characters of the split's text. It counts every character's
information whatever the tokenizer, so word-, char- and BPE-level models compare fairly on
it: a word model pays for a word it does not know as a character model would, by spelling
it (:mod:`wordgpt.corpus.spelling`). The share of <unk> tokens goes beside every figure.
"""

from __future__ import annotations

import math
import time
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
    """The model's mean cross-entropy per token, in bits (spelling not included)."""
    bits_per_char: float
    """Every character's information: the model's bits and the <unk> spellings."""
    unk_share: float = 0.0
    """The share of the split's tokens that are <unk>."""
    spell_bits_per_char: float = 0.0
    """The part of bits_per_char that pays for spelling the <unk> words."""

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        unk = (
            f" (<unk> {self.unk_share:.2%} of the tokens, their spelling "
            f"{self.spell_bits_per_char:.4f})"
            if self.unk_share
            else ""
        )
        return (
            f"{self.split}: {self.tokens:,} tokens, {self.chars:,} chars | loss {self.loss:.4f} | "
            f"perplexity {self.perplexity:.2f} | {self.bits_per_token:.4f} bits/token | "
            f"{self.bits_per_char:.4f} bits/char{unk}"
        )


@torch.no_grad()
def total_nll(
    model,
    data: np.ndarray,
    block_size: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
    deadline: float | None = None,
) -> tuple[float, int]:
    """Sum of the cross-entropy (nats) of predicting ``data[1:]``, in consecutive windows of
    ``block_size`` tokens (each token is predicted once, from the window it falls in); a
    progress bar on a terminal when asked. With a ``deadline`` (a ``time.perf_counter()``
    reading) it raises :class:`OutOfTimeError` after its first batch when, at that batch's speed,
    the split would not be done by then."""
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
            t = time.perf_counter()
            total += model(rows[:, :-1], rows[:, 1:], reduction="sum").item()
            count += rows[:, 1:].numel()
            if deadline is not None and i == 0:
                batches = math.ceil(full / batch_size) + 1
                if t + (time.perf_counter() - t) * batches > deadline:
                    raise OutOfTimeError(f"the whole split would take about {batches} batches more")
        if (rest := n - full * block_size) > 0:
            row = torch.from_numpy(data[full * block_size :].astype(np.int64))[None].to(device)
            total += model(row[:, :-1], row[:, 1:], reduction="sum").item()
            count += rest
    finally:
        model.train(was_training)
    return total, count


class OutOfTimeError(Exception):
    """An evaluation that would not end by its deadline (it stops after one batch)."""


def evaluate(
    model,
    data: np.ndarray,
    counts: dict,
    block_size: int,
    split: str = "val",
    batch_size: int = 16,
    device="cpu",
    progress: bool = False,
    deadline: float | None = None,
) -> EvalResult:
    """The whole split's figures; ``counts`` is the split's entry of meta.json (characters,
    tokens, <unk>s and their spelling bits)."""
    nll, n = total_nll(model, data, block_size, batch_size, device, progress, deadline)
    loss, chars, spell = nll / max(n, 1), counts["chars"], counts.get("unk_spell_bits", 0.0)
    return EvalResult(
        split,
        n,
        chars,
        loss,
        math.exp(min(loss, 700.0)),
        loss / math.log(2),
        bits_per_char(nll, chars, spell),
        counts.get("unk_share", 0.0),
        spell / max(chars, 1),
    )
