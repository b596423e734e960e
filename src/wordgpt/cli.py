"""The ``wordgpt`` command. Thin: it parses flags and calls the same API a notebook uses.

The flags of ``prepare``, ``train``, ``sample`` and ``embed train`` are generated from the
config dataclasses' fields: their names, types, choices, defaults and help (each field's
docstring) are written once, in :mod:`wordgpt.config`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import typing
from pathlib import Path
from typing import Any

import click

from .config import (
    PRESETS,
    DataConfig,
    ModelConfig,
    SampleConfig,
    TrainConfig,
    Word2VecConfig,
    choices,
    field_docs,
    field_types,
)
from .errors import InterruptError, WordGPTError

# ------------------------------------------------------------------------ generated flags


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _click_type(cls: type, name: str) -> tuple[Any, bool]:
    """(click type, is_bool) for a field."""
    if (allowed := choices(cls, name)) is not None:
        return click.Choice([str(a) for a in allowed]), False
    tp = field_types(cls)[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if args and typing.get_origin(tp) is not tuple else tp
    if base is bool:
        return None, True
    if typing.get_origin(base) is tuple:
        return (click.STRING if typing.get_args(base)[0] is str else _INT_LIST), False
    return {int: click.INT, float: click.FLOAT, str: click.STRING}[base], False


class _IntList(click.ParamType):
    name = "N,N,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(int(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of whole numbers", param, ctx)


_INT_LIST = _IntList()


def config_options(cls: type, *, exclude: tuple[str, ...] = (), from_preset: bool = False):
    """Decorate a command with one flag per field of ``cls``: ``--field-name``; booleans as
    ``--x/--no-x``; Literal fields as choices. Defaults are the dataclass's, or unset with
    ``from_preset`` (the preset's value then applies)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    docs = field_docs(cls)

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in exclude:
                continue
            typ, is_bool = _click_type(cls, f.name)
            default = None if from_preset else defaults[f.name]
            multiple = typ is click.STRING and isinstance(defaults[f.name], tuple)
            if isinstance(default, tuple) and not multiple:
                default = ",".join(map(str, default))
            help_ = docs.get(f.name, "")
            name = flag_name(f.name)
            if is_bool:
                decl = f"{name}/--no-{name[2:]}"
                fn = click.option(
                    decl, f.name, default=default, help=help_, show_default=not from_preset
                )(fn)
            else:
                fn = click.option(
                    name,
                    f.name,
                    type=typ,
                    default=default,
                    help=help_ + (" Repeat the flag for several." if multiple else ""),
                    show_default=not from_preset,
                    multiple=multiple,
                )(fn)
        return fn

    return decorate


# ------------------------------------------------------------------------ commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="wordgpt")
def cli() -> None:
    """Train small word-level GPTs on a book or a Wikipedia sample, and sample from them."""


@cli.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="output folder [default: data/DATASET-TOKENIZER]",
)
@click.option(
    "--workers",
    type=click.IntRange(0),
    default=0,
    help="processes that tokenize (and parse dumps); 0: every available core",
)
@click.option(
    "--tokenizer-from",
    type=click.Path(path_type=Path),
    default=None,
    help="encode with the tokenizer of this data folder or run (unknown words: <unk>)",
)
@click.option("--progress/--no-progress", default=True, help="a progress bar with MB/s and ETA")
@config_options(DataConfig)
def prepare(out, workers, tokenizer_from, progress, **kw) -> None:
    """Clean, split and tokenize text into train.bin, val.bin, tokenizer.json, meta.json."""
    from .corpus.build import prepare as run
    from .corpus.build import summary

    cfg = DataConfig(**kw)
    if out is None:
        first = cfg.dataset[0]
        name = Path(first).name.split(".")[0] if "/" in first else first
        out = Path("data") / f"{name}-{cfg.tokenizer}{'-sp' if cfg.space_prefix else ''}"
    click.echo(summary(run(cfg, out, workers, tokenizer_from, progress)))


