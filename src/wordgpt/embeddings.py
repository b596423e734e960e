"""Word vectors: Word2Vec training (gensim), neighbours, t-SNE maps, pretrained vectors,
and their alignment with a GPT vocabulary to initialise the token embedding.

Word2Vec learns from the same tokens as the GPT's tokenizer (read back from the token
files), cut into sentences after ``.``, ``?`` and ``!``; whitespace tokens are left out of
the sentences (they would only halve the effective window), so every other vocabulary token
gets a vector.
"""

from __future__ import annotations

import difflib
import itertools
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import tokenizers
from .config import Word2VecConfig, word2vec_epochs
from .data import load_split, open_file
from .errors import DataError, WordGPTError

SENTENCE_END = {".", "?", "!"}
EMBED_STD = 0.02  # the GPT's own init scale; loaded vectors are rescaled to it


def corpus_sentences(data_dir: str | Path, split: str = "train") -> list[list[str]]:
    """The prepared corpus as sentences of token strings (whitespace tokens left out)."""
    tok = tokenizers.load(Path(data_dir) / "tokenizer.json")
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


def train_word2vec(data_dir: str | Path, cfg: Word2VecConfig | None = None):
    """Train Word2Vec on a prepared corpus; returns gensim ``KeyedVectors``, most frequent
    word first, with counts."""
    from gensim.models import Word2Vec

    cfg = cfg or Word2VecConfig()
    sentences = corpus_sentences(data_dir, cfg.split)
    if not sentences:
        raise DataError(f"{data_dir} has no text to learn word vectors from")
    kw = asdict(cfg)
    kw.pop("split")
    kw["workers"] = cfg.workers or len(os.sched_getaffinity(0))
    kw["epochs"] = word2vec_epochs(cfg, sum(map(len, sentences)))
    model = Word2Vec(sentences=sentences, **kw)
    model.wv.epochs_trained = kw["epochs"]
    return model.wv


# ------------------------------------------------------------------------- files


