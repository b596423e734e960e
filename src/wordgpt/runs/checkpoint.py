"""Checkpoints: written atomically, loaded without unpickling code, checked before use.

A checkpoint is a dict of tensors and plain Python values (numbers, strings, lists, dicts),
so ``torch.load(weights_only=True)`` reads it. It is written to a temporary file beside the
target, flushed to disk and renamed over the old one: a crash leaves the previous file whole.
Weights that are not finite are never written.

The tokenizer travels in every checkpoint as one canonical JSON string
(:func:`tokenizer_json`); a run and a data folder fit each other when those strings match.
"""

from __future__ import annotations

import contextlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig
from ..corpus.tokenizer import Tokenizer
from ..corpus.tokenizer import from_dict as tokenizer_from_dict
from ..errors import CheckpointError, WordGPTError
from ..fileio import atomic_path, disk_error, shown
from ..settings import from_dict

FORMAT = "wordgpt-checkpoint-1"
REQUIRED = ("model", "model_config", "tokenizer", "step")
"""What any use of a checkpoint needs; resuming needs RESUME too."""
RESUME = ("optimizer", "train_config", "state")


def tokenizer_json(tok: Tokenizer | dict) -> str:
    """The one serialisation of a tokenizer used to compare vocabularies: sorted keys."""
    d = tok if isinstance(tok, dict) else tok.to_dict()
    return json.dumps(d, sort_keys=True, ensure_ascii=False)


def same_vocabulary(a: Tokenizer | dict | str, b: Tokenizer | dict | str) -> bool:
    """Whether two tokenizers (objects, their dicts, or a checkpoint's JSON string) have one
    vocabulary: their canonical JSON is equal. A string that is not a tokenizer's JSON
    matches nothing."""
    try:
        a, b = (json.loads(t) if isinstance(t, str) else t for t in (a, b))
        return tokenizer_json(a) == tokenizer_json(b)
    except (TypeError, ValueError, AttributeError):
        return False


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or infinity."""
    return [
        k
        for k, t in tensors.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all()
    ]


def tensor_bytes(obj: Any) -> int:
    """Bytes of all tensors in a nested payload (about a checkpoint's size on disk)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def save(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` to ``path`` atomically; refuse weights that are not finite."""
    bad = non_finite(payload.get("model", {}))
    if bad:
        raise CheckpointError(
            f"refusing to write {shown(path)}: weights are not finite ({', '.join(bad[:3])}...)"
        )
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        out = _Writes(f)
        try:
            torch.save({"format": FORMAT, **payload}, out)
            f.flush()
        except (RuntimeError, OSError) as e:  # torch's writer turns a failed write into a
            error = out.error or (e if isinstance(e, OSError) else None)  # RuntimeError
            if error is None:
                raise
            with contextlib.suppress(OSError):  # the bytes left in its buffer fail again:
                f.close()  # closed here, so that this error, with the size, is the one shown
            raise disk_error(error, path, need=tensor_bytes(payload)) from None


class _Writes:
    """A file's ``write`` that remembers the OSError behind a failed write (a full disk)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, b) -> int:
        try:
            return self.f.write(b)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """``RUN/best.pt`` (``last.pt`` when there is no best yet), ``RUN/last.pt``, or a file."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    if not run_dir.is_dir():
        raise CheckpointError(f"no run folder at {run_dir}")
    path = run_dir / f"{which}.pt"
    if not path.exists() and which == "best":
        path = run_dir / "last.pt"
    return path


def read(path: str | Path, resume: bool = False) -> dict[str, Any]:
    """Read a checkpoint on the CPU. A missing, torn, foreign or unsafe file is one clear
    :class:`CheckpointError`; nothing in it is executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower() or "unsupported" in str(e).lower():
            raise CheckpointError(
                f"{path} holds code or objects that are not allowed in a checkpoint "
                "(only tensors and plain values are); it was not loaded"
            ) from None
        raise _torn(path, e) from None
    except Exception as e:
        raise _torn(path, e) from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a wordgpt checkpoint")
    missing = [k for k in REQUIRED + (RESUME if resume else ()) if k not in ck]
    if missing:
        raise CheckpointError(
            f"{path} is not a complete wordgpt checkpoint: it lacks {', '.join(missing)}"
        )
    if why := problem(ck):
        raise CheckpointError(f"{path} is not a usable wordgpt checkpoint: {why}")
    return ck


KINDS = {
    "model": dict,
    "model_config": dict,
    "tokenizer": str,
    "step": int,
    "train_config": dict,
    "data_config": dict,
    "data_dir": str,
    "data_fingerprint": str,
    "state": dict,
    "optimizer": dict,
    "provenance": dict,
}
"""The kind of value each entry of a checkpoint holds, where it is there."""


def problem(ck: dict) -> str | None:
    """What is wrong with a checkpoint's entries (their kinds, the weights), or None."""
    for key, kind in KINDS.items():
        v = ck.get(key)
        if v is not None and (not isinstance(v, kind) or (kind is int and isinstance(v, bool))):
            return f"{key} is not a {kind.__name__}"
    if ck.get("step", 0) < 0:
        return "step is negative"
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ck["model"].items()):
        return "its weights are not named tensors"
    return None


def _torn(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} is corrupt or incomplete and was not loaded ({type(e).__name__}); "
        "other checkpoints in its folder are untouched"
    )


def model_config(ck: dict, path: str | Path) -> ModelConfig:
    """The checkpoint's model config, checked as a flag would be; and its token embedding
    must have the shape the config says, before any model is built from it."""
    d = ck.get("model_config")
    if not isinstance(d, dict):
        raise CheckpointError(f"{path} has no model config (a dict), so it cannot be used")
    try:
        cfg = from_dict(ModelConfig, d)
    except (TypeError, ValueError, WordGPTError) as e:
        raise CheckpointError(f"{path} has a model config that does not work: {e}") from None
    wte = ck["model"].get("wte.weight") if isinstance(ck.get("model"), dict) else None
    if not isinstance(wte, torch.Tensor) or tuple(wte.shape) != (cfg.vocab_size, cfg.n_embd):
        raise CheckpointError(
            f"{path} has weights that do not fit its config (the token embedding is not "
            f"{cfg.vocab_size} x {cfg.n_embd})"
        )
    return cfg


def load_weights(model: torch.nn.Module, ck: dict, path: str | Path) -> None:
    """Load the checkpoint's weights; weights that do not fit its config are one clear error."""
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        msg = " ".join(str(e).split())[:200]
        raise CheckpointError(f"{path} has weights that do not fit its config: {msg}") from None


def tokenizer(ck: dict, path: str | Path) -> Tokenizer:
    try:
        return tokenizer_from_dict(json.loads(ck["tokenizer"]))
    except (TypeError, ValueError, KeyError, WordGPTError) as e:
        raise CheckpointError(f"{path} has a tokenizer that cannot be read: {e}") from None


def check_tokenizer(ck: dict, tok: Tokenizer, path: str | Path, other: str) -> None:
    """Refuse a checkpoint whose vocabulary is not ``tok``'s (``other`` names where tok is)."""
    if not same_vocabulary(ck.get("tokenizer"), tok):
        raise CheckpointError(
            f"{path} was trained on another vocabulary than {other}; "
            "use the data folder the run was trained on"
        )
