"""t-SNE maps of word vectors worth looking at: 2-D points (openTSNE or scikit-learn),
coloured by cluster (k-means on the vectors themselves), a readable set of labels (frequent
content words, never stop-words, never two on top of each other), and the word asked about
marked with its nearest neighbours. One :class:`WordMap` serves the PNG of ``embed plot``,
its interactive page (plotly), and the web page's map (as JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import WordGPTError
from ..figures import pyplot, save_png
from .queries import find_key, neighbors

CLUSTERS = 12
"""Colours on a map: k-means clusters of the words' vectors."""
LABEL_SPACING = 0.035
"""Two labels are at least this far apart, as a share of the map's width."""
PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79", "#637939",
]  # fmt: skip


def tsne_2d(
    vectors: np.ndarray, seed: int = 0, method: str = "opentsne", progress: bool = False
) -> np.ndarray:
    """2-D t-SNE of ``vectors`` (n, d) with cosine distances: ``opentsne`` (the default:
    5.7 s against scikit-learn's 8.0 s for 2,500 x 500 on 2 cores) or ``sklearn``; with
    ``progress``, a bar over openTSNE's optimisation steps."""
    X = np.asarray(vectors, dtype=np.float32)
    perplexity = float(min(30, max(2, (len(X) - 1) // 3)))
    if method == "opentsne":
        from openTSNE import TSNE
        from tqdm.auto import tqdm

        early, late, every = 250, 500, 25  # openTSNE's two phases, and a bar step
        with tqdm(total=early + late, desc="t-SNE", unit="step", disable=not progress) as bar:

            def step(*_) -> bool:
                bar.update(every)
                return False  # True would stop openTSNE's optimisation

            tsne = TSNE(perplexity=perplexity, metric="cosine", random_state=seed, n_jobs=-1,
                        early_exaggeration_iter=early, n_iter=late, callbacks_every_iters=every,
                        callbacks=step)  # fmt: skip
            return np.asarray(tsne.fit(X))
    from sklearn.manifold import TSNE

    return TSNE(
        n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed
    ).fit_transform(X)


def is_content_word(word: str) -> bool:
    """A word worth a label: letters, three or more, not an English stop-word."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    w = word.strip().lower()
    return len(w) >= 3 and w.isalpha() and w not in ENGLISH_STOP_WORDS


def choose_labels(points: np.ndarray, words: list[str], n: int) -> list[int]:
    """Up to ``n`` words to label, most frequent first: content words only, each at least
    LABEL_SPACING of the map's width from every label already chosen."""
    span = np.ptp(points, axis=0).max() or 1.0
    xy = (points - points.min(axis=0)) / span
    chosen: list[int] = []
    for i, w in enumerate(words):
        if len(chosen) >= n:
            break
        if not is_content_word(w):
            continue
        if chosen and np.min(np.linalg.norm(xy[chosen] - xy[i], axis=1)) < LABEL_SPACING:
            continue
        chosen.append(i)
    return chosen


def clusters(vectors: np.ndarray, k: int = CLUSTERS, seed: int = 0) -> np.ndarray:
    """A cluster number per word: k-means on the normalised vectors (cosine geometry)."""
    from sklearn.cluster import KMeans

    X = np.asarray(vectors, dtype=np.float64)
    X = X / np.linalg.norm(X, axis=1, keepdims=True).clip(1e-12)
    k = max(1, min(k, len(X)))
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(X)


@dataclass
class WordMap:
    """The map of a set of words: keys (as in the vectors), words (as shown), 2-D points,
    a cluster per word, and the words chosen for labels."""

    keys: list[str]
    words: list[str]
    points: np.ndarray
    cluster: np.ndarray
    labels: list[int]

    def marked(self, kv, query: str, n: int = 8) -> tuple[int | None, list[int]]:
        """The map's index of ``query`` (None if it is not on the map, or an analogy) and of
        those of its ``n`` nearest words that are on it: the words a list of ``n`` neighbours
        shows (:func:`.queries.neighbors`), never others; an unknown word is one clear
        error."""
        near_words = neighbors(kv, query, n)
        index = {k: i for i, k in enumerate(self.keys)}
        try:
            key = find_key(kv, query.strip())
        except WordGPTError:  # an analogy: no one word to mark
            key = None
        return index.get(key), [index[w] for w, _ in near_words if w in index]

    def to_json(self, kv=None, query: str = "", n: int = 8) -> dict:
        q, near = self.marked(kv, query, n) if query.strip() else (None, [])
        return {
            "words": self.words,
            "points": np.round(self.points, 3).tolist(),
            "clusters": self.cluster.tolist(),
            "labels": self.labels,
            "query": q,
            "neighbors": near,
        }


def word_map(
    kv, n_words: int = 1500, n_labels: int = 60, seed: int = 0, method="opentsne", progress=False
):
    """The t-SNE map of the ``n_words`` most frequent word-like keys of ``kv``."""
    keys = [k for k in kv.index_to_key if any(c.isalnum() for c in k)][:n_words]
    if len(keys) < 5:
        raise WordGPTError("need at least 5 words for a t-SNE map")
    vectors = kv[keys]
    points = tsne_2d(vectors, seed=seed, method=method, progress=progress)
    words = [k.strip() or k for k in keys]
    return WordMap(
        keys, words, points, clusters(vectors, seed=seed), choose_labels(points, words, n_labels)
    )


def plot_tsne(
    kv,
    out_png: str | Path,
    n_words: int = 2500,
    n_labels: int = 100,
    size: tuple[int, int] = (1200, 1200),
    html: str | Path | None = None,
    method: str = "opentsne",
    query: str = "",
    progress: bool = False,
) -> WordMap:
    """The map as a PNG (colours by cluster, readable labels, ``query`` and its neighbours
    marked), and optionally an interactive page (plotly) where hovering shows each word."""
    m = word_map(kv, n_words, n_labels, method=method, progress=progress)
    q, near = m.marked(kv, query) if query.strip() else (None, [])
    draw_png(m, out_png, size, q, near, f"t-SNE of the {len(m.words):,} most frequent words")
    if html is not None:
        import plotly.graph_objects as go

        colours = [PALETTE[c % len(PALETTE)] for c in m.cluster]
        fig = go.Figure(
            go.Scattergl(
                x=m.points[:, 0],
                y=m.points[:, 1],
                mode="markers",
                text=m.words,
                hoverinfo="text",
                marker={"size": 5, "color": colours},
            )
        )
        fig.update_layout(title="word vectors (t-SNE)", width=size[0], height=size[1])
        fig.write_html(str(html), include_plotlyjs=True)
    return m


def draw_png(m: WordMap, out_png, size, query: int | None, near: list[int], title: str) -> None:
    plt = pyplot()
    dpi = 100
    fig, ax = plt.subplots(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    colours = [PALETTE[c % len(PALETTE)] for c in m.cluster]
    ax.scatter(m.points[:, 0], m.points[:, 1], s=8, c=colours, alpha=0.5, linewidths=0)
    for i in m.labels:
        if i != query and i not in near:
            ax.annotate(
                m.words[i], m.points[i], fontsize=8, xytext=(2, 2), textcoords="offset points"
            )
    for i in near:
        ax.annotate(m.words[i], m.points[i], fontsize=9, color="#a0282d", xytext=(2, 2),
                    textcoords="offset points")  # fmt: skip
    if query is not None:
        ax.scatter(*m.points[query], s=160, facecolors="none", edgecolors="black", linewidths=2)
        ax.annotate(m.words[query], m.points[query], fontsize=12, weight="bold", xytext=(6, 6),
                    textcoords="offset points")  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    fig.tight_layout()
    save_png(fig, out_png, dpi)
