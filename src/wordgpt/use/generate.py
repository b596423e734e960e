"""Generation, in one place: the KV-cache loop, the sampling rules, text streamed as it
comes, and the spans of it that stand verbatim in the training text.

Everything that writes text calls this module: ``wordgpt sample``, :meth:`Model.generate`,
the web page, the report, ``eval --copies`` and the samples a training run logs.

- :func:`sample_next`: one id per row from the last position's logits. ``temperature == 0``
  is greedy (argmax); ``top_k`` keeps exactly the k most likely tokens (0 or None: all);
  ``top_p`` keeps the smallest set whose probability reaches p (the most likely token always
  stays).
- :func:`generate_ids`: the loop. With the cache each new token costs one position; when the
  context reaches the block size it is refilled from the last half block. ``<unk>`` is never
  drawn unless ``allow_unk``: its probability goes to the other tokens.
- :func:`stream_text`: the new text piece by piece, as soon as it decodes to whole characters.
- :func:`generate`: the whole text, its ids, its seed and its copied spans.

:data:`SHOWCASE` is the one fixed, seeded setting every shown sample uses.
"""

from __future__ import annotations

import math
import secrets
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..config import SampleConfig
from ..corpus.copy_index import CopyIndex, source_place
from ..corpus.tokenfiles import load_split
from ..corpus.tokenizer import Tokenizer, start_ids, unk_id
from ..errors import WordGPTError
from .ngram import Partner

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
) -> Iterator[int]:
    """New token ids after the context ``ids``, one at a time, drawn as ``cfg`` says (an
    unset seed draws a fresh one); ``unk``, the id of ``<unk>``, is never drawn unless
    ``cfg.allow_unk``; with a ``partner`` each draw is from the GPT's distribution mixed with
    the n-gram model's. The model is in eval mode while the iterator runs; closing the
    iterator stops the generation."""
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
        for i in range(cfg.max_new_tokens):
            if not cfg.use_cache:  # every step re-runs the last block of tokens
                logits = model(idx[:, -block:])[:, -1]  # (1, V)
            if partner is not None:  # log(w p_gpt + (1 - w) p_kn), then the sampling rules
                logits = partner.mix(logits, idx[0].tolist())
            nxt = sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, gen, ban)  # (1,)
            yield int(nxt[0])
            idx = torch.cat([idx, nxt[:, None]], dim=1)
            if cache is None or i + 1 == cfg.max_new_tokens:
                continue
            if pos < block:  # one new position through the cache
                logits = model(nxt[:, None], cache=cache, pos=pos)[:, -1]  # (1, V)
                pos += 1
            else:  # the block is full: refill the cache from the last half block
                cache = model.new_cache(1)
                ctx = idx[:, -(block // 2) :]
                logits, pos = model(ctx, cache=cache)[:, -1], ctx.size(1)
    finally:
        model.train(was_training)


# ------------------------------------------------------------------------ text


def with_seed(cfg: SampleConfig) -> SampleConfig:
    """``cfg`` with its seed drawn now when it has none, so that the seed can be shown and a
    good generation had again."""
    return cfg if cfg.seed is not None else replace(cfg, seed=secrets.randbits(48))


def decode_stream(tok: Tokenizer, ids: Iterable[int], strip_start: bool = False) -> Iterator[str]:
    """The text of ``ids`` piece by piece as they come: a piece as soon as it decodes to
    whole characters (a byte-level token may end in the middle of one); ``strip_start``
    drops the text's leading whitespace. Closing it closes ``ids`` too (a generation)."""
    new: list[int] = []
    shown = 0
    try:
        for i in ids:
            new.append(i)
            text = tok.decode(new)
            if text.endswith("\ufffd"):
                continue
            if strip_start:
                text = text.lstrip()
            if len(text) > shown:
                yield text[shown:]
                shown = len(text)
    finally:
        if close := getattr(ids, "close", None):
            close()


def stream_text(
    gpt, tok: Tokenizer, prompt: str, cfg: SampleConfig, ids: list | None = None, partner=None
) -> Iterator[str]:
    """Yield the text generated after ``prompt`` piece by piece (the prompt not repeated);
    with no prompt generation starts a sentence and its first piece has no leading space.
    The new token ids are appended to ``ids`` when given; ``partner``: an n-gram partner
    mixed in. Closing it stops the generation."""
    context = (tok.encode(prompt) if prompt else []) or start_ids(tok)
    new = generate_ids(gpt, context, cfg, unk_id(tok), partner)
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


# ------------------------------------------------------------------------ copied spans

COPY_MIN = {"word-sp": 9, "word": 16, "char": 35, "bpe": 8}
"""Tokens a copied span must have, by tokenizer: the smallest n such that under 1 % of the
val split's n-grams stand in the training text by chance (``benchmarks/copies.py``, Don
Quixote: 0.81 % of its 9-grams of space-prefixed words, 0.66 % of 16-grams of words and
spaces, 0.76 % of 35-grams of characters, 0.98 % of 8-grams of BPE tokens)."""


@dataclass(frozen=True)
class CopiedSpan:
    start: int
    """Character offsets in the generated text."""
    end: int
    tokens: int
    where: str
    """The place in the training text, in words."""
    source: str
    """The training text around the copy (what the page shows on hover)."""


@dataclass
class Copies:
    """The copied spans of one text, and the share of its characters inside them."""

    spans: list[CopiedSpan] = field(default_factory=list)
    chars: int = 0
    min_tokens: int = 0

    @property
    def share(self) -> float:
        return sum(s.end - s.start for s in self.spans) / max(self.chars, 1)

    @property
    def longest(self) -> CopiedSpan | None:
        return max(self.spans, key=lambda s: s.tokens, default=None)

    def summary(self) -> str:
        if not self.spans:
            return (
                f"copies: none (no span of {self.min_tokens} tokens or more stands in the "
                "training text)"
            )
        top = self.longest
        return (
            f"copies: {self.share:.0%} of the text is in {len(self.spans)} span(s) of "
            f"{self.min_tokens}+ tokens found verbatim in the training text; the longest, "
            f"{top.tokens} tokens, is at {top.where}"
        )

    def to_dict(self) -> dict:
        return {
            "share": self.share,
            "min_tokens": self.min_tokens,
            "spans": [asdict(s) for s in self.spans],
            "summary": self.summary(),
        }


def copy_min(tok: Tokenizer) -> int:
    """The default span length for a tokenizer (see COPY_MIN)."""
    kind = "word-sp" if tok.kind == "word" and getattr(tok, "space_prefix", False) else tok.kind
    return COPY_MIN.get(kind, COPY_MIN["word"])


def find_copies(
    tok: Tokenizer,
    data_dir: Path,
    ids: list[int],
    min_tokens: int | None = None,
    lstrip: bool = False,
) -> Copies:
    """The copied spans of the token ids ``ids`` (a generated text, decoded by ``tok``; with
    ``lstrip``, offsets into the text without its leading whitespace, as a sample without a
    prompt is shown)."""
    n = min_tokens or copy_min(tok)
    index = CopyIndex.open(data_dir, min(n, copy_min(tok)))  # a longer span: the same index
    train = load_split(data_dir, "train", check_ids=False)
    text = tok.decode(ids)
    cut = len(text) - len(text.lstrip()) if lstrip else 0
    offsets = [max(len(tok.decode(ids[:i])) - cut, 0) for i in range(len(ids) + 1)]
    out = Copies(chars=offsets[-1], min_tokens=n)
    for s in index.spans(np.asarray(ids, dtype=np.int64), n):
        around = train[max(s.train_at - 20, 0) : s.train_at + s.length + 20]
        out.spans.append(
            CopiedSpan(
                offsets[s.start],
                offsets[s.start + s.length],
                s.length,
                source_place(data_dir, s.train_at),
                tok.decode(np.asarray(around).tolist()),
            )
        )
    return out


# ------------------------------------------------------------------------ all of it


@dataclass
class Generation:
    """A generated text: what was written after the prompt, its token ids, the seed that
    gives it again, and its copied spans (None: no training text to look in). ``str()`` of
    it is the text."""

    prompt: str
    text: str
    ids: list[int]
    seed: int
    copies: Copies | None = None

    def __str__(self) -> str:
        return self.text


def generate(
    gpt,
    tok: Tokenizer,
    prompt: str = "",
    cfg: SampleConfig | None = None,
    data_dir: Path | None = None,
    copy_min_tokens: int | None = None,
    partner: Partner | None = None,
) -> Generation:
    """The text ``gpt`` writes after ``prompt`` (drawn as ``cfg`` says, by default
    SampleConfig's; with an n-gram ``partner`` mixed in), with its copied spans in the
    training text of ``data_dir`` (when it holds one)."""
    cfg = with_seed(cfg or SampleConfig())
    ids: list[int] = []
    text = "".join(stream_text(gpt, tok, prompt, cfg, ids, partner))
    copies = None
    if data_dir is not None and (Path(data_dir) / "train.bin").is_file():
        copies = find_copies(tok, Path(data_dir), ids, copy_min_tokens, lstrip=not prompt)
    return Generation(prompt, text, ids, cfg.seed, copies)
