"""Word2Vec (gensim) trained on a prepared corpus, on the GPT's own tokens.

Word2Vec learns from the same tokens as the GPT's tokenizer (read back from the token
files), cut into sentences after ``.``, ``?`` and ``!``; whitespace tokens are left out of
the sentences (they would only halve the effective window), so every other vocabulary token
gets a vector.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import Word2VecConfig
from ..corpus.tokenfiles import load_split, load_tokenizer
from ..errors import DataError

SENTENCE_END = {".", "?", "!"}

WORDS_SEEN = 12_000_000
"""What unset epochs aim for: words seen in all passes together."""


def word2vec_epochs(cfg: Word2VecConfig, words: int) -> int:
    """The number of passes: as set, or enough for WORDS_SEEN, from 5 to 30."""
    if cfg.epochs is not None:
        return cfg.epochs
    return int(min(30, max(5, round(WORDS_SEEN / max(words, 1)))))


def corpus_sentences(data_dir: str | Path, split: str = "train") -> list[list[str]]:
    """The prepared corpus as sentences of token strings (whitespace tokens left out)."""
    tok = load_tokenizer(data_dir)
    strings = np.array(tok.token_strings(), dtype=object)
    ids = [
        np.asarray(load_split(data_dir, s))
        for s in (["train", "val"] if split == "all" else ["train"])
    ]
    tokens = strings[np.concatenate(ids)]
    sentences, current = [], []
    for t in tokens:
        if t.isspace():
            continue
        current.append(t)
        if t.strip() in SENTENCE_END:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def train_word2vec(data_dir: str | Path, cfg: Word2VecConfig | None = None, progress=False):
    """Train Word2Vec on a prepared corpus; returns gensim ``KeyedVectors``, most frequent
    word first, with counts. ``progress``: a bar of epochs on a terminal."""
    from gensim.models import Word2Vec

    cfg = cfg or Word2VecConfig()
    sentences = corpus_sentences(data_dir, cfg.split)
    if not sentences:
        raise DataError(f"{data_dir} has no text to learn word vectors from")
    kw = asdict(cfg)
    kw.pop("split")
    kw["workers"] = cfg.workers or len(os.sched_getaffinity(0))
    kw["epochs"] = word2vec_epochs(cfg, sum(map(len, sentences)))
    with EpochBar(kw["epochs"], progress) as bar:
        model = Word2Vec(sentences=sentences, callbacks=[bar], **kw)
    model.wv.epochs_trained = kw["epochs"]
    return model.wv


class EpochBar:
    """A gensim callback that moves a tqdm bar at the end of each epoch."""

    def __init__(self, epochs: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=epochs,
            desc="word2vec",
            unit="epoch",
            disable=None if enabled else True,
            leave=False,
        )

    def on_epoch_end(self, model) -> None:
        self.bar.update(1)

    def on_train_begin(self, model) -> None:
        pass

    def on_train_end(self, model) -> None:
        pass

    def on_epoch_begin(self, model) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()
