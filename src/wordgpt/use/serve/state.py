"""What the server knows: its limits, the runs under RUNS_DIR, the models it has loaded, and
the generations running and finished."""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from ...corpus.tokenfiles import split_bits_per_char
from ...runs.metrics import parse_metrics


@dataclass
class ServeConfig:
    """The server's limits."""

    runs_dir: Path
    max_new_tokens: int = 1000
    """The most tokens one request may ask for."""
    max_prompt_chars: int = 2000
    """The longest prompt accepted."""
    time_limit_s: float = 60.0
    """A generation stops after this many seconds."""
    max_active: int = 2
    """Generations running at once; one more gets a 503 "busy"."""
    token_delay_s: float = 0.0
    """A pause after each token (for demonstrations and the browser test)."""


# ------------------------------------------------------------------------ runs


def find_runs(runs_dir: Path) -> dict[str, Path]:
    """The runs under ``runs_dir`` by name: its sub-folders holding a checkpoint (or the
    folder itself when it is a run). A link is followed only if it stays inside."""
    root = runs_dir.resolve()
    found = {}
    candidates = [runs_dir] if _is_run(runs_dir) else sorted(p for p in runs_dir.iterdir())
    for p in candidates:
        try:
            real = p.resolve()
        except OSError:
            continue
        if (real == root or root in real.parents) and _is_run(real):
            found[p.name] = real
    return found


def _is_run(p: Path) -> bool:
    return p.is_dir() and ((p / "best.pt").is_file() or (p / "last.pt").is_file())


def read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def run_metrics(path: Path) -> list[dict]:
    try:
        return parse_metrics((path / "metrics.csv").read_text(encoding="utf-8"))[0]
    except OSError:
        return []


def vectors_of(path: Path) -> Path | None:
    """Word vectors of a run: the ones its embedding was initialised from, or a .kv file in it."""
    cfg = read_json(path / "config.json")
    init = cfg.get("train", {}).get("init_embeddings")
    if init and Path(init).is_file():
        return Path(init)
    local = sorted(path.glob("*.kv"))
    return local[0] if local else None


def run_summary(name: str, path: Path) -> dict[str, Any]:
    """What the runs list shows: data set, tokenizer, size, steps, best val loss, bits/char
    (measured by ``wordgpt eval`` when known, else estimated from the val loss)."""
    cfg = read_json(path / "config.json")
    summary = read_json(path / "summary.json")
    evaluation = read_json(path / "eval.json")
    meta = read_json(Path(cfg.get("data_dir", "")) / "meta.json") if cfg.get("data_dir") else {}
    rows = run_metrics(path)
    data_cfg = cfg.get("data", {})
    best = summary.get("best_val")
    if best is None and rows:
        best = min(float(r["val_loss"]) for r in rows)
    bpc, exact = evaluation.get("bits_per_char"), True
    if bpc is None and best is not None and meta.get("splits"):
        bpc, exact = split_bits_per_char(meta["splits"]["val"], best), False
    model = cfg.get("model", {})
    datasets = data_cfg.get("dataset", "?")
    datasets = datasets if isinstance(datasets, list) else [datasets]
    return {
        "name": name,
        "dataset": ", ".join(Path(d).name for d in datasets),
        "tokenizer": (
            data_cfg.get("tokenizer", "?") + ("-sp" if data_cfg.get("space_prefix") else "")
        ),
        "preset": cfg.get("preset"),
        "params": summary.get("params"),
        "shape": f"{model.get('n_layer', '?')} x {model.get('n_embd', '?')}",
        "steps": summary.get("step", int(rows[-1]["step"]) if rows else 0),
        "best_val_loss": best,
        "val_bits_per_char": bpc if bpc is None or math.isfinite(bpc) else None,
        "bpc_measured": exact and bpc is not None,
        "stopped": summary.get("stopped", "running or stopped early" if rows else None),
        "has_vectors": vectors_of(path) is not None,
    }


# ------------------------------------------------------------------------ models


@dataclass
class _Loaded:
    model: Any
    stamp: tuple[int, int]


@dataclass
class ModelCache:
    """Runs loaded once, again when their checkpoint file changes."""

    entries: dict[str, _Loaded] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str, path: Path):
        from ..loaded import checkpoint_path, load

        ck = checkpoint_path(path, "best")
        st = ck.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        with self.lock:
            hit = self.entries.get(name)
            if hit is None or hit.stamp != stamp:
                hit = _Loaded(load(path, "best", device="cpu"), stamp)
                self.entries[name] = hit
            return hit.model


# ------------------------------------------------------------------------ the state


class ServeState:
    """The server's one object: its config, the generation slots, the model cache, and the
    generations that finished (for /api/health)."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.slots = threading.Semaphore(cfg.max_active)
        self.cache = ModelCache()
        self.active = 0
        self.finished: deque = deque(maxlen=50)

    def runs(self) -> dict[str, Path]:
        return find_runs(self.cfg.runs_dir)

    def run_path(self, name: str) -> Path:
        found = self.runs()
        if name not in found:  # only names from the listing: no path can escape RUNS_DIR
            raise HTTPException(404, f"no run named {name!r} in {self.cfg.runs_dir}")
        return found[name]

    def take_slot(self) -> None:
        """A generation slot, or a 503 "busy" at once (never a queue)."""
        if not self.slots.acquire(blocking=False):
            raise HTTPException(
                503, f"busy: {self.cfg.max_active} generations are running; try again in a moment"
            )
        self.active += 1

    def release_slot(self, record: dict | None = None) -> None:
        self.active -= 1
        if record is not None:
            self.finished.append(record)
        self.slots.release()
