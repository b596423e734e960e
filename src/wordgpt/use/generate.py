"""Generation as text: the new text streamed as it comes, the whole text with its seed, and
the spans of it that stand verbatim in the training text.

Everything that writes text calls this module or the sampling core under it
(:mod:`wordgpt.model.sampling`: the sampling rules and the KV-cache loop): ``wordgpt
sample``, :meth:`Model.generate`, the web page, the report, ``eval --copies`` and the samples
a training run logs.

- :func:`stream_text`: the new text piece by piece, as soon as it decodes to whole characters.
- :func:`generate`: the whole text, its ids, its seed and its copied spans.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import SampleConfig
from ..corpus.copy_index import CopyIndex, source_place
from ..corpus.tokenfiles import load_split
from ..corpus.tokenizer import Tokenizer, start_ids, unk_id
from ..model.mixture import Partner
from ..model.sampling import generate_ids
from ..model.threads import Threads

# ------------------------------------------------------------------------ text


def with_seed(cfg: SampleConfig) -> SampleConfig:
    """``cfg`` with its seed drawn now when it has none, so that the seed can be shown and a
    good generation had again."""
    return cfg if cfg.seed is not None else replace(cfg, seed=secrets.randbits(48))


def decode_stream(tok: Tokenizer, ids: Iterable[int], strip_start: bool = False,
                  before: str = "") -> Iterator[str]:  # fmt: skip
    """The text of ``ids`` piece by piece as they come: a piece as soon as it decodes to
    whole characters (a byte-level token may end in the middle of one) and is final (with
    marks, what comes before the last space: :mod:`wordgpt.corpus.marks`); ``strip_start``
    drops the text's leading whitespace; ``before``: the text shown before (the prompt),
    whose last line the first one goes on. Closing it closes ``ids`` too (a generation)."""
    new: list[int] = []
    shown = 0
    whole = ""  # the text of whole characters so far
    try:
        for i in ids:
            new.append(i)
            text = tok.decode(new, before)
            if text.endswith("\ufffd"):
                continue
            whole = text.lstrip() if strip_start else text
            final = whole[: max(whole.rfind(" "), 0)] if tok.marks else whole
            if len(final) > shown:
                yield final[shown:]
                shown = len(final)
        if len(whole) > shown:  # the rest, once nothing can change it
            yield whole[shown:]
    finally:
        if close := getattr(ids, "close", None):
            close()


def stream_text(
    gpt, tok: Tokenizer, prompt: str, cfg: SampleConfig, ids: list | None = None, partner=None,
    threads: Threads | None = None,
) -> Iterator[str]:  # fmt: skip
    """Yield the text generated after ``prompt`` piece by piece (the prompt not repeated);
    with no prompt generation starts a sentence and its first piece has no leading space.
    The new token ids are appended to ``ids`` when given; ``partner``: an n-gram partner
    mixed in. Closing it stops the generation."""
    context = (tok.encode(prompt) if prompt else []) or start_ids(tok)
    new = generate_ids(gpt, context, cfg, unk_id(tok), partner, threads)
    if ids is not None:
        new = _kept(new, ids)
    return decode_stream(tok, new, strip_start=not prompt, before=prompt)


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
    """A generated text: what was written after the prompt (``text``), its token ids, the seed
    that gives it again, and its copied spans (None: no training text to look in). ``str()``
    of it is what ``wordgpt sample`` shows: the prompt and the text, then the copies line."""

    prompt: str
    text: str
    ids: list[int]
    seed: int
    copies: Copies | None = None
    mixed: str | None = None
    """With an n-gram partner: how it was mixed in (:meth:`.mixture.Partner.describe`)."""

    def __str__(self) -> str:
        shown = self.prompt + self.text
        shown += f"\n{self.copies.summary()}" if self.copies is not None else ""
        return shown + (f"\ndrawn {self.mixed}" if self.mixed else "")


def generate(
    gpt,
    tok: Tokenizer,
    prompt: str = "",
    cfg: SampleConfig | None = None,
    data_dir: Path | None = None,
    copy_min_tokens: int | None = None,
    partner: Partner | None = None,
    threads: Threads | None = None,
) -> Generation:
    """The text ``gpt`` writes after ``prompt`` (drawn as ``cfg`` says, by default
    SampleConfig's; with an n-gram ``partner`` mixed in), with its copied spans in the
    training text of ``data_dir`` (when it holds one)."""
    cfg = with_seed(cfg or SampleConfig())
    ids: list[int] = []
    text = "".join(stream_text(gpt, tok, prompt, cfg, ids, partner, threads))
    copies = None
    if data_dir is not None and (Path(data_dir) / "train.bin").is_file():
        copies = find_copies(tok, Path(data_dir), ids, copy_min_tokens, lstrip=not prompt)
    return Generation(prompt, text, ids, cfg.seed, copies, partner.describe() if partner else None)
