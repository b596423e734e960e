"""The whole corpus in memory, the plain way: the reference that the streamed, parallel
``prepare`` is tested against (its token files must equal these ids)."""

from __future__ import annotations

from ..config import DataConfig
from .clean_pass import CHUNK, every_k
from .cleaning import chunks, clean, split_text
from .tokenizer import BPETokenizer, Normalizer, train_tokenizer


def reference_ids(
    cfg: DataConfig,
    texts: list[str],
    kind: str = "text",
    start: str | None = None,
    tokenizer_from=None,
):
    """The whole corpus in memory, the plain way: (tokenizer, train ids, val ids, chars).

    ``texts`` are the sources' decoded texts (plain files), or the articles as
    ``(title, text)`` pairs (dumps). The streamed token files must equal these ids."""
    if kind == "wikipedia":
        k = every_k(cfg.val_fraction)
        parts = {"train": [], "val": []}
        for n, (title, text) in enumerate(texts):
            parts["val" if n % k == k - 1 else "train"].append(f"{title}\n\n{text}")
        pieces = {s: [clean("\n\n".join(p) + "\n", cfg)] for s, p in parts.items()}
    else:
        pieces = {"train": [], "val": []}
        for text in texts:
            tr, va = split_text(clean(text, cfg, start), cfg.val_fraction)
            pieces["train"].append(tr)
            pieces["val"].append(va)
    if tokenizer_from is not None:
        tok = tokenizer_from
    elif cfg.tokenizer == "bpe":
        train_chunks = [c for p in pieces["train"] for c in chunks([p], CHUNK, lowercase=False)]
        tok = BPETokenizer.train(iter(train_chunks), cfg.vocab_size, Normalizer.of(cfg))
    else:
        tok = train_tokenizer(
            cfg.tokenizer,
            pieces["train"],  # the vocabulary knows nothing of the val split
            space_prefix=cfg.space_prefix,
            min_count=cfg.min_count,
            max_vocab=cfg.max_vocab,
            normalizer=Normalizer.of(cfg),
        )
    ids = {s: [i for p in pieces[s] for i in tok.encode(p)] for s in pieces}
    chars = {s: sum(map(len, pieces[s])) for s in pieces}
    return tok, ids["train"], ids["val"], chars
