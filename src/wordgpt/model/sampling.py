"""The sampling core every writer of text calls: the sampling rules and the KV-cache loop,
on token ids only (the text side, streaming and copied spans, is the generate module of the
stage that uses a run).

- :func:`sample_next`: one id per row from the last position's logits. ``temperature == 0``
  is greedy (argmax); ``top_k`` keeps exactly the k most likely tokens (0 or None: all);
  ``top_p`` keeps the smallest set whose probability reaches p (the most likely token always
  stays).
- :func:`generate_ids`: the loop. With the cache each new token costs one position; when the
  context reaches the block size it is refilled from the last half block. ``<unk>`` is never
  drawn unless ``allow_unk``: its probability goes to the other tokens. With an n-gram
  partner each draw is from the mixture.

:data:`SHOWCASE` is the one fixed, seeded setting every shown sample uses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch

from ..config import SampleConfig
from ..errors import WordGPTError
from .mixture import Partner
from .threads import Threads

SHOWCASE = SampleConfig(max_new_tokens=120, seed=1)
"""The samples that are shown (the demo, the report, training's samples, ``eval --copies``):
the default temperature and top-k, 120 tokens, seed 1 (``eval --copies`` and the report take
seeds 1, 2, 3, ...)."""


# ------------------------------------------------------------------------ the sampling rules


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    ban: int | None = None,
) -> torch.Tensor:
    """Draw one id per row from last-position logits (B, V); returns (B,). ``ban``: an id
    that is never drawn (its probability goes to the others)."""
    logits = logits.float()
    if ban is not None:
        logits = logits.index_fill(-1, torch.tensor([ban], device=logits.device), -math.inf)
    if not torch.isfinite(logits).any(dim=-1).all() or torch.isnan(logits).any():
        raise WordGPTError("the model's output is not finite (was its training diverging?)")
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k and top_k < logits.size(-1):
        v, i = torch.topk(logits, top_k, dim=-1)  # exactly k, even with ties
        logits = torch.full_like(logits, -math.inf).scatter(1, i, v)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p  # the mass before this token is enough
        drop[:, 0] = False  # the most likely token stays (a cumsum is not exact)
        sorted_logits = sorted_logits.masked_fill(drop, -math.inf)
        logits = torch.full_like(logits, -math.inf).scatter(1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


# ------------------------------------------------------------------------ the loop


@torch.no_grad()
def generate_ids(
    gpt: torch.nn.Module,
    ids: list[int],
    cfg: SampleConfig,
    unk: int | None = None,
    partner: Partner | None = None,
    threads: Threads | None = None,
) -> Iterator[int]:
    """New token ids after the context ``ids``, one at a time, drawn as ``cfg`` says (an
    unset seed draws a fresh one); ``unk``, the id of ``<unk>``, is never drawn unless
    ``cfg.allow_unk``; with a ``partner`` each draw is from the GPT's distribution mixed with
    the n-gram model's; ``threads`` chooses the CPU's thread count by timing the tokens. The
    model is in eval mode while the iterator runs; closing the iterator stops the
    generation."""
    model = getattr(gpt, "_orig_mod", gpt)  # a compiled model: its module (shapes change)
    device = next(model.parameters()).device
    block = model.cfg.block_size
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    ban = None if cfg.allow_unk else unk
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    was_training = model.training
    model.eval()
    try:
        cache, pos = None, 0
        if cfg.use_cache and cfg.max_new_tokens:  # the context's keys and values, once
            cache = model.new_cache(1)
            logits, pos = model(idx[:, -block:], cache=cache)[:, -1], min(idx.size(1), block)
        spent = 0.0  # this token's compute so far (the time between yields is the caller's)
        for i in range(cfg.max_new_tokens):
            t0 = time.perf_counter()
            if not cfg.use_cache:  # every step re-runs the last block of tokens
                logits = model(idx[:, -block:])[:, -1]  # (1, V)
            if partner is not None:  # log(w p_gpt + (1 - w) p_kn), then the sampling rules
                logits = partner.mix(logits, idx[0].tolist())
            nxt = sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, gen, ban)  # (1,)
            if threads is not None:  # the token's time: its draw and its position's forward
                threads.after(spent + time.perf_counter() - t0)
                threads.before()
            yield int(nxt[0])
            idx = torch.cat([idx, nxt[:, None]], dim=1)
            if cache is None or i + 1 == cfg.max_new_tokens:
                continue
            t0 = time.perf_counter()
            if pos < block:  # one new position through the cache
                logits = model(nxt[:, None], cache=cache, pos=pos)[:, -1]  # (1, V)
                pos += 1
            else:  # the block is full: refill the cache from the last half block
                cache = model.new_cache(1)
                ctx = idx[:, -(block // 2) :]
                logits, pos = model(ctx, cache=cache)[:, -1], ctx.size(1)
            spent = time.perf_counter() - t0
    finally:
        model.train(was_training)
