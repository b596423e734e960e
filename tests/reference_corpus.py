"""Plain references for the text stage, kept with the tests: the whole corpus in memory
(:func:`reference_ids`, which the streamed, parallel ``prepare`` must equal token for token),
and mwparserfromhell's full parse of wiki markup (:func:`article_text_parsed`, which the
fast regular-expression extractor is compared with)."""

from __future__ import annotations

import contextlib

from wordgpt.config import DataConfig
from wordgpt.corpus.clean_pass import CHUNK, every_k
from wordgpt.corpus.cleaning import chunks, clean, split_text
from wordgpt.corpus.tokenizer import (
    BPETokenizer,
    CharTokenizer,
    Normalizer,
    Tokenizer,
    WordTokenizer,
)
from wordgpt.corpus.wikipedia import (
    _DROP_LINK_PREFIXES,
    _DROP_TAGS,
    _TABLE,
    _finish,
    _subn_all,
)
from wordgpt.errors import WordGPTError


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
    marks = cfg.marks and not (cfg.lowercase and cfg.newlines_to_spaces)  # raw text is marked
    if tokenizer_from is not None:
        tok = tokenizer_from
    elif cfg.tokenizer == "bpe":
        train_chunks = [c for p in pieces["train"] for c in chunks([p], CHUNK, lowercase=False)]
        tok = BPETokenizer.train(iter(train_chunks), cfg.vocab_size, Normalizer.of(cfg),
                                 marks=marks)  # fmt: skip
    else:
        tok = train_tokenizer(
            cfg.tokenizer,
            pieces["train"],  # the vocabulary knows nothing of the val split
            space_prefix=cfg.space_prefix,
            min_count=cfg.min_count,
            max_vocab=cfg.max_vocab,
            normalizer=Normalizer.of(cfg),
            marks=marks,
        )
    ids = {s: [i for p in pieces[s] for i in tok.encode(p)] for s in pieces}
    chars = {s: sum(map(len, pieces[s])) for s in pieces}
    return tok, ids["train"], ids["val"], chars


def article_text_parsed(wikitext: str) -> str:
    """Plain prose of one article's wiki markup through mwparserfromhell (the reference)."""
    import mwparserfromhell as mw

    wikitext = _subn_all(_TABLE, "", wikitext)
    code = mw.parse(wikitext)
    for node in list(code.filter_tags(recursive=True)):
        if str(node.tag).strip().lower() in _DROP_TAGS:
            _remove(code, node)
    for node in list(code.filter_templates(recursive=False)):
        _remove(code, node)
    for node in list(code.filter_wikilinks(recursive=True)):
        if str(node.title).strip().lower().startswith(_DROP_LINK_PREFIXES):
            _remove(code, node)
    for node in list(code.filter_headings(recursive=False)):
        code.replace(node, "\n" + node.title.strip_code().strip() + "\n")
    return _finish(code.strip_code(normalize=True, collapse=True))


def _remove(code, node) -> None:
    with contextlib.suppress(ValueError):  # already gone with its parent
        code.remove(node)


def train_tokenizer(
    kind: str,
    text: str | list[str],
    *,
    space_prefix: bool = False,
    vocab_size: int = 4096,
    min_count: int = 1,
    max_vocab: int | None = None,
    normalizer: Normalizer | None = None,
    marks: bool = False,
) -> Tokenizer:
    """A tokenizer of ``kind`` trained on ``text`` in memory (prepare trains them streamed)."""
    if kind == "word":
        return WordTokenizer.train(
            text, min_count, max_vocab, normalizer, marks, space_prefix=space_prefix
        )
    if kind == "char":
        return CharTokenizer.train(text, min_count, max_vocab, normalizer, marks)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size, normalizer, marks)
    raise WordGPTError(f"unknown tokenizer {kind!r}; choose word, char or bpe")
