"""A report for every run: one self-contained page (``RUN/report.html``: no CDN, no script
from anywhere, it opens from disk) and its markdown twin (``RUN/report.md``) that say what the
run was and what it did: data, model, training, curves, evaluation, samples with their
copied spans marked, the machine and the versions. Written when training ends and by
``wordgpt report RUN``. Every figure is also in a JSON block of the page
(``<script type="application/json" id="report-data">``), so tools can read them back.
"""

from __future__ import annotations

import contextlib
import html
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..fileio import atomic_write, read_json_object
from ..model.sampling import SHOWCASE
from ..runs.folder import RunDir
from ..runs.metrics import read_metrics
from ..version import package_version
from .copies import copy_figures
from .evaluate import OutOfTimeError
from .loaded import Model, load

SAMPLES = 3


def machine() -> dict:
    """The CPU (model, cores), memory, GPU and versions this report was made with."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gb": round(mem, 1),
        "gpu": gpu,
        "wordgpt": package_version(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def gather(m: Model, deadline: float | None = None) -> dict:
    """Every figure of the report, from the run folder, its data folder, an evaluation of
    the whole val split and three seeded samples. With a ``deadline`` (a
    ``time.perf_counter()`` reading: a time budget's end) the parts that would not end by
    then are left out, and ``left_out`` names them."""

    def in_time(seconds: float = 0.0) -> bool:
        return deadline is None or time.perf_counter() + seconds < deadline

    run = m.run_dir
    cfg, summary = read_json_object(run / "config.json"), read_json_object(run / "summary.json")
    if state := training_state(run, summary):  # summary.json tells of an earlier training
        kept = ("params", "flops_per_token", "device", "dtype", "preset", "recipe", "init_from")
        summary = {**{k: summary.get(k) for k in kept}, **state}
    data_dir = Path(m.config.get("data_dir") or "")
    meta = read_json_object(data_dir / "meta.json")
    ev, left_out, samples = None, [], []
    if meta:
        with contextlib.suppress(OutOfTimeError):  # it would not end by the deadline
            ev = (
                m.evaluate("val", progress=True, deadline=deadline).to_dict() if in_time() else None
            )
        if ev is None:
            left_out.append("the whole val split's evaluation")
    began = time.perf_counter()
    for seed in range(1, SAMPLES + 1):
        if not in_time((time.perf_counter() - began) / max(len(samples), 1)):
            left_out.append(f"samples {seed}-{SAMPLES}")
            break
        g = m.generate("", replace(SHOWCASE, seed=seed))
        found = g.copies.to_dict() if g.copies is not None else None
        samples.append({"seed": seed, "text": g.text, "copies": found})
    copies = None
    if meta and in_time(2 * (time.perf_counter() - began) * SAMPLES / max(len(samples), 1)):
        copies = copy_figures(m, samples=SAMPLES, tokens=SHOWCASE.max_new_tokens)
    elif meta:
        left_out.append("the copy figures")
    return {
        "run": str(run),
        "data": {
            "folder": str(data_dir),
            "sources": meta.get("sources", []),
            "tokenizer": meta.get("tokenizer"),
            "vocab_size": meta.get("vocab_size"),
            "splits": meta.get("splits"),
            "split_rule": meta.get("split"),
            "tokenizer_from": meta.get("tokenizer_from"),
        },
        "model": {
            **cfg.get("model", {}),
            "params": m.gpt.num_params(),  # every member's, for an ensemble
            "members": len(getattr(m.gpt, "members", [m.gpt])),
            "flops_per_token": summary.get("flops_per_token"),
        },  # fmt: skip
        "training": {**summary, "preset": cfg.get("preset"), "train_config": cfg.get("train")},
        "metrics": read_metrics(run / "metrics.csv", quiet=True),
        "evaluation": ev,
        "samples": samples,
        "samples_mixed": m.partner.describe() if SHOWCASE.ngram and m.partner else None,
        "copies": copies,
        "machine": machine(),
        "left_out": left_out,
    }


def training_state(run: Path, summary: dict) -> dict:
    """What summary.json cannot say: that the run is training now (its latest step and time,
    from metrics.csv), or that its latest training ended without writing a summary (killed):
    summary.json then tells of an earlier one."""
    rows = read_metrics(run / "metrics.csv", quiet=True)
    last = rows[-1] if rows else {}
    now = {
        "step": int(last.get("step", 0)),
        "elapsed_s": float(last.get("elapsed_s", 0)),
        "tokens": int(last.get("tokens", 0)),
        "best_val": min((float(r["val_loss"]) for r in rows), default=None),
    }
    if (pid := RunDir(run).training_pid()) is not None:
        return {**now, "stopped": None, "running": pid}
    if rows and summary and int(summary.get("step", -1)) < now["step"]:
        return {**now, "stopped": "interrupted (its latest training wrote no summary)"}
    return {}


def write_report(
    run: str | Path | Model, which: str = "best", deadline: float | None = None
) -> tuple[Path, Path]:
    """Write RUN/report.html and RUN/report.md of a run folder (its ``which`` checkpoint,
    read on the CPU) or of a run already loaded; returns their paths. With a ``deadline``
    (see :func:`gather`) what would not end by then is left out, and the report says so."""
    from .report_page import markdown, page

    m = run if isinstance(run, Model) else load(run, which, device="cpu")
    r = gather(m, deadline)
    run = m.run_dir
    atomic_write(run / "report.html", page(r))
    atomic_write(run / "report.md", markdown(r))
    return run / "report.html", run / "report.md"


def esc(v) -> str:
    return html.escape(str(v))
