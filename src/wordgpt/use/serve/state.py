"""What the server knows: its limits, the runs under RUNS_DIR, the models it has loaded, and
the generations running and finished."""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from ...corpus.tokenfiles import meta_problem, split_bits_per_char
from ...fileio import read_json_object
from ...runs.folder import dataset_names
from ...runs.metrics import parse_metrics
from ...serve_config import ServeConfig

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


def run_file(run: Path, name: str) -> Path | None:
    """A file of a run folder, if it is a plain file there: never a link (which could point
    anywhere), never a path that leaves the folder."""
    p = run / name
    if p.is_symlink() or not p.is_file() or p.resolve().parent != run.resolve():
        return None
    return p


def read_json(path: Path) -> dict:
    return read_json_object(run_file(path.parent, path.name))


def run_metrics(path: Path) -> list[dict]:
    p = run_file(path, "metrics.csv")
    try:
        return parse_metrics(p.read_text(encoding="utf-8"))[0] if p else []
    except (OSError, UnicodeDecodeError):
        return []


def vectors_of(path: Path) -> Path | None:
    """Word vectors kept in a run folder: a wordgpt ``.npz`` file there (never a pickle,
    never a path that config.json names)."""
    found = [run_file(path, p.name) for p in sorted(path.glob("*.npz"))]
    return next((p for p in found if p is not None), None)


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def _number(v) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def run_meta(cfg: dict) -> dict:
    """The meta.json of the data folder a run's config names, if it reads as one."""
    where = cfg.get("data_dir")
    meta = read_json(Path(where) / "meta.json") if isinstance(where, str) and where else {}
    return meta if meta and meta_problem(meta) is None else {}


def run_summary(name: str, path: Path) -> dict[str, Any]:
    """What the runs list shows: data set, tokenizer, size, steps, best val loss, bits/char
    (measured by ``wordgpt eval`` when known, else estimated from the val loss). Whatever
    the files hold, this never fails: what cannot be read shows as unknown."""
    cfg, summary = read_json(path / "config.json"), read_json(path / "summary.json")
    evaluation, meta, rows = read_json(path / "eval.json"), run_meta(cfg), run_metrics(path)
    data_cfg, model = _dict(cfg.get("data")), _dict(cfg.get("model"))
    best = _number(summary.get("best_val"))
    if best is None and rows:
        best = min(float(r["val_loss"]) for r in rows)
    # eval's headline (the GPT with its partner when it has one), the GPT alone beside it
    gpt_alone = _number(evaluation.get("bits_per_char"))
    mixed = _dict(evaluation.get("ngram")).get("bits_per_char")
    bpc, exact = _number(mixed) if mixed is not None else gpt_alone, True
    if bpc is None and best is not None and meta:
        bpc, exact = split_bits_per_char(meta["splits"]["val"], best), False
    steps = summary.get("step") if isinstance(summary.get("step"), int) else None
    return {
        "name": name,
        "dataset": dataset_names(data_cfg),
        "tokenizer": f"{data_cfg.get('tokenizer', '?')}"
        + ("-sp" if data_cfg.get("space_prefix") else ""),
        "preset": cfg.get("preset") if isinstance(cfg.get("preset"), str) else None,
        "params": summary.get("params") if isinstance(summary.get("params"), int) else None,
        "shape": f"{model.get('n_layer', '?')} x {model.get('n_embd', '?')}",
        "steps": steps if steps is not None else int(rows[-1]["step"]) if rows else 0,
        "best_val_loss": best,
        "val_bits_per_char": bpc if bpc is None or math.isfinite(bpc) else None,
        "bpc_measured": exact and bpc is not None,
        "gpt_bits_per_char": gpt_alone if mixed is not None else None,
        "val_unk_share": _number(meta.get("splits", {}).get("val", {}).get("unk_share", 0.0))
        if meta
        else None,
        "stopped": summary.get("stopped", "running or stopped early" if rows else None),
        "has_vectors": vectors_of(path) is not None,
        "has_report": run_file(path, "report.html") is not None,
    }


