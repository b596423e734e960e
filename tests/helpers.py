"""Helpers shared by test files and by the DDP script that torchrun starts."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from wordgpt.config import ModelConfig, TrainConfig
from wordgpt.corpus.tokenfiles import load_meta, load_split
from wordgpt.model.gpt import GPT
from wordgpt.presets import NOTEBOOK_MODEL
from wordgpt.settings import with_settings
from wordgpt.training.batches import get_rows, random_offsets
from wordgpt.training.budget import Budget
from wordgpt.training.distributed import Dist
from wordgpt.training.trainer import Trainer

STRICT = os.environ.get("WORDGPT_STRICT") == "1"
"""Set by .ci/run: a test that would be skipped for a missing extra or browser fails."""

ROOT = Path(__file__).resolve().parent.parent
USER_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
"""The pages a user reads for how to use wordgpt: their commands must parse, their links lead
somewhere."""


def need(module: str):
    """``module`` imported; without it the test is skipped with the reason, or, under
    WORDGPT_STRICT=1, fails: CI proves every extra works, it never skips one silently."""
    if STRICT:
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is missing: pip install -e '.[dev]'")


def skip_unless(ok: bool, reason: str):
    """Skip the test when ``ok`` is false, with the reason; under WORDGPT_STRICT=1 it runs
    anyway, and fails on what is missing."""
    return pytest.mark.skipif(not ok and not STRICT, reason=reason)


def examples(n: int) -> int:
    """``n`` hypothesis examples, ten times as many under ``make fuzz`` (the random profile)."""
    return n * 10 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else n


TINY_MODEL = {**NOTEBOOK_MODEL, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32,
              "dropout": 0.0}  # fmt: skip
"""The model of the trainer tests: 2 layers x 32, block 16, the original notebook's parts."""
TINY_TRAIN = {
    "batch_size": 8,
    "lr": 3e-3,
    "warmup": 0.0,
    "decay": "cosine",
    "max_iters": 50,
    "time_budget": None,
    "epochs": None,
    "eval_iters": 4,
}


def tiny_configs(vocab_size: int, model_kw=None, **train_kw) -> tuple[ModelConfig, TrainConfig]:
    """TINY_MODEL and TINY_TRAIN with changes (any field, TrainConfig's parts included)."""
    model = ModelConfig(vocab_size=vocab_size, **{**TINY_MODEL, **(model_kw or {})})
    return with_settings(model, TrainConfig(), {**TINY_TRAIN, **train_kw})


def tiny_gpt(vocab_size: int, block_size: int) -> GPT:
    """A seeded (0) untrained GPT, 2 layers x 32 wide, no dropout, in eval mode: what the
    evaluation tests score and adapt."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2,
                      n_embd=32, dropout=0.0)  # fmt: skip
    return GPT(cfg).eval()


def get_batch(data, batch_size: int, block_size: int, generator):
    """``(x, y)`` of shape ``(batch_size, block_size)`` from random offsets, y shifted by one
    (nanoGPT's ``get_batch``, as the trainer's batches draw them)."""
    return get_rows(data, random_offsets(len(data), block_size, batch_size, generator), block_size)


def make_trainer(data_dir, clock=None, model_kw=None, dist=None, **train_kw) -> Trainer:
    """A tiny model (2 x 32, block 16) and its Trainer on the CPU, fp32, seeded."""
    V = load_meta(data_dir)["vocab_size"]
    torch.manual_seed(0)
    cfg, tcfg = tiny_configs(V, model_kw, **train_kw)
    budget = Budget(tcfg.stop.time_budget, **({"clock": clock} if clock else {}))
    return Trainer(
        GPT(cfg),
        tcfg,
        load_split(data_dir, "train"),
        load_split(data_dir, "val"),
        torch.device("cpu"),
        None,
        dist or Dist(),
        budget,
    )


class Records:
    """A stand-in for a run's writer in :func:`wordgpt.training.train.fit`: it keeps every
    evaluation, and calls ``fn`` with each."""

    def __init__(self, fn=None):
        self.evals: list = []
        self.fn = fn
        self.saved = 0

    def on_eval(self, e) -> None:
        self.evals.append(e)
        if self.fn is not None:
            self.fn(e)

    def save_last(self) -> None:
        self.saved += 1


class OnStep:
    """A stand-in for the loop's progress bar: ``fn`` gets every step's result."""

    def __init__(self, fn):
        self.update = fn

    def close(self) -> None:
        pass


class FakeClock:
    """Every read moves time on by ``tick`` seconds; a train step reads it twice, so each
    step lasts one tick. Binary fractions (0.125, 0.5) keep the sums exact."""

    def __init__(self, tick: float):
        self.t, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t


def load_benchmark(name: str):
    """``benchmarks/NAME.py`` imported as the module ``NAME`` (its own ``from common import``
    finds the file beside it; the search path is restored after)."""
    import sys

    folder = str(ROOT / "benchmarks")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)


def cli(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    """``wordgpt ARGS...`` in a fresh process, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "wordgpt.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


FAST = {"dtype": "fp32", "progress": False, "tensorboard": False, "report": False}
"""The settings of a quick tiny run in a test: fp32 (no dtype probe), no bar, no TensorBoard,
no report."""


def train_cli(data, out, *extra, **kw) -> subprocess.CompletedProcess:
    """``wordgpt train`` of the tiny preset on DATA into OUT (fp32, quiet), with ``extra``
    flags, in a fresh process."""
    return cli("train", "--data", data, "--out", out, "--preset", "tiny", "--dtype", "fp32",
               "--no-progress", "--no-tensorboard", *extra, **kw)  # fmt: skip


def run_main(argv: list, capsys) -> subprocess.CompletedProcess:
    """``wordgpt ARGV`` in this process (:func:`wordgpt.cli.main`), its exit code and output
    as a finished process's (``capsys`` captures them)."""
    from wordgpt.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out.out, out.err)


def start_training(data, out, *flags, output: bool = False) -> subprocess.Popen:
    """``wordgpt train --data DATA --out OUT FLAGS...`` in the background: its output
    captured as text with ``output`` (read it with ``communicate``), else dropped."""
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "wordgpt.cli", "train", "--data", str(data), "--out", str(out),
         *map(str, flags)],
        stdout=pipe, stderr=pipe, text=True,
    )  # fmt: skip


def wait_for(condition, timeout: float = 120.0) -> None:
    """Poll ``condition`` until it holds: tests wait for an observable event, not a time."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.01)


def one_line_error(r: subprocess.CompletedProcess, code: int = 2) -> str:
    """The one ``error:`` line a failed command must print (exit ``code``, no traceback)."""
    assert r.returncode == code, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.endswith("\n"), r.stderr  # the line is whole: the prompt starts below it
    assert "Traceback" not in r.stderr
    return r.stderr


def snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (to compare a folder before and after)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
