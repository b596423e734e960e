"""One source of truth: the CLI's flags follow the config dataclasses; bad values and
combinations that cannot work are refused with one line."""

from __future__ import annotations

import dataclasses
import math
import re

import click
import pytest

from wordgpt.cli import commands as cli_mod
from wordgpt.cli.embed import embed_train
from wordgpt.config import (
    PRESETS,
    DataConfig,
    ModelConfig,
    SampleConfig,
    TrainConfig,
    Word2VecConfig,
    choices,
    field_docs,
    split_overrides,
)
from wordgpt.errors import WordGPTError


def params(command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params}


@pytest.mark.parametrize(
    "cls", [DataConfig, ModelConfig, TrainConfig, SampleConfig, Word2VecConfig]
)
def test_every_field_has_a_docstring(cls):
    docs = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing


@pytest.mark.parametrize(
    "command, cls, skip, from_preset",
    [
        (cli_mod.prepare, DataConfig, (), False),
        (cli_mod.train, ModelConfig, ("vocab_size",), True),
        (cli_mod.train, TrainConfig, (), True),
        (cli_mod.sample, SampleConfig, (), False),
        (embed_train, Word2VecConfig, (), False),
    ],
)
def test_flags_are_generated_from_the_fields(command, cls, skip, from_preset):
    ps = params(command)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            assert f.name not in ps
            continue
        p = ps[f.name]
        assert p.opts[0] == "--" + f.name.replace("_", "-")
        assert p.help.startswith(docs[f.name])
        if isinstance(f.default, tuple) and p.multiple:  # several values: a repeated flag
            default = f.default
        elif isinstance(f.default, tuple):  # numbers as one comma-separated value
            default = ",".join(map(str, f.default))
        else:
            default = f.default
        assert p.default == (None if from_preset else default), f.name
        if (allowed := choices(cls, f.name)) is not None:
            assert isinstance(p.type, click.Choice)
            assert list(p.type.choices) == [str(a) for a in allowed]


def test_sampling_defaults_are_written_once():
    assert params(cli_mod.sample)["temperature"].default == SampleConfig().temperature == 0.8


def test_split_overrides_sorts_fields_and_refuses_unknown_ones():
    m, t = split_overrides({"n_layer": 2, "lr": 0.1, "dropout": None})
    assert m == {"n_layer": 2} and t == {"lr": 0.1}
    with pytest.raises(WordGPTError, match="unknown setting 'n_layers'"):
        split_overrides({"n_layers": 3})


@pytest.mark.parametrize(
    "cls, kw, message",
    [
        (
            ModelConfig,
            {"tie_weights": True, "head": "adaptive", "vocab_size": 20000},
            "softmax head only",
        ),
        (ModelConfig, {"n_embd": 0}, "n_embd must be >= 1"),
        (ModelConfig, {"n_embd": 30, "n_head": 4}, "multiple of n_head"),
        (ModelConfig, {"pos": "rope", "n_embd": 12, "n_head": 4}, "even head size"),
        (ModelConfig, {"norm": "middle"}, "norm must be one of pre, post"),
        (ModelConfig, {"dropout": float("nan")}, "finite"),
        (TrainConfig, {"lr": -0.01}, "lr must be > 0"),
        (TrainConfig, {"warmup_iters": -5}, "warmup_iters must be >= 0"),
        (TrainConfig, {"grad_clip": -1.0}, "grad_clip must be >= 0"),
        (TrainConfig, {"time_budget": 0.0}, "time_budget must be > 0"),
        (TrainConfig, {"time_budget": -1.0}, "time_budget must be > 0"),
        (TrainConfig, {"seed": 2**70}, "too large"),
        (TrainConfig, {"dtype": "float8"}, "dtype must be one of"),
        (TrainConfig, {"beta2": 1.0}, "beta2 must be in [0, 1)"),
        (DataConfig, {"max_vocab": 0}, "max_vocab must be >= 2"),
        (DataConfig, {"max_vocab": 1}, "max_vocab must be >= 2"),
        (DataConfig, {"max_vocab": -5}, "max_vocab must be >= 2"),
        (DataConfig, {"encoding": "klingon"}, "unknown encoding"),
        (SampleConfig, {"temperature": math.nan}, "finite"),
        (SampleConfig, {"temperature": 1e-40}, "at least 0.001"),
        (SampleConfig, {"top_p": 1.5}, "top_p"),
    ],
)
def test_values_that_cannot_work_are_refused(cls, kw, message):
    with pytest.raises(WordGPTError, match=re.escape(message)):
        cls(**kw)


def test_presets_are_valid_and_demo_derives_from_cpu():
    assert PRESETS["demo"].model == PRESETS["cpu"].model
    assert PRESETS["demo"].train.time_budget == 90.0
    assert dataclasses.replace(PRESETS["demo"].train, time_budget=300.0) == (PRESETS["cpu"].train)
