"""The commands on text and runs: prepare, train, sample, eval, export, serve. Each parses
its flags and calls the same API a notebook uses; imports are made inside the commands, so
that ``wordgpt --help`` (and a command's own start) pays only for what it uses."""

from __future__ import annotations

import math
import os
from pathlib import Path

import click

from ..adapt_config import AdaptConfig
from ..config import NGRAM_MAX, DataConfig, ModelConfig, SampleConfig, TrainConfig
from ..errors import WordGPTError
from ..presets import PRESETS
from ..serve_config import ServeConfig
from .flags import (
    DATA,
    NEW_DATA,
    NEW_FOLDER,
    NEW_RUN,
    RUN,
    RUNS,
    TEXT_FILE,
    TOKENIZER_FROM,
    SectionedCommand,
    checkpoint_option,
    config_options,
    device_option,
    json_line,
    json_option,
    needs_extra,
    settings_given,
    threads_option,
    trust_pickle_option,
)

PRESET_HELP = "; ".join(f"{k}: {p.about}" for k, p in PRESETS.items())


def register(cli: click.Group) -> None:
    for command in (prepare, train, sample, eval_, report, export_, serve):
        cli.add_command(command)


@click.command()
@click.option(
    "--out", type=NEW_DATA, default=None, help="output folder [default: data/DATASET-TOKENIZER]"
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace a data folder already at --out (only once the new one is complete)",
)
@click.option(
    "--workers",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="processes that tokenize (and parse dumps); 0: every available core",
)
@click.option(
    "--tokenizer-from",
    type=TOKENIZER_FROM,
    default=None,
    help="encode with the tokenizer of this data folder or run (unknown words: <unk>)",
)
@click.option("--progress/--no-progress", default=True, help="a progress bar with MB/s and ETA")
@config_options(DataConfig)
def prepare(out, overwrite, workers, tokenizer_from, progress, **kw) -> None:
    """Clean, split and tokenize text into train.bin, val.bin, tokenizer.json, meta.json."""
    from ..corpus.build import prepare as run

    cfg = DataConfig(**kw)
    if out is None:
        first = cfg.dataset[0]
        name = Path(first).name.split(".")[0] if "/" in first else first
        out = Path("data") / f"{name}-{cfg.tokenizer}{'-sp' if cfg.space_prefix else ''}"
    p = run(out, cfg, overwrite=overwrite, tokenizer_from=tokenizer_from, workers=workers,
            progress=progress)  # fmt: skip
    if not progress:  # with progress, prepare has said it
        click.echo(str(p))


@click.command(cls=SectionedCommand)
@click.option("--data", "data_dir", type=DATA, required=True, help="a folder written by prepare")
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default=None,
    help="[default: the recipe measured best for --time-budget (300 s) on this machine's "
    "speed; with --init-from, finetune; on --resume, the run's own] " + PRESET_HELP,
)
@click.option("--out", type=NEW_RUN, default=None, help="run folder [default: runs/DATA-PRESET]")
@click.option("--resume", is_flag=True, help="continue the run in OUT from its last.pt")
@click.option(
    "--overwrite", is_flag=True, help="start over in OUT: an old run there is moved aside"
)
@click.option(
    "--dry-run", is_flag=True, help="check everything and say what would run; write nothing"
)
@trust_pickle_option
@click.option(
    "--report/--no-report",
    default=True,
    help="write RUN/report.html and report.md at the end (a whole-split evaluation and three "
    "samples with their copies: seconds on a book)",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="start from the preset and every setting of a run's config.json (the flags given "
    "here override them): the same run again, on data of its tokens",
)
@config_options(ModelConfig, exclude=("vocab_size",), from_preset=True)
@config_options(TrainConfig, from_preset=True)
def train(data_dir, preset, out, resume, overwrite, dry_run, trust_pickle, report, config_file,
          **settings):  # fmt: skip
    """Train a GPT on prepared token files; checkpoints, metrics.csv, loss.png and a report
    go to OUT. Every model and training setting below defaults to the preset's value."""
    from ..use.train_run import train as run

    began = (click.get_current_context().obj or {}).get("started")
    settings = settings_given(settings)
    if config_file is not None:
        from ..fileio import read_json_object
        from ..settings import from_run_config

        was, every = from_run_config(read_json_object(config_file))
        preset, settings = preset or was, {**every, **settings}
    r = run(data_dir, out, preset, resume=resume, overwrite=overwrite, trust_pickle=trust_pickle,
            report=report, dry_run=dry_run, started=began, **settings)  # fmt: skip
    if dry_run:
        click.echo(str(r))
        return
    if int(os.environ.get("RANK", "0")) != 0:  # one closing line, from rank 0
        return
    best = f"{r.best_val:.4f}" if math.isfinite(r.best_val) else "none"
    click.echo(
        f"done: step {r.step} ({r.stopped}), {r.elapsed_s:.0f}s, {r.tokens_per_s:,.0f} tok/s, "
        f"best val loss {best} -> {r.run_dir}"
    )


