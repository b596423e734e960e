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
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    SampleConfig,
    StopConfig,
    TrainConfig,
    Word2VecConfig,
)
from wordgpt.errors import WordGPTError
from wordgpt.fields import choices, field_docs
from wordgpt.presets import PRESETS, preset_configs
from wordgpt.settings import flat_fields, from_dict, to_dict, with_settings


def params(command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params}


@pytest.mark.parametrize(
    "cls",
    [DataConfig, ModelConfig, TrainConfig, OptimConfig, StopConfig, EvalConfig, SampleConfig,
     Word2VecConfig],
)  # fmt: skip
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
    for owner, name in flat_fields(cls):
        f = next(f for f in dataclasses.fields(owner) if f.name == name)
        if f.name in skip:
            assert f.name not in ps
            continue
        p = ps[f.name]
        assert p.opts[0] == "--" + f.name.replace("_", "-")
        assert p.help.startswith(field_docs(owner)[f.name])
        if isinstance(f.default, tuple) and p.multiple:  # several values: a repeated flag
            default = f.default
        elif isinstance(f.default, tuple):  # numbers as one comma-separated value
            default = ",".join(map(str, f.default))
        else:
            default = f.default
        assert p.default == (None if from_preset else default), f.name
        if (allowed := choices(owner, f.name)) is not None:
            assert isinstance(p.type, click.Choice)
            assert list(p.type.choices) == [str(a) for a in allowed]


def test_sampling_defaults_are_written_once():
    assert params(cli_mod.sample)["temperature"].default == SampleConfig().temperature == 0.8


def test_settings_find_their_dataclass_and_unknown_ones_are_refused():
    given = {"n_layer": 2, "lr": 0.1, "patience": 3, "eval_iters": 7, "batch_size": 4}
    m, t = with_settings(ModelConfig(), TrainConfig(), given)
    assert (m.n_layer, t.optim.lr, t.stop.patience, t.eval.eval_iters, t.batch_size) == (
        2, 0.1, 3, 7, 4)  # fmt: skip
    assert m.n_head == ModelConfig().n_head and t.optim.beta2 == OptimConfig().beta2
    m, t = with_settings(m, t, {"ema": None, "time_budget": None})  # None is a value: unset
    assert t.optim.ema is None and t.stop.time_budget is None
    with pytest.raises(WordGPTError, match="unknown setting 'n_layers'"):
        with_settings(m, t, {"n_layers": 3})


def test_a_train_config_round_trips_and_old_flat_ones_are_read():
    t = with_settings(ModelConfig(), TrainConfig(), {"lr": 0.5, "patience": 2})[1]
    assert from_dict(TrainConfig, to_dict(t)) == t
    flat = {"batch_size": 4, "lr": 0.25, "max_iters": 9, "eval_iters": 3, "warmup_iters": 50}
    old = from_dict(TrainConfig, flat)  # a run written before TrainConfig had parts
    assert (old.batch_size, old.optim.lr, old.stop.max_iters, old.eval.eval_iters) == (
        4, 0.25, 9, 3)  # fmt: skip


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
        (OptimConfig, {"lr": -0.01}, "lr must be > 0"),
        (OptimConfig, {"warmup": -0.5}, "warmup must be in [0, 1)"),
        (OptimConfig, {"warmup": 1.0}, "warmup must be in [0, 1)"),
        (OptimConfig, {"grad_clip": -1.0}, "grad_clip must be >= 0"),
        (OptimConfig, {"decay": "cosine", "decay_on_plateau": 3}, "use it with --decay wsd"),
        (StopConfig, {"time_budget": 0.0}, "time_budget must be > 0"),
        (StopConfig, {"time_budget": -1.0}, "time_budget must be > 0"),
        (TrainConfig, {"seed": 2**70}, "too large"),
        (TrainConfig, {"dtype": "float8"}, "dtype must be one of"),
        (OptimConfig, {"beta2": 1.0}, "beta2 must be in [0, 1)"),
        (EvalConfig, {"eval_iters": 0}, "eval_iters must be >= 1"),
        (DataConfig, {"max_vocab": 0}, "max_vocab must be >= 2"),
        (DataConfig, {"max_vocab": 1}, "max_vocab must be >= 2"),
        (DataConfig, {"max_vocab": -5}, "max_vocab must be >= 2"),
        (DataConfig, {"encoding": "klingon"}, "unknown encoding"),
        (SampleConfig, {"temperature": math.nan}, "finite"),
        (SampleConfig, {"temperature": 1e-40}, "between 0.001 and 100"),
        (SampleConfig, {"top_p": 1.5}, "top_p"),
    ],
)
def test_values_that_cannot_work_are_refused(cls, kw, message):
    with pytest.raises(WordGPTError, match=re.escape(message)):
        cls(**kw)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_valid_configs_and_says_what_it_is_for(name):
    model, train = preset_configs(name)
    assert isinstance(model, ModelConfig) and isinstance(train, TrainConfig)
    assert PRESETS[name].about


def test_the_defaults_are_the_recommended_recipe():
    assert preset_configs("cpu") == (ModelConfig(), TrainConfig())
    assert DataConfig().space_prefix  # every recipe was measured on space-prefixed words


def test_the_seed_preset_is_the_original_notebooks_model():
    model, train = preset_configs("seed")
    assert (model.n_layer, model.n_head, model.n_embd, model.block_size) == (32, 32, 512, 128)
    assert (model.pos, model.head, model.mlp, model.dropout) == ("learned", "softmax", "relu", 0.2)
    assert (train.optim.lr, train.optim.min_lr_ratio, train.stop.max_iters) == (3e-4, 1.0, 5000)


def test_settings_of_a_preset_rebuild_it_from_the_defaults():
    from wordgpt.presets import preset_configs
    from wordgpt.settings import settings_of

    model, train = preset_configs("char-900")  # model, train and every part changed
    assert with_settings(ModelConfig(), TrainConfig(), settings_of(model, train)) == (model, train)


def test_flat_setting_names_are_unique_across_the_model_training_and_its_parts():
    """``lr=``, ``time_budget=``, a flag: a flat name must say which field it sets, so no two
    fields of ModelConfig, TrainConfig and TrainConfig's parts share a name (nor a part's name,
    which would hide the part)."""
    from wordgpt.settings import SECTIONS

    names = [name for _, name in flat_fields(ModelConfig) + flat_fields(TrainConfig)]
    twice = {n for n in names if names.count(n) > 1}
    assert not twice, twice
    assert not set(SECTIONS) & set(names)


def test_the_compile_help_says_the_budget_below_which_cuda_stays_eager():
    from wordgpt.training.trainer import COMPILE_MIN_BUDGET

    assert f"under {COMPILE_MIN_BUDGET:g} seconds" in field_docs(TrainConfig)["compile"]


def test_one_data_set_given_as_a_string_is_a_data_set_of_one():
    """``DataConfig(dataset="book.txt")`` from Python means one file, not its characters:
    the config written to the run (and the model card, the run list) names the file."""
    assert DataConfig(dataset="some/book.txt").dataset == ("some/book.txt",)
    assert DataConfig(dataset=["a.txt", "b.txt"]).dataset == ("a.txt", "b.txt")
