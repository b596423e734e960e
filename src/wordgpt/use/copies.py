"""Does a run write or copy? Over a fixed set of seeded samples (:data:`.generate.SHOWCASE`,
seeds 1 to n): the share of their n-grams that stand in the training text, beside the same
share for the val split (natural text of the same book: what chance alone copies), the share
of their text inside copied spans, and the longest span. ``eval --copies`` and the report
print these; the spans of one text are found by :func:`.generate.find_copies`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..corpus.copy_index import CopyIndex
from ..corpus.tokenfiles import load_split
from ..errors import WordGPTError
from ..model.sampling import SHOWCASE
from .generate import CopiedSpan, copy_min, find_copies, stream_text

SAMPLES, TOKENS = 10, 200
"""How many seeded samples ``eval --copies`` measures, and their length in tokens."""


def split_share(data_dir: Path, split: str, n: int, limit: int = 200_000) -> float:
    """The share of a split's n-grams (its first ``limit`` tokens) that stand in train.bin."""
    ids = np.asarray(load_split(data_dir, split, check_ids=False)[: limit + n - 1])
    found, total = CopyIndex.open(data_dir, n).share(ids)
    return found / max(total, 1)


def copy_figures(
    m, copy_min_tokens: int | None = None, samples: int = SAMPLES, tokens: int = TOKENS
) -> dict:
    """The figures of a loaded run ``m`` (see the module's docstring)."""
    data = m.data_dir  # checked: the data the run trained on
    if data is None:
        where = m.config.get("data_dir") or "the run's data folder"
        raise WordGPTError(f"{where} has no train.bin to look for copies in")
    n = copy_min_tokens or copy_min(m.tokenizer)
    index = CopyIndex.open(data, n, progress=True)
    found = total = chars = copied = 0
    longest: CopiedSpan | None = None
    for seed in range(1, samples + 1):
        ids: list[int] = []
        cfg = replace(SHOWCASE, max_new_tokens=tokens, seed=seed)
        "".join(stream_text(m.gpt, m.tokenizer, "", cfg, ids))
        f, t = index.share(np.asarray(ids, dtype=np.int64))
        found, total = found + f, total + t
        c = find_copies(m.tokenizer, data, ids, n)
        chars, copied = chars + c.chars, copied + sum(x.end - x.start for x in c.spans)
        if c.longest is not None and (longest is None or c.longest.tokens > longest.tokens):
            longest = c.longest
    return {
        "samples": samples,
        "tokens_each": tokens,
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