@click.command()
@click.argument("run", type=RUN)
@click.option(
    "--prompt", default="", show_default=False, help="text to continue [default: a new sentence]"
)
@checkpoint_option
@device_option
@click.option(
    "--copy-min",
    type=click.IntRange(2),
    default=None,
    help="mark spans of at least this many tokens found verbatim in the training text "
    "[default: the length that under 1 % of the val split's own text reaches by chance: 9 "
    "space-prefixed words, 16 words and spaces, 35 characters, 8 BPE tokens]",
)
@click.option("--copies/--no-copies", default=True, help="look for copied spans (after the text)")
@click.option(
    "--num-samples",
    type=click.IntRange(1, 1000),
    default=1,
    help="how many texts, seeds one apart (the first: --seed, or one drawn now), each after a "
    "line of dashes",
)
@threads_option
@config_options(SampleConfig)
def sample(run, prompt, which, device, copy_min, copies, num_samples, threads, **kw) -> None:
    """Generate text from a trained run, streamed as it comes; then which of it stands
    verbatim in the training text (on stderr)."""
    from dataclasses import replace

    from ..use.generate import with_seed
    from ..use.loaded import load

    first = with_seed(SampleConfig(**kw))
    m = load(run, which, device, threads=threads)
    unknown = m.tokenizer.unknown(prompt)
    if unknown:
        words = ", ".join(repr(w) for w, _ in unknown.most_common(10))
        click.echo(
            f"warning: {sum(unknown.values())} prompt token(s) not in the vocabulary, "
            f"read as <unk>: {words}",
            err=True,
        )
    if first.ngram and (partner := m.partner) is not None:
        click.echo(f"drawn {partner.describe()}; --no-ngram: the GPT alone", err=True)
    for i in range(num_samples):
        if i:
            click.echo("-" * 40)
        cfg = replace(first, seed=first.seed + i)
        one_sample(m, prompt, cfg, copy_min, copies, given=kw["seed"] is not None)


def one_sample(m, prompt: str, cfg: SampleConfig, copy_min, copies: bool, given: bool) -> None:
    """One text streamed to stdout; its seed (when none was given) and copies on stderr."""
    from ..use.generate import print_stream

    if prompt:
        click.echo(prompt, nl=False)
    ids: list[int] = []
    print_stream(m.stream(prompt, cfg, ids))
    if not given:
        click.echo(f"seed {cfg.seed} (--seed {cfg.seed} gives this text again)", err=True)
    found = m.copies(ids, copy_min) if copies else None
    if found is not None:
        click.echo(found.summary(), err=True)
        text = m.tokenizer.decode(ids)
        for span in sorted(found.spans, key=lambda s: -s.tokens)[:3]:
            click.echo(
                f"  «{text[span.start : span.end].strip()}» ({span.tokens} tokens)", err=True
            )


