"""The command line's flags: generated from the config dataclasses (names, types, choices,
defaults and help written once, in :mod:`wordgpt.config`), and path arguments that know
what kind of thing they name.

A path of the wrong kind (a file where a data folder is expected, a data folder where a
run is, a folder where a vector file is) is refused by its flag's type before the command
runs, with one line that says what it is and what to pass instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any

import click

from ..errors import WordGPTError
from ..fields import choices, field_docs, field_types
from ..folders import PREPARE_FIRST, expect
from ..settings import flat_fields


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


SECTIONS = {
    "ModelConfig": "Model",
    "TrainConfig": "Training",
    "OptimConfig": "Optimiser and schedule",
    "StopConfig": "Stopping",
    "EvalConfig": "Evaluation",
}
"""The headings of a command's help, one per config dataclass its flags come from."""


def config_options(cls: type, *, exclude: tuple[str, ...] = (), from_preset: bool = False):
    """Decorate a command with one flag per setting of ``cls`` (TrainConfig's parts
    included): ``--field-name``; booleans as ``--x/--no-x``; Literal fields as choices.
    Defaults are the dataclass's (shown in the help), or unset with ``from_preset`` (the
    preset's value then applies). Each flag remembers its dataclass, for the help's
    sections (:class:`SectionedCommand`)."""

    def decorate(fn):
        for owner, name in reversed(flat_fields(cls)):
            if name in exclude:
                continue
            f = next(f for f in dataclasses.fields(owner) if f.name == name)
            default = f.default if f.default is not dataclasses.MISSING else None
            typ, is_bool = _click_type(owner, name)
            multiple = typ is click.STRING and isinstance(default, tuple)
            shown = None if from_preset else default
            if isinstance(shown, tuple) and not multiple:
                shown = ",".join(map(str, shown))
            help_ = field_docs(owner).get(name, "") + (
                " Repeat the flag for several." if multiple else ""
            )
            if from_preset:
                help_ += " [default: the preset's]"
            flag = flag_name(name)
            decl = [f"{flag}/--no-{flag[2:]}"] if is_bool else [flag]
            kw = {} if is_bool else {"type": typ, "multiple": multiple}
            fn = click.option(
                *decl, name, default=shown, help=help_, show_default=not from_preset, **kw
            )(fn)
            fn.__click_params__[-1].section = SECTIONS.get(owner.__name__)
        return fn

    return decorate


class SectionedCommand(click.Command):
    """A command whose help lists its flags under headings: its own options first, then one
    section per config dataclass (Model, Training, Optimiser and schedule, ...)."""

    def format_options(self, ctx, formatter) -> None:
        groups: dict[str, list] = {}
        for p in self.get_params(ctx):
            rec = p.get_help_record(ctx)
            if rec is not None:
                groups.setdefault(getattr(p, "section", None) or "Options", []).append(rec)
        for title, rows in groups.items():
            with formatter.section(title):
                formatter.write_dl(rows)


def settings_given(kw: dict) -> dict:
    """The settings a command line gave: flags left unset (None) are not settings."""
    return {k: v for k, v in kw.items() if v is not None}


class PathOf(click.ParamType):
    """A path that must name one of some kinds of thing (see :mod:`wordgpt.folders`)."""

    name = "PATH"

    def __init__(self, kinds: tuple[str, ...], hint: str, suffixes: tuple[str, ...] = ()):
        self.kinds, self.hint, self.suffixes = kinds, hint, suffixes

    def convert(self, value, param, ctx):
        if isinstance(value, Path):
            return value
        path = Path(value).expanduser()
        if self.suffixes and path.is_file() and path.name.lower().endswith(self.suffixes):
            return path
        role = param.opts[0] if param is not None and param.opts else "the path"
        expect(path, self.kinds, role, self.hint)
        return path


DATA = PathOf(("data",), PREPARE_FIRST)
RUN = PathOf(
    ("run",), "give a run folder written by `wordgpt train` (or a checkpoint .pt)", (".pt",)
)
NEW_RUN = PathOf(
    ("missing", "empty", "run"),
    "train into a new or empty folder, or a run's own folder (with --resume or --overwrite)",
)
NEW_FOLDER = PathOf(("missing", "empty"), "give a new or empty folder")
NEW_DATA = PathOf(
    ("missing", "empty", "data"),
    "prepare into a new folder (or an empty one, or a data folder with --overwrite)",
)
VECTORS = PathOf(("file",), "give a vector file (.npz, .bin, .txt, .vec; .kv with --trust-pickle)")
TEXT_FILE = PathOf(("file",), "give a text file")
OUT_FILE = PathOf(("missing", "file"), "give a file name, not a folder")
TOKENIZER_FROM = PathOf(
    ("data", "run", "file"), "give a prepared data folder, a run, or a tokenizer.json"
)
RUNS = PathOf(
    ("run", "folder", "empty"), "give the folder that holds your runs (runs/, as make demo writes)"
)

checkpoint_option = click.option(
    "--checkpoint",
    "which",
    type=click.Choice(["best", "last"]),
    default="best",
    show_default=True,
    help="best.pt (the lowest val loss) or last.pt (the latest evaluation)",
)
device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps"
)
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    show_default=False,
    help="torch threads on a CPU [default: chosen by timing the first units of work with each "
    "count, unless OMP_NUM_THREADS fixes it]",
)
trust_pickle_option = click.option(
    "--trust-pickle",
    is_flag=True,
    help="allow a gensim .kv vector file: it is a pickle, which can run code when loaded; "
    "only for files you trust",
)
json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON object")


def json_line(obj: dict) -> str:
    """One line of valid JSON: non-finite numbers, at any depth, become null."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj))


def needs_extra(e: ImportError, what: str, extra: str) -> WordGPTError:
    return WordGPTError(
        f"{what} needs the {extra} extra ({e.name} is missing): pip install 'wordgpt[{extra}]'"
    )
