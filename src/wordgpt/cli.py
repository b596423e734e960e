"""The ``wordgpt`` command. Thin: it parses flags and calls the same API a notebook uses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .config import PRESETS, DataConfig, SampleConfig
from .errors import WordGPTError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="wordgpt")
def cli() -> None:
    """Train small word-level GPTs on a book or a Wikipedia sample, and sample from them."""


@cli.command()
@click.option(
    "--dataset",
    default="don-quixote",
    help="don-quixote, wikipedia-sample, or a path (.txt, .bz2, .gz, wiki dump)",
)
@click.option("--tokenizer", type=click.Choice(["word", "char", "bpe"]), default="word")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="output folder [default: data/DATASET-TOKENIZER]",
)
@click.option(
    "--space-prefix/--no-space-prefix",
    default=False,
    help="word tokens carry the space before them (' the'): half as many tokens",
)
@click.option("--lowercase/--keep-case", default=True)
@click.option(
    "--newlines/--keep-newlines",
    "newlines_to_spaces",
    default=True,
    help="newlines to spaces, as the mission's notebook does",
)
@click.option("--collapse-spaces/--keep-spaces", default=True)
@click.option("--strip-gutenberg/--keep-gutenberg", default=True)
@click.option(
    "--skip-front-matter/--keep-front-matter",
    default=True,
    help="named books start at their first chapter",
)
@click.option("--encoding", default="utf-8")
@click.option("--val-fraction", type=float, default=0.1)
@click.option("--vocab-size", type=int, default=4096, help="bpe vocabulary size")
@click.option("--min-count", type=int, default=1, help="rarer word/char tokens become <unk>")
@click.option("--max-vocab", type=int, default=None, help="keep the most frequent tokens only")
def prepare(out, **kw) -> None:
    """Clean, split and tokenize a data set into train.bin, val.bin, tokenizer.json, meta.json."""
    from .data import prepare as run
    from .data import summary

    cfg = DataConfig(**kw)
    if out is None:
        name = Path(cfg.dataset).name.split(".")[0] if "/" in cfg.dataset else cfg.dataset
        out = Path("data") / f"{name}-{cfg.tokenizer}{'-sp' if cfg.space_prefix else ''}"
    click.echo(summary(run(cfg, out)))


@cli.command(context_settings={"show_default": True})
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="a folder written by `wordgpt prepare`",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="tiny",
    help="; ".join(f"{k}: {p.about}" for k, p in PRESETS.items()),
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="run folder [default: runs/DATA-PRESET]",
)
@click.option("--resume", is_flag=True, help="continue from OUT/last.pt")
@click.option("--max-iters", type=int)
@click.option("--time-budget", type=float, help="seconds of training")
@click.option("--batch-size", type=int)
@click.option("--grad-accum", type=int)
@click.option("--lr", type=float)
@click.option("--min-lr-ratio", type=float)
@click.option("--warmup-iters", type=int)
@click.option("--decay", type=click.Choice(["cosine", "wsd"]))
@click.option("--weight-decay", type=float)
@click.option("--grad-clip", type=float)
@click.option("--eval-interval", type=int)
@click.option("--eval-iters", type=int)
@click.option("--seed", type=int)
@click.option("--device", help="auto, cpu, cuda, cuda:1, mps")
@click.option("--dtype", type=click.Choice(["auto", "fp32", "bf16", "fp16"]))
@click.option("--compile/--no-compile", default=None)
@click.option("--n-layer", type=int)
@click.option("--n-head", type=int)
@click.option("--n-embd", type=int)
@click.option("--block-size", type=int)
@click.option("--dropout", type=float, help="on the embedding and residual branches")
@click.option("--attn-dropout", type=float, help="on attention weights (slower on CPU)")
@click.option("--norm", type=click.Choice(["pre", "post"]))
@click.option("--pos", type=click.Choice(["learned", "rope"]))
@click.option("--head", type=click.Choice(["softmax", "adaptive"]))
@click.option("--tie-weights/--no-tie-weights", default=None)
@click.option(
    "--init-embeddings",
    type=click.Path(path_type=Path),
    help="word vectors (gensim .kv, word2vec .bin/.txt, GloVe) for the token embedding",
)
@click.option("--embeddings-limit", type=int, help="read at most this many pretrained vectors")
@click.option(
    "--embeddings-fit",
    type=click.Choice(["pca", "model"]),
    help="vectors of another width: PCA to n_embd, or n_embd follows them",
)
@click.option("--freeze-embeddings", type=int, help="keep the token embedding fixed N steps")
@click.option("--progress/--no-progress", default=None)
def train(data_dir, preset, out, resume, **overrides) -> None:
    """Train a GPT on prepared token files; checkpoints, metrics.csv and loss.png go to OUT."""
    from .train import train as run

    if overrides.get("init_embeddings") is not None:
        overrides["init_embeddings"] = str(overrides["init_embeddings"])
    out = out or Path("runs") / f"{data_dir.name}-{preset}"
    r = run(data_dir, out, preset=preset, resume=resume, **overrides)
    click.echo(
        f"done: step {r.step} ({r.stopped}), {r.elapsed_s:.0f}s, {r.tokens_per_s:,.0f} tok/s, "
        f"best val loss {r.best_val:.4f} -> {r.run_dir}"
    )


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--prompt", default="", help="text to continue [default: a new sentence]")
@click.option("--max-new-tokens", type=int, default=200)
@click.option("--temperature", type=float, default=0.8, help="0 is greedy")
@click.option("--top-k", type=int, default=None)
@click.option("--top-p", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best")
@click.option("--device", default="auto")
@click.option("--no-cache", is_flag=True, help="re-run the whole context for every token")
def sample(run, prompt, which, device, no_cache, **kw) -> None:
    """Generate text from a trained run, streamed as it comes."""
    from .sample import load, print_stream

    cfg = SampleConfig(use_cache=not no_cache, **kw)
    m = load(run, which, device)
    unknown = m.tokenizer.unknown(prompt)
    if unknown:
        words = ", ".join(repr(w) for w, _ in unknown.most_common(10))
        click.echo(
            f"warning: {sum(unknown.values())} prompt token(s) not in the vocabulary, "
            f"read as <unk>: {words}",
            err=True,
        )
    if prompt:
        click.echo(prompt, nl=False)
    print_stream(m.stream(prompt, cfg))


@cli.command("eval")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["val", "train"]), default="val")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="token files [default: the run's own]",
)
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best")
@click.option("--device", default="auto")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def eval_(run, split, data_dir, which, device, as_json) -> None:
    """Loss, perplexity and bits per character over a whole split."""
    from .sample import load

    m = load(run, which, device)
    r = m.evaluate(split, data_dir)
    click.echo(json.dumps({"run": str(run), "step": m.step, **r.to_dict()}) if as_json else str(r))


@cli.group()
def embed() -> None:
    """Word2Vec embeddings: train, query neighbours, draw a t-SNE map, check coverage."""


@embed.command("train")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="vector file")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["kv", "word2vec-bin", "word2vec-txt"]),
    default="kv",
    help="kv: gensim KeyedVectors (keeps counts)",
)
@click.option("--dim", "vector_size", type=int, default=500)
@click.option("--window", type=int, default=5)
@click.option("--min-count", type=int, default=1)
@click.option("--sg/--cbow", default=True, help="skip-gram or CBOW")
@click.option("--epochs", type=int, default=5)
@click.option("--negative", type=int, default=5, help="negative samples")
@click.option("--sample", type=float, default=1e-3, help="down-sampling of frequent words")
@click.option("--alpha", type=float, default=0.025, help="initial learning rate")
@click.option("--workers", type=int, default=0, help="0: every available core")
@click.option("--seed", type=int, default=1)
@click.option(
    "--split",
    type=click.Choice(["train", "all"]),
    default="train",
    help="train: never learn from validation text",
)
def embed_train(data_dir, out, fmt, sg, **kw) -> None:
    """Word2Vec (gensim) on a prepared corpus, sentences cut at . ? !"""
    import time

    from .embeddings import Word2VecConfig, save_vectors, train_word2vec

    t = time.perf_counter()
    kv = train_word2vec(data_dir, Word2VecConfig(sg=int(sg), **kw))
    save_vectors(kv, out, fmt)
    click.echo(
        f"{len(kv):,} words x {kv.vector_size} dims in {time.perf_counter() - t:.1f}s -> {out}"
    )
    probe = next((w for w in ("food", "knight", "the") if w in kv.key_to_index), None)
    if probe:
        near = ", ".join(f"{w} {s:.2f}" for w, s in kv.most_similar(probe, topn=5))
        click.echo(f"nearest to {probe!r}: {near}")


@embed.command("neighbors")
@click.argument("vectors", type=click.Path(path_type=Path))
@click.argument("query")
@click.option("-n", "n", type=int, default=10)
@click.option("--limit", type=int, default=None, help="read at most this many vectors")
def embed_neighbors(vectors, query, n, limit) -> None:
    """Nearest words to QUERY: a word, or an analogy such as 'king - man + woman'."""
    from .embeddings import load_vectors, neighbors

    for word, sim in neighbors(load_vectors(vectors, limit), query, n):
        click.echo(f"{sim:7.4f}  {word}")


@embed.command("plot")
@click.argument("vectors", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("tsne.png"))
@click.option("--words", "n_words", type=int, default=2500, help="the N most frequent words")
@click.option("--label", "n_labels", type=int, default=100, help="label the K most frequent")
@click.option("--size", default="1200x1200", help="picture size in pixels, WxH")
@click.option(
    "--html",
    type=click.Path(path_type=Path),
    default=None,
    help="also an interactive page (plotly): hover shows the word",
)
@click.option(
    "--method",
    type=click.Choice(["opentsne", "sklearn"]),
    default="opentsne",
    help="t-SNE implementation (openTSNE is the faster here)",
)
@click.option("--limit", type=int, default=None, help="read at most this many vectors")
def embed_plot(vectors, out, n_words, n_labels, size, html, method, limit) -> None:
    """A t-SNE map of the most frequent words."""
    import time

    from .embeddings import load_vectors, plot_tsne

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise WordGPTError(f"--size must look like 1200x1200, got {size!r}") from None
    t = time.perf_counter()
    plot_tsne(load_vectors(vectors, limit), out, n_words, n_labels, (w, h), html, method)
    click.echo(f"wrote {out}{f' and {html}' if html else ''} in {time.perf_counter() - t:.1f}s")


@embed.command("coverage")
@click.argument("vectors", type=click.Path(path_type=Path))
@click.option("--data", "data_dir", type=click.Path(path_type=Path), required=True)
@click.option("--limit", type=int, default=None, help="read at most this many vectors")
def embed_coverage(vectors, data_dir, limit) -> None:
    """How much of a prepared corpus's vocabulary the vectors cover."""
    from .embeddings import data_coverage

    click.echo(str(data_coverage(vectors, data_dir, limit)))


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        cli.main(args=argv, prog_name="wordgpt", standalone_mode=False)
    except WordGPTError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
