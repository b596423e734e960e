"""``wordgpt embed``: Word2Vec vectors trained, measured, queried, mapped, and their
coverage of a vocabulary. Vector files are read safely: ``.npz``, word2vec and GloVe hold no
code; a gensim ``.kv`` (a pickle) only with ``--trust-pickle``."""

from __future__ import annotations

import dataclasses
import time

import click

from ..config import Word2VecConfig
from ..errors import WordGPTError
from .flags import DATA, OUT_FILE, VECTORS, config_options, json_line, json_option
from .flags import trust_pickle_option as trust

limit_option = click.option(
    "--limit", type=click.IntRange(1), default=None, help="read at most this many vectors"
)


@click.group()
def embed() -> None:
    """Word2Vec embeddings: train, query neighbours, draw a t-SNE map, check coverage."""


@embed.command("train")
@click.option("--data", "data_dir", type=DATA, required=True, help="a folder written by prepare")
@click.option(
    "--out", type=OUT_FILE, required=True, help="vector file: .npz (wordgpt's own), .kv, .bin, .txt"
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["npz", "kv", "word2vec-bin", "word2vec-txt"]),
    default=None,
    help="[default: from --out's ending] npz: wordgpt's own (no code inside, keeps counts); "
    "kv: gensim's pickle",
)
@click.option(
    "--notebook",
    is_flag=True,
    help="the original notebook's exact settings (500 dims, 5 epochs, min_count 1, window 5, "
    "skip-gram); the other flags are ignored",
)
@config_options(Word2VecConfig)
def embed_train(data_dir, out, fmt, notebook, **kw) -> None:
    """Word2Vec (gensim) on a prepared corpus, sentences cut at . ? !; then its measures."""
    from ..presets import NOTEBOOK_WORD2VEC
    from ..vectors.files import save_vectors
    from ..vectors.quality import evaluate_vectors
    from ..vectors.queries import neighbors
    from ..vectors.word2vec import train_word2vec

    cfg = (
        dataclasses.replace(NOTEBOOK_WORD2VEC, workers=kw["workers"])
        if notebook
        else Word2VecConfig(**kw)
    )
    t = time.perf_counter()
    kv = train_word2vec(data_dir, cfg, progress=True)
    save_vectors(kv, out, fmt)
    click.echo(
        f"{len(kv):,} words x {kv.vector_size} dims, {kv.epochs_trained} epochs in "
        f"{time.perf_counter() - t:.1f}s -> {out}"
    )
    probe = next(
        (w for w in ("food", "knight", "the") if {w, " " + w} & set(kv.key_to_index)), None
    )
    if probe:
        near = ", ".join(f"{w.strip()} {s:.2f}" for w, s in neighbors(kv, probe, 5))
        click.echo(f"nearest to {probe!r}: {near}")
    click.echo(str(evaluate_vectors(kv)))


@embed.command("evaluate")
@click.argument("vectors", type=VECTORS)
@limit_option
@trust
@json_option
def embed_evaluate(vectors, limit, trust_pickle, as_json) -> None:
    """WordSim353, SimLex-999 and Google analogies (gensim's copies), with coverage, and a
    collapse warning."""
    from ..vectors.files import load_vectors
    from ..vectors.quality import evaluate_vectors

    scores = evaluate_vectors(load_vectors(vectors, limit, trust_pickle))
    if as_json:
        click.echo(json_line({"vectors": str(vectors), **scores.to_dict()}))
    else:
        click.echo(str(scores))


@embed.command("neighbors")
@click.argument("vectors", type=VECTORS)
@click.argument("query")
@click.option(
    "-n", "n", type=click.IntRange(1), default=10, show_default=True, help="how many words"
)
@limit_option
@trust
def embed_neighbors(vectors, query, n, limit, trust_pickle) -> None:
    """Nearest words to QUERY: a word, or an analogy such as 'king - man + woman'."""
    from ..vectors.files import load_vectors
    from ..vectors.queries import neighbors

    for word, sim in neighbors(load_vectors(vectors, limit, trust_pickle), query, n):
        click.echo(f"{sim:7.4f}  {word.strip() or repr(word)}")


@embed.command("plot")
@click.argument("vectors", type=VECTORS)
@click.option("--out", type=OUT_FILE, default="tsne.png", show_default=True, help="the PNG")
@click.option(
    "--words", "n_words", type=click.IntRange(5), default=2500, show_default=True,
    help="map the N most frequent words",
)  # fmt: skip
@click.option(
    "--label", "n_labels", type=click.IntRange(0), default=100, show_default=True,
    help="label up to K of them: frequent content words, spread out (never stop-words)",
)  # fmt: skip
@click.option("--query", default="", help="mark this word and its nearest neighbours")
@click.option("--size", default="1200x1200", show_default=True, help="picture size in pixels, WxH")
@click.option(
    "--html",
    type=OUT_FILE,
    default=None,
    help="also an interactive page (plotly): hover shows the word",
)
@click.option(
    "--method",
    type=click.Choice(["opentsne", "sklearn"]),
    default="opentsne",
    show_default=True,
    help="t-SNE implementation (openTSNE is the faster here)",
)
@limit_option
@trust
def embed_plot(vectors, out, n_words, n_labels, query, size, html, method, limit, trust_pickle):
    """A t-SNE map of the most frequent words, coloured by cluster."""
    from ..vectors.files import load_vectors
    from ..vectors.tsne import plot_tsne

    w, h = picture_size(size)
    t = time.perf_counter()
    kv = load_vectors(vectors, limit, trust_pickle)
    click.echo(f"mapping {min(n_words, len(kv)):,} words (t-SNE takes some seconds)...", err=True)
    plot_tsne(kv, out, n_words, n_labels, (w, h), html, method, query=query, progress=True)
    click.echo(f"wrote {out}{f' and {html}' if html else ''} in {time.perf_counter() - t:.1f}s")


def picture_size(size: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size.lower().split("x"))
        if not (50 <= w <= 20000 and 50 <= h <= 20000):
            raise ValueError
    except ValueError:
        raise WordGPTError(
            f"--size must look like 1200x1200 (50 to 20000 each), got {size!r}"
        ) from None
    return w, h


@embed.command("coverage")
@click.argument("vectors", type=VECTORS)
@click.option("--data", "data_dir", type=DATA, required=True, help="a folder written by prepare")
@limit_option
@trust
def embed_coverage(vectors, data_dir, limit, trust_pickle) -> None:
    """How much of a prepared corpus's vocabulary the vectors cover."""
    from ..vectors.align import data_coverage

    click.echo(str(data_coverage(vectors, data_dir, limit, trust_pickle)))
