"""Checkpoints: written atomically, loaded without unpickling code, checked before use.

A checkpoint is a dict of tensors and plain Python values (numbers, strings, lists, dicts),
so ``torch.load(weights_only=True)`` reads it. It is written to a temporary file in the same
folder, flushed to disk and renamed over the old one: a crash leaves the previous file whole.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

FORMAT = "wordgpt-checkpoint-1"


def save(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` a copy of checkpoint ``src``, atomically. A real copy, not a hard link:
    damage to one file must never reach the other."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU; a missing, torn or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path} is corrupt or incomplete and was not loaded ({type(e).__name__}); "
            "other checkpoints in its folder are untouched"
        ) from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a wordgpt checkpoint")
    return ck
