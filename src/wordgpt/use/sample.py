"""Text from a trained model: the prompt encoded, ids drawn (:mod:`wordgpt.model.sampling`),
decoded piece by piece as they come."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from dataclasses import replace

from ..config import SampleConfig
from ..corpus.tokenizer import Tokenizer, decode_stream, start_ids
from ..model.sampling import generate_ids


def with_seed(cfg: SampleConfig) -> SampleConfig:
    """``cfg`` with its seed drawn now when it has none, so that the seed can be shown and a
    good generation had again."""
    return cfg if cfg.seed is not None else replace(cfg, seed=secrets.randbits(48))


def stream_text(gpt, tok: Tokenizer, prompt: str, cfg: SampleConfig, device) -> Iterator[str]:
    """Yield the text generated after ``prompt`` piece by piece (the prompt not repeated);
    with no prompt generation starts a sentence and its first piece has no leading space.
    Stopping the iteration stops the generation."""
    ids = (tok.encode(prompt) if prompt else []) or start_ids(tok)
    return decode_stream(tok, generate_ids(gpt, ids, cfg, device), strip_start=not prompt)


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
