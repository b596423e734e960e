"""Text from a trained model: the prompt encoded, ids drawn (:mod:`wordgpt.model.sampling`),
decoded piece by piece as they come."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from dataclasses import replace

from ..config import SampleConfig
from ..corpus.tokenizer import Tokenizer, decode_stream, start_ids, unk_id
from ..model.sampling import generate_ids


def with_seed(cfg: SampleConfig) -> SampleConfig:
    """``cfg`` with its seed drawn now when it has none, so that the seed can be shown and a
    good generation had again."""
    return cfg if cfg.seed is not None else replace(cfg, seed=secrets.randbits(48))


def stream_text(
    gpt, tok: Tokenizer, prompt: str, cfg: SampleConfig, device, ids: list | None = None
) -> Iterator[str]:
    """Yield the text generated after ``prompt`` piece by piece (the prompt not repeated);
    with no prompt generation starts a sentence and its first piece has no leading space;
    ``<unk>`` is never drawn unless ``cfg.allow_unk``.
    The new token ids are appended to ``ids`` when given. Stopping the iteration stops the
    generation."""
    context = (tok.encode(prompt) if prompt else []) or start_ids(tok)
    new = generate_ids(gpt, context, cfg, device, unk_id(tok))
    if ids is not None:
        new = _kept(new, ids)
    return decode_stream(tok, new, strip_start=not prompt)


def _kept(source: Iterator[int], into: list) -> Iterator[int]:
    try:
        for i in source:
            into.append(i)
            yield i
    finally:
        source.close()


def print_stream(pieces: Iterator[str], out=None) -> str:
    """Write pieces as they come (to ``out``, by default the stdout of the moment); return
    the whole text."""
    out = out or sys.stdout
    parts = []
    for p in pieces:
        out.write(p)
        out.flush()
        parts.append(p)
    out.write("\n")
    return "".join(parts)
