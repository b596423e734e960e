"""Settings by name: a config dataclass as a JSON-ready dict and back, and the flat names
(``n_layer``, ``lr``, ``time_budget``) by which ``wordgpt.train``, the CLI's flags and the
presets set a field of ModelConfig, TrainConfig or one of TrainConfig's parts.

Flat names are unique across ModelConfig, TrainConfig and its parts (a test keeps it so), so
a name says which field it sets.
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any

from .config import EvalConfig, ModelConfig, OptimConfig, StopConfig, TrainConfig
from .errors import WordGPTError

SECTIONS = {"optim": OptimConfig, "stop": StopConfig, "eval": EvalConfig}
"""TrainConfig's parts, by field name."""


def _json_ready(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    return list(v) if isinstance(v, tuple) else v


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (TrainConfig's parts as nested dicts)."""
    return _json_ready(asdict(cfg))


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a config dataclass, ignoring keys it does not know (older or newer runs). A
    TrainConfig's parts are read from their nested dicts, or from the flat dict that runs
    wrote before TrainConfig had parts."""
    names = {f.name for f in fields(cls)}
    kw = {k: v for k, v in d.items() if k in names and k not in SECTIONS}
    if cls is TrainConfig:
        for name, part in SECTIONS.items():
            kw[name] = from_dict(part, d[name] if isinstance(d.get(name), dict) else d)
    return cls(**kw)


def flat_fields(cls: type) -> list[tuple[type, str]]:
    """(dataclass, field name) of every setting of ``cls``, TrainConfig's parts included: the
    CLI's flags and the keyword arguments of ``wordgpt.train``."""
    out = []
    for f in fields(cls):
        if cls is TrainConfig and f.name in SECTIONS:
            out += flat_fields(SECTIONS[f.name])
        else:
            out.append((cls, f.name))
    return out


def settings_of(model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    """Every setting of ``model`` and ``train`` by field name (TrainConfig's parts
    flattened): what :func:`with_settings` and ``wordgpt.train`` take."""
    owner = {ModelConfig: model, TrainConfig: train}
    owner.update({part: getattr(train, name) for name, part in SECTIONS.items()})
    every = flat_fields(ModelConfig) + flat_fields(TrainConfig)
    return {name: getattr(owner[cls], name) for cls, name in every}


def from_run_config(config: dict) -> tuple[str | None, dict[str, Any]]:
    """The preset and every model and training setting of a run's ``config.json`` (what
    ``train --config`` starts a run from): the same run again, on any data of its tokens
    (the vocabulary size is the data's)."""
    if not (isinstance(config.get("model"), dict) and isinstance(config.get("train"), dict)):
        raise WordGPTError("that is no run's config.json: it has no model and train settings")
    try:
        model = from_dict(ModelConfig, {**config.get("model", {}), "vocab_size": 0})
        train = from_dict(TrainConfig, config.get("train", {}))
    except (TypeError, ValueError, AttributeError) as e:
        raise WordGPTError(f"a run's config.json whose settings fail: {e}") from None
    settings = settings_of(model, train)
    del settings["vocab_size"]
    preset = config.get("preset")
    return (preset if isinstance(preset, str) else None), settings


def with_settings(model: ModelConfig, train: TrainConfig, settings: dict[str, Any]):
    """``model`` and ``train`` with settings given by field name (``n_layer=2``, ``lr=1e-3``,
    ``time_budget=60``), wherever the field lives; an unknown name is one clear error."""
    where = {name: cls for cls, name in flat_fields(ModelConfig) + flat_fields(TrainConfig)}
    groups: dict[type, dict] = {}
    for k, v in settings.items():
        if k not in where:
            raise WordGPTError(f"unknown setting {k!r}")
        groups.setdefault(where[k], {})[k] = v
    model = replace(model, **groups.get(ModelConfig, {}))
    parts = {
        name: replace(getattr(train, name), **groups[part])
        for name, part in SECTIONS.items()
        if part in groups
    }
    return model, replace(train, **groups.get(TrainConfig, {}), **parts)