@cli.command()
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
    default=None,
    help="[default: tiny; on --resume, the run's own] "
    + "; ".join(f"{k}: {p.about}" for k, p in PRESETS.items()),
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="run folder [default: runs/DATA-PRESET]",
)
@click.option("--resume", is_flag=True, help="continue the run in OUT from its last.pt")
@click.option(
    "--overwrite", is_flag=True, help="start over in OUT: an old run there is moved aside"
)
@click.option(
    "--dry-run", is_flag=True, help="check everything and say what would run; write nothing"
)
@config_options(ModelConfig, exclude=("vocab_size",), from_preset=True)
@config_options(TrainConfig, from_preset=True)
def train(data_dir, preset, out, resume, overwrite, dry_run, **overrides) -> None:
    """Train a GPT on prepared token files; checkpoints, metrics.csv and loss.png go to OUT.

    Every model and training setting below defaults to the preset's value."""
    from .training.loop import train as run
    from .training.plan import plan_run

    out = out or Path("runs") / f"{data_dir.name}-{preset or 'tiny'}"
    if dry_run:
        click.echo(plan_run(data_dir, out, preset, resume, overwrite, **overrides).describe())
        return
    r = run(data_dir, out, preset=preset, resume=resume, overwrite=overwrite, **overrides)
    if int(os.environ.get("RANK", "0")) != 0:  # one closing line, from rank 0
        return
    best = f"{r.best_val:.4f}" if math.isfinite(r.best_val) else "none"
    click.echo(
        f"done: step {r.step} ({r.stopped}), {r.elapsed_s:.0f}s, {r.tokens_per_s:,.0f} tok/s, "
        f"best val loss {best} -> {r.run_dir}"
    )


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--prompt", default="", help="text to continue [default: a new sentence]")
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best")
@click.option("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
@config_options(SampleConfig)
def sample(run, prompt, which, device, **kw) -> None:
    """Generate text from a trained run, streamed as it comes."""
    from .use.loaded import load
    from .use.sample import print_stream

    cfg = SampleConfig(**kw)
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
@click.option(
    "--text",
    type=click.Path(path_type=Path),
    default=None,
    help="evaluate on this text file instead (cleaned as the run's data; its vocabulary)",
)
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best")
@click.option("--device", default="auto")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def eval_(run, split, data_dir, text, which, device, as_json) -> None:
    """Loss, perplexity and bits per character over a whole split, or any text file."""
    from .use.loaded import load

    m = load(run, which, device)
    r = m.evaluate_text(text) if text is not None else m.evaluate(split, data_dir)
    if text is None and data_dir is None and split == "val" and m.run_dir.is_dir():
        from .fileio import atomic_write

        record = {"checkpoint": which, "step": m.step, **r.to_dict()}
        with contextlib.suppress(WordGPTError):  # a read-only run folder: nothing to record
            atomic_write(m.run_dir / "eval.json", json_line(record) + "\n")
    if as_json:
        click.echo(json_line({"run": str(run), "step": m.step, **r.to_dict()}))
    else:
        click.echo(str(r))


def json_line(obj: dict) -> str:
    """One line of valid JSON: non-finite numbers become null."""

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return json.dumps({k: clean(v) for k, v in obj.items()})


@cli.command("export")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="a new folder")
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "gpt2", "wordgpt"]),
    default="auto",
    help="gpt2: a native GPT2LMHeadModel (runs with GPT-2's architecture); wordgpt: the "
    "model's own code travels with it (trust_remote_code); auto: gpt2 when the run fits",
)
def export_(run, out, which, fmt) -> None:
    """Export a run to Hugging Face transformers: safetensors weights and the tokenizer."""
    try:
        from .use.export import export
    except ImportError as e:
        raise WordGPTError(
            f"export needs transformers and safetensors ({e.name} is missing): "
            "pip install 'wordgpt[export]'"
        ) from None
    r = export(run, out, which, fmt)
    click.echo(f"exported {run} as {r.format} -> {r.out}: {', '.join(r.files)}")
    remote = ", trust_remote_code=True" if r.format == "wordgpt" else ""
    click.echo(f"load with AutoModelForCausalLM.from_pretrained({str(r.out)!r}{remote})")


