"""Sampling: plain seeded functions that turn a model's logits into token ids.

``temperature == 0`` means greedy (argmax); ``top_k`` keeps exactly the k most likely
tokens; ``top_p`` keeps the smallest set of tokens whose probability reaches p (the most
likely token always stays).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..config import SampleConfig
from ..errors import WordGPTError


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one id per row from last-position logits (B, V); returns (B,)."""
    logits = logits.float()
    if not torch.isfinite(logits).any(dim=-1).all() or torch.isnan(logits).any():
        raise WordGPTError("the model's output is not finite (was its training diverging?)")
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        v, i = torch.topk(logits, top_k, dim=-1)  # exactly k, even with ties
        logits = torch.full_like(logits, float("-inf")).scatter(1, i, v)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p  # the mass before this token is enough
        drop[:, 0] = False  # the most likely token stays (a cumsum is not exact)
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def generate_ids(
    gpt, ids: list[int], cfg: SampleConfig, device, unk: int | None = None
) -> Iterator[int]:
    """New token ids after the context ``ids``, one at a time, drawn as ``cfg`` says (an
    unset seed draws a fresh one); ``unk``, the id of ``<unk>``, is never drawn unless
    ``cfg.allow_unk`` (its probability goes to the others). The model is in eval mode while
    the iterator runs; stopping the iteration stops the generation."""
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    ban = torch.tensor([unk], device=device) if unk is not None and not cfg.allow_unk else None

    def sample(logits):  # (B, V)
        if ban is not None:
            logits = logits.float().index_fill(-1, ban, -math.inf)
        return sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, gen)

    was_training = gpt.training
    gpt.eval()
    try:
        for nxt in gpt.generate(idx, cfg.max_new_tokens, sample, cfg.use_cache):
            yield int(nxt[0])
    finally:
        gpt.train(was_training)