@click.command("eval")
@click.argument("run", type=RUN)
@click.option("--split", type=click.Choice(["val", "train"]), default="val", show_default=True)
@click.option(
    "--data", "data_dir", type=DATA, default=None, help="token files [default: the run's own]"
)
@click.option(
    "--text",
    type=TEXT_FILE,
    default=None,
    help="evaluate on this text file instead (cleaned as the run's data; its vocabulary)",
)
@checkpoint_option
@device_option
@click.option(
    "--copies",
    is_flag=True,
    help="also: does it write or copy? the share of seeded samples' n-grams found in the "
    "training text, beside the val split's own share, and the longest copied span",
)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    default=None,
    show_default=False,
    help="start a window every STRIDE tokens, so each token has at least block - STRIDE "
    "tokens of context (slower by block / STRIDE) [default: the block: consecutive windows]",
)
@click.option(
    "--adapt",
    is_flag=True,
    help="also the adaptive figure: the model learns from each window after scoring it, as "
    "a compressor does (shown beside the static figure, never in its place)",
)
@click.option(
    "--warm",
    is_flag=True,
    help="first learn from the end of the training split that the GPT did not train on (the "
    "slice its partner and the character mixer are fitted on), as --adapt learns (at half its "
    "rate), then read the split with those weights: every figure, the static ones too",
)
@config_options(AdaptConfig)
@click.option(
    "--ngram",
    type=click.IntRange(min=0, max=NGRAM_MAX),
    default=None,
    show_default=False,
    help="the figure of the GPT mixed with a Kneser-Ney model of this order of the run's "
    "training tokens (its weight fitted on the end of the training split); 0: the GPT alone "
    "[default: the run's own n-gram partner, when it has one]",
)
@click.option(
    "--chars",
    is_flag=True,
    help="also read by characters: the word model (with its partner) turned into each "
    "character's probability and mixed with character-level context models and a match "
    "model, as a compressor mixes (the mixer fitted once on the held-out end of the training "
    "split, kept in RUN/charmix.json); its figure is then the headline",
)
@threads_option
@json_option
def eval_(run, split, data_dir, text, which, device, copies, stride, adapt, warm, ngram, chars,
          threads, as_json, **adapt_kw) -> None:  # fmt: skip
    """Loss, perplexity and bits per character over a whole split, or any text file (each
    <unk> charged its spelling; the <unk> share shown); recorded in RUN/eval.json."""
    from ..use.loaded import load

    how = AdaptConfig(**adapt_kw)  # checked whether or not --adapt asks for it
    m = load(run, which, device, threads=threads)
    kw = {"stride": stride, "adapt": how if adapt else None, "ngram": ngram, "chars": chars,
          "warm": how if warm else False}  # fmt: skip
    r = (
        m.evaluate_text(text, **kw)
        if text is not None
        else m.evaluate(split, data_dir, progress=True, **kw)
    )
    record = {"checkpoint": m.path.name, "step": m.step, **r.to_dict()}
    if copies:
        from ..use.copies import copy_figures, describe_figures

        record["copies"] = copy_figures(m)
    if m.run_dir.is_dir() and data_dir is None:
        variant = bool(stride or adapt or chars or warm) or ngram is not None  # plain: partner
        record_eval(m.run_dir, record, text, split, variant)
    if as_json:
        click.echo(json_line({"run": str(run), **record}))
        return
    click.echo(str(r))
    if copies:
        click.echo(describe_figures(record["copies"]))