@cli.command()
@click.argument("runs_dir", type=click.Path(path_type=Path), default=Path("runs"), required=False)
@click.option("--host", default="127.0.0.1", help="listen here (127.0.0.1: this machine only)")
@click.option("--port", type=click.IntRange(1, 65535), default=8000)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(1, 100_000),
    default=1000,
    help="the most tokens one request may ask for",
)
@click.option(
    "--max-active",
    type=click.IntRange(1, 64),
    default=2,
    help="generations at once; more get a busy answer",
)
@click.option(
    "--time-limit", type=click.FloatRange(0.1), default=60.0, help="seconds a generation may run"
)
def serve(runs_dir, host, port, max_new_tokens, max_active, time_limit) -> None:
    """A local web page to generate text from the runs in RUNS_DIR and look at them."""
    try:
        import uvicorn

        from .use.serve.app import ServeConfig, create_app
    except ImportError as e:
        raise WordGPTError(
            f"serve needs FastAPI and uvicorn ({e.name} is missing): pip install 'wordgpt[serve]'"
        ) from None
    if not runs_dir.is_dir():
        raise WordGPTError(f"no runs folder at {runs_dir}; train a run first (make demo)")
    cfg = ServeConfig(runs_dir, max_new_tokens, max_active=max_active, time_limit_s=time_limit)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"note: listening on {host}: other machines can reach this page", err=True)
    click.echo(f"wordgpt serve: {runs_dir} on http://{host}:{port}  (Ctrl-C stops)")
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="warning")


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
@click.option(
    "--notebook",
    is_flag=True,
    help="the mission notebook's exact settings (500 dims, 5 epochs, min_count 1, window 5, "
    "skip-gram); the other flags are ignored",
)
@config_options(Word2VecConfig)
def embed_train(data_dir, out, fmt, notebook, **kw) -> None:
    """Word2Vec (gensim) on a prepared corpus, sentences cut at . ? !; then its measures."""
    import time

    from .config import NOTEBOOK_WORD2VEC
    from .vectors.files import save_vectors
    from .vectors.quality import evaluate_vectors
    from .vectors.queries import neighbors
    from .vectors.word2vec import train_word2vec

    cfg = (
        dataclasses.replace(NOTEBOOK_WORD2VEC, workers=kw["workers"])
        if notebook
        else (Word2VecConfig(**kw))
    )
    t = time.perf_counter()
    kv = train_word2vec(data_dir, cfg)
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
@click.argument("vectors", type=click.Path(path_type=Path))
@click.option(
    "--limit", type=click.IntRange(1), default=None, help="read at most this many vectors"
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def embed_evaluate(vectors, limit, as_json) -> None:
    """WordSim353, SimLex-999 and Google analogies (gensim's copies), with coverage, and a
    collapse warning."""
    from .vectors.files import load_vectors
    from .vectors.quality import evaluate_vectors

    scores = evaluate_vectors(load_vectors(vectors, limit))
    if as_json:
        click.echo(json_line({"vectors": str(vectors), **scores.to_dict()}))
    else:
        click.echo(str(scores))


@embed.command("neighbors")
@click.argument("vectors", type=click.Path(path_type=Path))
@click.argument("query")
@click.option("-n", "n", type=click.IntRange(1), default=10)
@click.option(
    "--limit", type=click.IntRange(1), default=None, help="read at most this many vectors"
)
def embed_neighbors(vectors, query, n, limit) -> None:
    """Nearest words to QUERY: a word, or an analogy such as 'king - man + woman'."""
    from .vectors.files import load_vectors
    from .vectors.queries import neighbors

    for word, sim in neighbors(load_vectors(vectors, limit), query, n):
        click.echo(f"{sim:7.4f}  {word.strip() or repr(word)}")


@embed.command("plot")
@click.argument("vectors", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("tsne.png"))
@click.option(
    "--words", "n_words", type=click.IntRange(5), default=2500, help="the N most frequent words"
)
@click.option(
    "--label", "n_labels", type=click.IntRange(0), default=100, help="label the K most frequent"
)
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
@click.option(
    "--limit", type=click.IntRange(1), default=None, help="read at most this many vectors"
)
def embed_plot(vectors, out, n_words, n_labels, size, html, method, limit) -> None:
    """A t-SNE map of the most frequent words."""
    import time

    from .vectors.files import load_vectors
    from .vectors.tsne import plot_tsne

    try:
        w, h = (int(v) for v in size.lower().split("x"))
        if not (50 <= w <= 20000 and 50 <= h <= 20000):
            raise ValueError
    except ValueError:
        raise WordGPTError(
            f"--size must look like 1200x1200 (50 to 20000 each), got {size!r}"
        ) from None
    t = time.perf_counter()
    plot_tsne(load_vectors(vectors, limit), out, n_words, n_labels, (w, h), html, method)
    click.echo(f"wrote {out}{f' and {html}' if html else ''} in {time.perf_counter() - t:.1f}s")


@embed.command("coverage")
@click.argument("vectors", type=click.Path(path_type=Path))
@click.option("--data", "data_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--limit", type=click.IntRange(1), default=None, help="read at most this many vectors"
)
def embed_coverage(vectors, data_dir, limit) -> None:
    """How much of a prepared corpus's vocabulary the vectors cover."""
    from .vectors.align import data_coverage

    click.echo(str(data_coverage(vectors, data_dir, limit)))


def _interrupt(signum, frame):
    raise InterruptError("interrupted; every file written so far is whole")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (3 for a run that
    diverged); so do Ctrl-C and SIGTERM outside the training loop (inside it they stop the
    run cleanly, with a checkpoint)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        cli.main(args=argv, prog_name="wordgpt", standalone_mode=False)
    except InterruptError as e:
        click.echo(" ".join(str(e).split()), err=True)
        sys.exit(e.exit_code)
    except WordGPTError as e:
        click.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(getattr(e, "exit_code", 2))
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted; every file written so far is whole", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