def save_vectors(kv, path: str | Path, fmt: str = "kv") -> None:
    """``kv``: gensim's own format (keeps counts); ``word2vec-bin`` / ``word2vec-txt``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "kv":
        kv.save(str(path))
    elif fmt in ("word2vec-bin", "word2vec-txt"):
        kv.save_word2vec_format(str(path), binary=fmt == "word2vec-bin")
    else:
        raise WordGPTError(f"unknown vector format {fmt!r}; use kv, word2vec-bin or word2vec-txt")


def iter_text_vectors(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """Stream ``(word, vector)`` from a text file: word2vec text (a ``count dim`` header),
    Wikipedia2Vec text (its ``ENTITY/`` rows skipped), or GloVe (no header)."""
    path = Path(path)
    with open_file(path, "rt", encoding="utf-8", errors="replace") as f:
        first = f.readline()
        head = first.split()
        dim = None
        if len(head) == 2 and head[0].isdigit() and head[1].isdigit():
            dim = int(head[1])
            lines = f
        else:
            lines = itertools.chain([first], f)
        for line in lines:
            line = line.rstrip("\n").rstrip()
            if not line:
                continue
            if dim is None:
                dim = len(line.split(" ")) - 1
            parts = line.rsplit(" ", dim)  # a word may itself contain spaces
            if len(parts) != dim + 1:
                continue
            word = parts[0]
            if word.startswith("ENTITY/"):
                continue
            try:
                yield word, np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                continue


def load_vectors(path: str | Path, limit: int | None = None):
    """Load word vectors as gensim ``KeyedVectors``: gensim ``.kv``, word2vec binary
    (``.bin``, ``.bin.gz``), or text (word2vec, Wikipedia2Vec, GloVe; ``.txt``, ``.vec``,
    ``.bz2``, ``.gz``). ``limit`` caps how many vectors are read (the files are large)."""
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no vector file at {path}")
    name = path.name.lower()
    try:
        if name.endswith(".kv"):
            kv = KeyedVectors.load(str(path))
            if limit is not None and limit < len(kv):
                small = KeyedVectors(kv.vector_size)
                small.add_vectors(kv.index_to_key[:limit], kv.vectors[:limit])
                kv = small
            return kv
        if name.endswith((".bin", ".bin.gz", ".bin.bz2")):
            return KeyedVectors.load_word2vec_format(
                str(path), binary=True, limit=limit, unicode_errors="replace"
            )
        words, vecs = [], []
        for word, vec in iter_text_vectors(path):
            words.append(word)
            vecs.append(vec)
            if limit is not None and len(words) >= limit:
                break
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read word vectors from {path}: {e}") from None
    if not words:
        raise DataError(f"{path} has no word vectors")
    kv = KeyedVectors(len(vecs[0]))
    kv.add_vectors(words, np.stack(vecs))
    return kv


# ------------------------------------------------------------------------- queries


def find_key(kv, word: str) -> str:
    """The key of ``word`` in ``kv``: as given, or with the space that space-prefixed word
    tokens carry (' knight'); else one clear error with close spellings."""
    for key in (word, " " + word):
        if key in kv.key_to_index:
            return key
    close = difflib.get_close_matches(word, kv.index_to_key[:50_000], n=5)
    hint = f"; close spellings: {', '.join(close)}" if close else ""
    raise WordGPTError(f"{word!r} is not in the vectors' vocabulary{hint}")


def neighbors(kv, query: str, n: int = 10) -> list[tuple[str, float]]:
    """Nearest words by cosine similarity. ``query`` is a word or an analogy such as
    ``king - man + woman``."""
    pos, neg, sign = [], [], +1
    for part in query.replace("+", " + ").replace(" - ", " - ").split():
        if part in "+-":
            sign = +1 if part == "+" else -1
            continue
        (pos if sign > 0 else neg).append(find_key(kv, part))
        sign = +1
    if not pos and not neg:
        raise WordGPTError("give a word, or an analogy such as 'king - man + woman'")
    return kv.most_similar(positive=pos, negative=neg, topn=n)


def tsne_2d(vectors: np.ndarray, seed: int = 0, method: str = "opentsne") -> np.ndarray:
    """2-D t-SNE of ``vectors`` (n, d) with cosine distances: ``opentsne`` (the default:
    5.7 s against scikit-learn's 8.0 s for 2,500 x 500 on 2 cores) or ``sklearn``."""
    X = np.asarray(vectors, dtype=np.float32)
    perplexity = float(min(30, max(2, (len(X) - 1) // 3)))
    if method == "opentsne":
        from openTSNE import TSNE

        return np.asarray(
            TSNE(perplexity=perplexity, metric="cosine", random_state=seed, n_jobs=-1).fit(X)
        )
    from sklearn.manifold import TSNE

    return TSNE(
        n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed
    ).fit_transform(X)


def plot_tsne(
    kv,
    out_png: str | Path,
    n_words: int = 2500,
    n_labels: int = 100,
    size: tuple[int, int] = (1200, 1200),
    html: str | Path | None = None,
    method: str = "opentsne",
    skip_punct: bool = True,
) -> np.ndarray:
    """Draw the ``n_words`` most frequent words' t-SNE map, the ``n_labels`` most frequent
    labelled; optionally an interactive HTML page (plotly) where hovering shows the word."""
    from .plots import word_map

    words = [w for w in kv.index_to_key if not skip_punct or any(c.isalnum() for c in w)]
    words = words[:n_words]
    if len(words) < 5:
        raise WordGPTError("need at least 5 words for a t-SNE map")
    points = tsne_2d(kv[words], method=method)
    word_map(
        points,
        [w.strip() for w in words],
        out_png,
        n_labels,
        size,
        title=f"t-SNE of the {len(words):,} most frequent words",
    )
    if html is not None:
        import plotly.graph_objects as go

        fig = go.Figure(
            go.Scattergl(
                x=points[:, 0],
                y=points[:, 1],
                mode="markers",
                text=words,
                hoverinfo="text",
                marker={"size": 4},
            )
        )
        fig.update_layout(title="word vectors (t-SNE)", width=size[0], height=size[1])
        fig.write_html(str(html), include_plotlyjs=True)
    return points


# ------------------------------------------------------------------------- quality

GENSIM_TEST_DATA = "test/test_data"
BENCHMARKS = {
    "wordsim353": "wordsim353.tsv",
    "simlex999": "simlex999.txt",
    "analogies": "questions-words.txt",
}
COLLAPSE_COSINE = 0.35
"""Mean cosine of frequent words above which vectors look collapsed (barely trained)."""


def benchmark_path(name: str) -> Path:
    """gensim's own copy of a word-vector benchmark (it ships in gensim's wheel)."""
    import gensim

    return Path(gensim.__file__).parent / GENSIM_TEST_DATA / BENCHMARKS[name]


@dataclass(frozen=True)
class VectorScores:
    """Intrinsic measures of word vectors, each with the share of the test it covers."""

    wordsim353: float
    """Spearman correlation with human similarity judgements (WordSim353)."""
    wordsim353_coverage: float
    simlex999: float
    """Spearman correlation on SimLex-999 (similarity, not relatedness)."""
    simlex999_coverage: float
    analogies: float
    """Accuracy on the Google analogy questions (3CosAdd) that the vocabulary covers."""
    analogies_coverage: float
    mean_cosine: float
    """Mean pairwise cosine of the words ranked 50-550: near 1 means collapsed vectors."""

    @property
    def collapsed(self) -> bool:
        return self.mean_cosine > COLLAPSE_COSINE

    def to_dict(self) -> dict:
        return {**asdict(self), "collapsed": self.collapsed}

    def __str__(self) -> str:
        def f(v, c):
            return f"{v:.3f} ({c:.0%} covered)" if c > 0 else "n/a (0% covered)"

        lines = [
            f"WordSim353 Spearman  {f(self.wordsim353, self.wordsim353_coverage)}",
            f"SimLex-999 Spearman  {f(self.simlex999, self.simlex999_coverage)}",
            f"Google analogies     {f(self.analogies, self.analogies_coverage)}",
            f"mean cosine, words ranked 50-550  {self.mean_cosine:.3f}",
        ]
        if self.collapsed:
            lines.append(
                f"warning: the vectors look collapsed (mean cosine above {COLLAPSE_COSINE}): "
                "train longer or with fewer dimensions"
            )
        return "\n".join(lines)


def word_view(kv):
    """The vectors of words, keyed lowercase without an attached space (the first, most
    frequent spelling kept), so that benchmarks written in plain words find them."""
    from gensim.models import KeyedVectors

    seen, keys, rows = set(), [], []
    for i, key in enumerate(kv.index_to_key):
        k = key.strip().lower()
        if k and k not in seen and any(c.isalnum() for c in k):
            seen.add(k)
            keys.append(k)
            rows.append(i)
    view = KeyedVectors(kv.vector_size)
    if keys:
        view.add_vectors(keys, kv.vectors[rows])
    return view


def mean_cosine(kv, first: int = 50, last: int = 550) -> float:
    """Mean cosine over all pairs of the words ranked ``first`` to ``last``."""
    v = kv.vectors[first:last].astype(np.float64)
    if len(v) < 2:
        v = kv.vectors[: last - first].astype(np.float64)
    if len(v) < 2:
        return float("nan")
    v /= np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)
    sims = v @ v.T
    n = len(v)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def evaluate_vectors(kv, files: dict[str, Path] | None = None) -> VectorScores:
    """WordSim353 and SimLex-999 Spearman correlations, Google analogy accuracy (gensim's
    evaluators and gensim's copies of the files), each with its coverage, and the collapse
    measure. ``files`` replaces any benchmark file (for tests)."""
    import logging
    import warnings

    files = {name: benchmark_path(name) for name in BENCHMARKS} | (files or {})
    view = word_view(kv)
    out = {}
    log = logging.getLogger("gensim")
    level = log.level
    log.setLevel(logging.ERROR)  # gensim logs every question it skips
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant correlation inputs, empty overlaps
            for name in ("wordsim353", "simlex999"):
                try:
                    _, rho, oov = view.evaluate_word_pairs(str(files[name]), case_insensitive=True)
                except ValueError:  # gensim: not one pair is in the vocabulary
                    rho, oov = (float("nan"),), 100.0
                out[name] = float(rho[0]) if oov < 100 else float("nan")
                out[f"{name}_coverage"] = 1.0 - oov / 100
            score, sections = view.evaluate_word_analogies(
                str(files["analogies"]), case_insensitive=True
            )
    finally:
        log.setLevel(level)
    lines = Path(files["analogies"]).read_text(encoding="utf-8").splitlines()
    total = sum(1 for line in lines if line.strip() and not line.startswith(":"))
    covered = sum(
        len(s["correct"]) + len(s["incorrect"])
        for s in sections
        if s["section"] == "Total accuracy"
    )
    out["analogies"] = float(score) if covered else float("nan")
    out["analogies_coverage"] = covered / max(total, 1)
    return VectorScores(**out, mean_cosine=mean_cosine(view))


# ------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class Coverage:
    tokens: float
    """Fraction of vocabulary entries that found a vector."""
    weighted: float
    """Fraction of corpus tokens (by frequency) whose vocabulary entry found a vector."""
    exact: int
    lowercase: int
    missing_top: list[str]
    """The most frequent tokens without a vector."""

    def __str__(self) -> str:
        miss = ", ".join(repr(t) for t in self.missing_top[:10])
        return (
            f"coverage: {self.tokens:.1%} of the vocabulary ({self.exact:,} exact, "
            f"{self.lowercase:,} by lowercase), {self.weighted:.1%} of the corpus tokens; "
            f"most frequent missing: {miss}"
        )


def align(kv, vocab: list[str], counts: np.ndarray | None = None):
    """Rows of ``kv`` for each vocabulary token: exact match (the token as it is, then
    without an attached space), then lowercase. Returns (rows (V,) with -1 where missing,
    Coverage)."""
    rows = np.full(len(vocab), -1, dtype=np.int64)
    exact = lower = 0
    index = kv.key_to_index
    for i, token in enumerate(vocab):
        key = token.strip() or token
        if (j := index.get(token, index.get(key))) is not None:
            rows[i] = j
            exact += 1
        elif key.lower() in index:
            rows[i] = index[key.lower()]
            lower += 1
    counts = np.ones(len(vocab)) if counts is None else np.asarray(counts, dtype=np.float64)
    found = rows >= 0
    missing = np.where(~found)[0]
    missing = missing[np.argsort(-counts[missing], kind="stable")]
    cov = Coverage(
        float(found.mean()),
        float(counts[found].sum() / max(counts.sum(), 1)),
        exact,
        lower,
        [vocab[i] for i in missing[:20]],
    )
    return rows, cov


def embedding_matrix(
    path,
    tok,
    n_embd: int,
    fit: str = "pca",
    limit: int | None = None,
    seed: int = 0,
    counts: np.ndarray | None = None,
    log=print,
):
    """A (V, n_embd) float32 matrix for a GPT's token embedding from the vectors at ``path``.

    Found rows take their vector; missing rows get random directions with the loaded
    vectors' mean norm. Vectors of another width are reduced by PCA (``fit="pca"``; a
    narrower set is zero-padded), or kept as they are (``fit="model"``: the model's width
    follows them). The whole matrix is then scaled to std 0.02, the GPT's own init scale,
    which keeps every cosine similarity. Returns (matrix, provenance dict).
    """
    kv = load_vectors(path, limit)
    vocab = tok.token_strings()
    rows, cov = align(kv, vocab, counts)
    log(f"vectors: {len(kv):,} x {kv.vector_size} from {path}; {cov}")
    found = rows >= 0
    if not found.any():
        raise WordGPTError(f"none of the vocabulary's tokens has a vector in {path}")
    # only the vectors the vocabulary uses: a pretrained file may hold millions
    used, where = np.unique(rows[found], return_inverse=True)
    vecs = kv.vectors[used].astype(np.float32)
    dim = vecs.shape[1]
    target = dim if fit == "model" else n_embd
    if dim > target:
        from sklearn.decomposition import PCA

        vecs = PCA(n_components=target, random_state=seed).fit(vecs).transform(vecs)
    elif dim < target:
        vecs = np.pad(vecs, ((0, 0), (0, target - dim)))
    matrix = np.empty((len(vocab), target), dtype=np.float32)
    matrix[found] = vecs[where]
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(((~found).sum(), target)).astype(np.float32)
    norm = np.linalg.norm(matrix[found], axis=1).mean()
    matrix[~found] = noise / np.linalg.norm(noise, axis=1, keepdims=True).clip(1e-8) * norm
    matrix *= EMBED_STD / matrix.std()
    info = {
        "path": str(Path(path).resolve()),
        "vectors_read": len(kv),
        "dim": dim,
        "fit": fit,
        "width": target,
        "coverage_tokens": cov.tokens,
        "coverage_weighted": cov.weighted,
        "missing_top": cov.missing_top,
    }
    return matrix, info


def data_coverage(path, data_dir, limit: int | None = None) -> Coverage:
    """How much of a prepared corpus's vocabulary the vectors at ``path`` cover."""
    train = np.asarray(load_split(data_dir, "train"))  # a clear error if not prepared
    tok = tokenizers.load(Path(data_dir) / "tokenizer.json")
    counts = np.bincount(train, minlength=tok.vocab_size)
    return align(load_vectors(path, limit), tok.token_strings(), counts)[1]
