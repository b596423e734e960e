"""Words of a run to look at: its GPT's own token embeddings (every run has them) or the word
vectors kept in its folder, as vectors to query and a map to draw."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import WordGPTError
from ..vectors.files import keyed_vectors, load_vectors
from ..vectors.queries import neighbors
from ..vectors.tsne import WordMap, word_map
from .loaded import Model


def embedding_vectors(m: Model):
    """The GPT's token embeddings as word vectors: one per token that holds a letter or a
    digit (not <unk>, not whitespace or punctuation), most frequent first."""
    strings = m.tokenizer.token_strings()
    keep = [i for i, t in enumerate(strings) if i > 0 and any(c.isalnum() for c in t)]
    if len(keep) < 5:
        raise WordGPTError("this run's vocabulary has too few words to map")
    weights = m.gpt.wte.weight.detach().float().cpu().numpy()
    return keyed_vectors([strings[i] for i in keep], weights[keep].astype(np.float32))


@dataclass
class Words:
    """Vectors of a run's words, and their map, computed once (t-SNE takes seconds)."""

    kv: object
    source: str
    normalize: Callable[[str], str] = str
    """The cleaning of the run's text (lowercasing...), applied to a word asked for."""
    n_words: int = 1500
    _map: WordMap | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def map(self, query: str = "", n: int = 8) -> dict:
        """The map as JSON, with ``query`` and those of its ``n`` nearest words that are on
        it marked (a word not in the vocabulary is refused before the map is computed)."""
        query = self.normalize(query)
        if query.strip():
            neighbors(self.kv, query, n)
        with self._lock:
            if self._map is None:
                self._map = word_map(self.kv, self.n_words)
        return {"source": self.source, **self._map.to_json(self.kv, query, n)}


def query_cleaning(tok) -> Callable[[str], str]:
    """What a word asked for goes through: the run's cleaning, and lowercase when its
    tokenizer writes capitals as marks (its words are lowercase)."""
    clean = tok.normalizer
    return (lambda q: clean(q).lower()) if tok.marks else clean


def run_words(m: Model, source: str, run_dir: Path, vectors: Path | None) -> Words:
    """A run's words from ``source``: ``model`` (its token embeddings) or ``vectors`` (the
    ``.npz`` word vectors in its folder; never a pickle)."""
    clean = query_cleaning(m.tokenizer)
    if source == "model":
        return Words(embedding_vectors(m), "model", clean)
    if vectors is None:
        raise WordGPTError(
            f"{run_dir.name} keeps no word vectors (.npz) in its folder; use its own token "
            "embeddings, or save vectors there with `wordgpt embed train --out RUN/vectors.npz`"
        )
    return Words(load_vectors(vectors, trust_pickle=False), "vectors", clean)
