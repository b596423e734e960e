"""What the config dataclasses say of their fields, read by reflection: the docstring under
each field (the CLI's help), its type (the CLI's flag type, ``Literal`` values as choices),
and the checks every ``__post_init__`` runs on the values (kinds, finiteness, ranges).

:mod:`wordgpt.config` holds the schema itself; this module knows nothing of its classes.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import textwrap
import types
import typing
from dataclasses import fields
from typing import Any, Literal

from .errors import WordGPTError

MAX_INT = 2**63 - 1
"""The largest whole number a setting takes (a seed, a step count): it fits 64 bits."""


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass, by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's fields."""
    return typing.get_type_hints(cls)


def choices(cls: type, name: str) -> tuple | None:
    """The allowed values of a ``Literal`` field (or ``Literal | None``), else None."""
    tp = field_types(cls)[name]
    for a in [tp, *typing.get_args(tp)]:
        if typing.get_origin(a) is Literal:
            return typing.get_args(a)
    return None


def base_type(cls: type, name: str) -> Any:
    """A field's type without ``| None``: int, float, bool, str, a tuple or a Literal."""
    tp = field_types(cls)[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) else tp


# ------------------------------------------------------------------------ the checks


def check(ok: bool, message: str) -> None:
    if not ok:
        raise WordGPTError(message)


def check_choices(obj: Any) -> None:
    """Every ``Literal`` field holds one of its values."""
    for f in fields(obj):
        allowed = choices(type(obj), f.name)
        value = getattr(obj, f.name)
        if allowed is not None and value is not None and value not in allowed:
            raise WordGPTError(
                f"{f.name} must be one of {', '.join(map(str, allowed))}, got {value!r}"
            )


def check_numbers(obj: Any) -> None:
    """Every value is of its field's kind (no 2.5 layers, no True layers, no text for a
    number) and every number is finite and within 64 bits."""
    for f in fields(obj):
        v, kind = getattr(obj, f.name), base_type(type(obj), f.name)
        if v is None or typing.get_origin(kind) in (Literal, tuple):
            continue
        if kind is bool and not isinstance(v, bool):
            raise WordGPTError(f"{f.name} must be true or false, got {v!r}")
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise WordGPTError(f"{f.name} must be a whole number, got {v!r}")
        if kind is float and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise WordGPTError(f"{f.name} must be a number, got {v!r}")
        if kind is str and not isinstance(v, str):
            raise WordGPTError(f"{f.name} must be text, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise WordGPTError(f"{f.name} must be a finite number, got {v}")
        if isinstance(v, int) and abs(v) > MAX_INT:
            raise WordGPTError(f"{f.name} is too large: {v}")


def at_least(obj: Any, lo: float, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if v is not None:
            check(v >= lo, f"{n} must be >= {lo:g}, got {v}")


def in_unit(obj: Any, n: str, lo_open: bool = False, hi_open: bool = True) -> None:
    v = getattr(obj, n)
    lo_ok = v > 0 if lo_open else v >= 0
    hi_ok = v < 1 if hi_open else v <= 1
    check(
        lo_ok and hi_ok,
        f"{n} must be in {'(' if lo_open else '['}0, 1{')' if hi_open else ']'}, got {v}",
    )