def run_curves(path: Path) -> list[dict]:
    """The run's metrics rows, each with its val loss as bits per character of the val split
    (the one formula every figure uses), for curves of several runs side by side."""
    rows = run_metrics(path)
    val = run_meta(read_json(path / "config.json")).get("splits", {}).get("val")
    for r in rows:
        r["val_bits_per_char"] = split_bits_per_char(val, float(r["val_loss"])) if val else None
    return rows


# ------------------------------------------------------------------------ models


@dataclass
class _Loaded:
    model: Any
    stamp: tuple


@dataclass
class ModelCache:
    """Runs loaded once, again when their checkpoint file changes, at most ``size`` at once
    (the one used longest ago is let go first). Each run has its own lock: loading a large
    run never holds up generation from the others."""

    size: int = 4
    entries: OrderedDict[str, _Loaded] = field(default_factory=OrderedDict)
    locks: dict[str, threading.Lock] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards ``locks`` and the order of ``entries``."""

    def get(self, name: str, path: Path):
        """The run's model as ``wordgpt sample RUN`` loads it: its best.pt (or last.pt) and
        its further members, averaged (plain files of its folder only, never a link, which
        could point at a model anywhere); loaded again when one of them changes."""
        from ...runs.members import member_checkpoints
        from ..loaded import load

        ck = run_file(path, "best.pt") or run_file(path, "last.pt")
        if ck is None:
            raise HTTPException(
                404, "this run has no checkpoint that may be read (a link is never followed)"
            )
        files = [ck, *(member_checkpoints(path) if ck.name == "best.pt" else [])]
        partner = run_file(path, "partner.json")
        stamp = tuple((f.stat().st_mtime_ns, f.stat().st_size)
                      for f in [*files, *([partner] if partner else [])])  # fmt: skip
        with self.lock:
            run_lock = self.locks.setdefault(name, threading.Lock())
        with run_lock:
            with self.lock:
                hit = self.entries.get(name)
            if hit is None or hit.stamp != stamp:
                hit = _Loaded(load(path, ck.stem, device="cpu"), stamp)
            with self.lock:
                self.entries[name] = hit
                self.entries.move_to_end(name)
                while len(self.entries) > self.size:
                    self.entries.popitem(last=False)
            return hit.model


# ------------------------------------------------------------------------ the state


class ServeState:
    """The server's one object: its config, the generation slots, the model cache, and the
    generations that finished (for /api/health)."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.slots = threading.Semaphore(cfg.max_active)
        self.cache = ModelCache(cfg.max_models)
        self.active = 0
        self.finished: deque = deque(maxlen=50)
        self._words: dict[tuple, Any] = {}
        self._words_lock = threading.Lock()

    def words(self, name: str, source: str):
        """The run's words from ``source`` (its token embeddings, or the vectors in its
        folder), made once per checkpoint; their map is made on first use."""
        from ..words import run_words

        path = self.run_path(name)
        m = self.cache.get(name, path)
        key = (name, source, id(m))  # a changed checkpoint is a new model: new words
        with self._words_lock:
            if key not in self._words:
                for old in [k for k in self._words if k[:2] == key[:2]]:
                    del self._words[old]  # an older checkpoint's
                self._words[key] = run_words(m, source, path, vectors_of(path))
            return self._words[key]

    def runs(self) -> dict[str, Path]:
        return find_runs(self.cfg.runs_dir)

    def run_path(self, name: str) -> Path:
        found = self.runs()
        if name not in found:  # only names from the listing: no path can escape RUNS_DIR
            raise HTTPException(404, f"no run named {name!r} in {self.cfg.runs_dir}")
        return found[name]

    def take_slot(self) -> None:
        """A slot for a costly request (a generation, samples, nearest words, a map), or a
        503 "busy" at once (never a queue)."""
        if not self.slots.acquire(blocking=False):
            raise HTTPException(
                503, f"busy: {self.cfg.max_active} requests are running; try again in a moment"
            )
        self.active += 1

    def release_slot(self, record: dict | None = None) -> None:
        self.active -= 1
        if record is not None:
            self.finished.append(record)
        self.slots.release()

    @contextlib.asynccontextmanager
    async def slot(self):
        """A slot held for the body of an ``async with``, released whatever happens."""
        self.take_slot()
        try:
            yield
        finally:
            self.release_slot()
