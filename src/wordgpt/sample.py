"""Sampling: plain seeded functions that turn a model's logits into text.

``temperature == 0`` means greedy (argmax); ``top_k`` keeps exactly the k most likely
tokens; ``top_p`` keeps the smallest set of tokens whose probability reaches p.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import torch

from . import tokenizers
from .config import SampleConfig
from .errors import WordGPTError


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
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def default_context(tok: tokenizers.Tokenizer) -> list[int]:
    """Where generation starts with no prompt: just after a full stop, so that the model
    begins a sentence (not at id 0, which is ``<unk>``)."""
    ids = tok.encode(".")
    return ids if ids and 0 not in ids else [1]


def stream_text(
    gpt, tok: tokenizers.Tokenizer, prompt: str, cfg: SampleConfig, device
) -> Iterator[str]:
    """Yield the text generated after ``prompt`` piece by piece (the prompt not repeated).

    A piece is yielded as soon as it decodes to whole characters; with no prompt the first
    piece has no leading space. Stopping the iteration stops the generation."""
    ids = (tok.encode(prompt) if prompt else []) or default_context(tok)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    idx = torch.tensor([ids], dtype=torch.long, device=device)

    def sample(logits):
        return sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, gen)

    new: list[int] = []
    shown = 0
    was_training = gpt.training
    gpt.eval()
    try:
        for nxt in gpt.generate(idx, cfg.max_new_tokens, sample, cfg.use_cache):
            new.append(int(nxt[0]))
            text = tok.decode(new)
            if text.endswith("\ufffd"):  # a byte-level token that ends mid-character
                continue
            if not prompt:
                text = text.lstrip()
            if len(text) > shown:
                yield text[shown:]
                shown = len(text)
    finally:
        gpt.train(was_training)


def print_stream(pieces: Iterator[str], out=sys.stdout) -> str:
    """Write pieces as they come; return the whole text."""
    parts = []
    for p in pieces:
        out.write(p)
        out.flush()
        parts.append(p)
    out.write("\n")
    return "".join(parts)