def record_eval(
    run_dir: Path, record: dict, text: Path | None, split: str, variant: bool = False
) -> None:
    """RUN/eval.json: the run's own val split at its top (what the runs list shows), each
    text file evaluated under "texts", its train split under "train", an evaluation with a
    stride, adaptation or another partner asked for (a ``variant``) under "variants" (beside
    the plain figure, never in its place)."""
    from ..fileio import atomic_write, read_json_object

    d = read_json_object(run_dir / "eval.json")
    if variant:
        # more context, adaptation or a partner: beside the plain figure, which runs compare on
        how = f"stride {record.get('stride') or 'block'}"
        if record.get("adaptive_bits_per_char") is not None:
            how += ", adaptive"
        how += f", {record['ngram']['order']}-gram" if record.get("ngram") else ", GPT alone"
        how += ", by characters" if record.get("by_chars") else ""
        how += ", warmed" if record.get("warmed") else ""
        d.setdefault("variants", {})[f"{split if text is None else Path(text).name}, {how}"] = (
            record
        )
    elif text is not None:
        d.setdefault("texts", {})[Path(text).name] = record
    elif split == "train":
        d["train"] = record
    else:
        d = {**{k: v for k, v in d.items() if k in ("texts", "train", "variants")}, **record}
    try:
        atomic_write(run_dir / "eval.json", json_line(d) + "\n")
    except WordGPTError as e:  # a read-only run folder: the figures stand, unrecorded
        click.echo(f"note: {run_dir}/eval.json not written ({' '.join(str(e).split())})",
                   err=True)  # fmt: skip


@click.command()
@click.argument("run", type=RUN)
@checkpoint_option
def report(run, which) -> None:
    """Write RUN/report.html (one page that opens from disk) and RUN/report.md: data,
    model, training, curves, evaluation, samples with their copied spans, machine."""
    from ..use.report import write_report

    page, md = write_report(run, which)
    click.echo(f"wrote {page} and {md}")


@click.command("export")
@click.argument("run", type=RUN)
@click.option("--out", type=NEW_FOLDER, required=True, help="a new (or empty) folder")
@checkpoint_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "gpt2", "wordgpt"]),
    default="auto",
    show_default=True,
    help="gpt2: a native GPT2LMHeadModel (runs with GPT-2's architecture); wordgpt: the "
    "model's own code travels with it (trust_remote_code); auto: gpt2 when the run fits",
)
def export_(run, out, which, fmt) -> None:
    """Export a run to Hugging Face transformers: safetensors weights, the tokenizer, and a
    model card (README.md)."""
    try:
        from ..use.export import export
    except ImportError as e:
        raise needs_extra(e, "export", "export") from None
    r = export(run, out, which, fmt)
    click.echo(f"exported {run} as {r.format} -> {r.out}: {', '.join(r.files)}")
    remote = ", trust_remote_code=True" if r.format == "wordgpt" else ""
    click.echo(f"load with AutoModelForCausalLM.from_pretrained({str(r.out)!r}{remote})")


@click.command()
@click.argument("runs_dir", type=RUNS, default=Path("runs"), required=False)
@click.option(
    "--host",
    default=ServeConfig.host,
    show_default=True,
    help="listen here (127.0.0.1: this machine only)",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--allow-host",
    "allowed",
    multiple=True,
    help="another name this server may be reached by (e.g. the machine's name, with --host "
    "0.0.0.0); repeat for several",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(1, 100_000),
    default=ServeConfig.max_new_tokens,
    show_default=True,
    help="the most tokens one request may ask for",
)
@click.option(
    "--max-active",
    type=click.IntRange(1, 64),
    default=ServeConfig.max_active,
    show_default=True,
    help="costly requests (generations, samples, word maps) at once; more get a busy answer",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(0.1),
    default=ServeConfig.time_limit_s,
    show_default=True,
    help="seconds a generation may run",
)
@click.option(
    "--max-models",
    type=click.IntRange(1, 1000),
    default=ServeConfig.max_models,
    show_default=True,
    help="runs kept loaded at once (the one used longest ago is let go for another)",
)
def serve(runs_dir, host, port, allowed, max_new_tokens, max_active, time_limit,
          max_models) -> None:  # fmt: skip
    """A local web page to generate text from the runs in RUNS_DIR and look at them."""
    try:
        from ..use.serve.run import serve_forever
    except ImportError as e:
        raise needs_extra(e, "serve", "serve") from None
    cfg = ServeConfig(
        runs_dir,
        max_new_tokens,
        max_active=max_active,
        time_limit_s=time_limit,
        max_models=max_models,
        host=host,
        allowed_hosts=tuple(allowed),
    )
    serve_forever(cfg, port)
