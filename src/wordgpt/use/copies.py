"""Copied spans in generated text: which stretches of a sample stand verbatim in the
training text, how much of the sample they cover, and the same share for the val split
(natural text of the same book: the baseline of what chance alone copies).

``COPY_MIN`` is the length a span must reach to count: the length that the val split's own
text almost never reaches by chance (measured on Don Quixote: ``benchmarks/copies.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..corpus.copies import CopyIndex, source_place
from ..corpus.tokenfiles import load_split

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


@dataclass
class Written:
    """A generated text, its token ids, and its copied spans (None: no training text)."""

    text: str
    ids: list[int]
    copies: Copies | None


def copy_min(tok) -> int:
    """The default span length for a tokenizer (see COPY_MIN)."""
    kind = "word-sp" if tok.kind == "word" and getattr(tok, "space_prefix", False) else tok.kind
    return COPY_MIN.get(kind, COPY_MIN["word"])


def find_copies(
    tok, data_dir: Path, ids: list[int], min_tokens: int | None = None, lstrip: bool = False
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


def split_share(data_dir: Path, split: str, n: int, limit: int = 200_000) -> float:
    """The share of a split's n-grams (its first ``limit`` tokens) that stand in train.bin."""
    ids = np.asarray(load_split(data_dir, split, check_ids=False)[: limit + n - 1])
    found, total = CopyIndex.open(data_dir, n).share(ids)
    return found / max(total, 1)


SAMPLES = {"n": 10, "tokens": 200, "temperature": 0.8, "top_k": 50}
"""The fixed, seeded set of samples ``eval --copies`` measures (seeds 1 to n)."""


def copy_figures(m, copy_min_tokens: int | None = None, samples: dict | None = None) -> dict:
    """Does the run write or copy? Over a fixed set of seeded samples: the share of their
    n-grams that stand in the training text, beside the same share for the val split (the
    book's own text, which copies only by chance), the share of the samples' text inside
    copied spans, and the longest span."""
    from ..config import SampleConfig

    data = Path(m.config.get("data_dir") or "")
    if not (data / "train.bin").is_file():
        from ..errors import WordGPTError

        raise WordGPTError(f"{data or 'the run'} has no train.bin to look for copies in")
    s = {**SAMPLES, **(samples or {})}
    n = copy_min_tokens or copy_min(m.tokenizer)
    index = CopyIndex.open(data, n, progress=True)
    found = total = chars = copied = 0
    longest: CopiedSpan | None = None
    for seed in range(1, s["n"] + 1):
        ids: list[int] = []
        cfg = SampleConfig(s["tokens"], s["temperature"], s["top_k"], seed=seed)
        "".join(m.stream("", cfg, ids))
        f, t = index.share(np.asarray(ids, dtype=np.int64))
        found, total = found + f, total + t
        c = find_copies(m.tokenizer, data, ids, n)
        chars, copied = chars + c.chars, copied + sum(x.end - x.start for x in c.spans)
        if c.longest is not None and (longest is None or c.longest.tokens > longest.tokens):
            longest = c.longest
    return {
        "samples": s["n"],
        "tokens_each": s["tokens"],
        "n": n,
        "sample_ngrams_in_train": found / max(total, 1),
        "val_ngrams_in_train": split_share(data, "val", n),
        "sample_text_copied": copied / max(chars, 1),
        "longest": asdict(longest) if longest else None,
    }


def describe_figures(f: dict) -> str:
    top = f["longest"]
    longest = f"{top['tokens']} tokens, at {top['where']}" if top else "none"
    return (
        f"copies over {f['samples']} seeded samples of {f['tokens_each']} tokens: "
        f"{f['sample_ngrams_in_train']:.1%} of their {f['n']}-grams stand in the training "
        f"text (the val split's own text: {f['val_ngrams_in_train']:.1%}); "
        f"{f['sample_text_copied']:.1%} of their text is in copied spans; longest: {longest}"
    )
