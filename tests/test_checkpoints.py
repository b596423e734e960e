"""Checkpoints never lose a run: best.pt only on a strictly better val loss across resumes,
non-finite weights never written (a diverging run stops with exit 3), metrics.csv repaired,
a full disk and a kill -9 at random moments leave the previous checkpoints whole."""

from __future__ import annotations

import json
import math
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from wordgpt.cli.flags import json_line
from wordgpt.errors import CheckpointError, WordGPTError
from wordgpt.runs import checkpoint
from wordgpt.use.train_run import train

from .helpers import FAST, cli, one_line_error, train_cli


def test_best_pt_changes_only_on_a_strictly_better_val_loss_across_resumes(word_data, trained):
    """A resumed run whose next evaluation is worse must not replace best.pt: last.pt is made
    worse on purpose (noise on every weight), then resumed for one step."""
    best = checkpoint.read(trained / "best.pt")
    assert best["step"] == 40
    ck = checkpoint.read(trained / "last.pt", resume=True)
    g = torch.Generator().manual_seed(0)
    ck["model"] = {k: v + 0.5 * torch.randn(v.shape, generator=g) for k, v in ck["model"].items()}
    checkpoint.save({k: v for k, v in ck.items() if k != "format"}, trained / "last.pt")
    r = train(word_data, trained, resume=True, max_iters=41)
    last = checkpoint.read(trained / "last.pt")
    assert last["step"] == 41 and last["last_val"] > best["best_val"]
    assert checkpoint.read(trained / "best.pt")["step"] == 40  # not the worse resumed model
    assert r.best_val == best["best_val"] == last["best_val"]  # the true best is reported


@pytest.mark.slow
def test_divergence_stops_with_exit_code_3_and_never_saves_non_finite_weights(word_data, tmp_path):
    run = tmp_path / "run"
    r = train_cli(
        word_data,
        run,
        "--lr",
        "1e6",
        "--grad-clip",
        "0",
        "--warmup",
        "0",
        "--max-iters",
        "200",
        "--eval-interval",
        "1",
        "--max-bad-steps",
        "3",
    )
    err = one_line_error(r, code=3)
    assert "training diverged" in err
    for name in ("last.pt", "best.pt"):
        ck = checkpoint.read(run / name)
        assert not checkpoint.non_finite(ck["model"])
    assert json.loads((run / "summary.json").read_text())["stopped"] == "diverged"
    s = cli("sample", run, "--checkpoint", "last", "--max-new-tokens", "5", "--seed", "1")
    assert s.returncode == 0, s.stderr
    e = cli("eval", run, "--checkpoint", "last", "--json")
    assert e.returncode == 0 and json.loads(e.stdout)["step"] >= 0


def test_eval_json_is_valid_json_even_for_non_finite_numbers():
    line = json_line({"loss": math.nan, "perplexity": math.inf, "step": 3})
    assert json.loads(line) == {"loss": None, "perplexity": None, "step": 3}


def test_a_checkpoint_with_non_finite_weights_is_never_written(tmp_path):
    with pytest.raises(CheckpointError, match="not finite"):
        checkpoint.save({"model": {"w": torch.tensor([1.0, math.nan])}}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_torn_metrics_csv_is_repaired_on_resume(word_data, trained):
    path = trained / "metrics.csv"
    text = path.read_text()
    path.write_text(text[: len(text) - 9])  # the last row torn in the middle
    r = train_cli(word_data, trained, "--resume", "--max-iters", "50")
    assert r.returncode == 0, r.stderr
    assert "dropped 1 damaged row" in r.stderr and f"{trained}/metrics.csv" in r.stderr
    steps = [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]
    assert steps == [0, 10, 20, 30, 50]  # the torn row of step 40 is gone, the rest kept
    assert (trained / "loss.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_deleted_metrics_csv_before_resume_is_said(word_data, trained):
    (trained / "metrics.csv").unlink()
    r = train_cli(word_data, trained, "--resume", "--max-iters", "50")
    assert r.returncode == 0, r.stderr
    assert f"{trained}/metrics.csv is missing or empty" in r.stderr
    steps = [
        int(line.split(",")[0]) for line in (trained / "metrics.csv").read_text().splitlines()[1:]
    ]
    assert steps == [50]  # the curve starts again at the resume, and says so


def test_eval_names_the_checkpoint_it_read_when_best_pt_is_missing(trained):
    last = checkpoint.read(trained / "last.pt")["step"]
    best = checkpoint.read(trained / "best.pt")["step"]
    (trained / "best.pt").unlink()
    r = cli("eval", trained, "--json")
    assert r.returncode == 0, r.stderr
    assert f"no best.pt yet; reading last.pt (step {last})" in r.stderr
    record = json.loads(r.stdout)
    assert record["checkpoint"] == "last.pt" and record["step"] == last
    assert best <= last


@pytest.mark.slow
def test_disk_full_is_one_line_and_keeps_the_previous_checkpoints(word_data, trained):
    """A file-size limit (RLIMIT_FSIZE, no root needed) smaller than a checkpoint."""
    size = (trained / "last.pt").stat().st_size
    before = (trained / "last.pt").read_bytes()

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    r = cli(
        "train",
        "--data",
        word_data,
        "--out",
        trained,
        "--resume",
        "--max-iters",
        "50",
        "--no-progress",
        preexec_fn=limit,
    )
    err = one_line_error(r)
    assert "disk full" in err and str(trained) in err and "needs about" in err
    assert (trained / "last.pt").read_bytes() == before
    assert checkpoint.read(trained / "best.pt")["step"] == 40
    assert not list(trained.glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.slow
def test_kill_9_at_random_moments_never_loses_a_checkpoint(word_data, tmp_path):
    """Kill a training (evaluating and saving at every step, so most kills land inside a
    save) at random moments, six times; every time both checkpoints load and --resume
    goes on from where last.pt was."""
    run, rng = tmp_path / "run", random.Random(0)
    args = [
        "train",
        "--data",
        str(word_data),
        "--out",
        str(run),
        "--preset",
        "tiny",
        "--max-iters",
        "100000",
        "--eval-interval",
        "1",
        "--dtype",
        "fp32",
        "--no-progress",
        "--no-tensorboard",
    ]
    steps = []
    for i in range(6):
        p = subprocess.Popen(
            [sys.executable, "-m", "wordgpt.cli", *args, *(["--resume"] if i else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 60
        start = checkpoint.read(run / "last.pt")["step"] if i else -1
        while time.time() < deadline:
            time.sleep(0.05)
            if (run / "last.pt").exists() and _step(run) > start:
                break
        time.sleep(rng.uniform(0.0, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        for name in ("last.pt", "best.pt"):
            checkpoint.read(run / name)  # never torn
        steps.append(checkpoint.read(run / "last.pt")["step"])
    assert steps == sorted(steps) and steps[-1] > steps[0]
    r = cli(*args[:-4], "--resume", "--max-iters", str(steps[-1] + 3), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert checkpoint.read(run / "last.pt")["step"] == steps[-1] + 3
    assert not list(run.glob(".*.tmp"))


def _step(run: Path) -> int:
    try:
        return checkpoint.read(run / "last.pt")["step"]
    except Exception:
        return -1


def test_a_torn_checkpoint_is_refused_and_the_previous_one_still_loads(word_data, tmp_path):
    train(word_data, tmp_path, preset="tiny", max_iters=20, eval_interval=10, **FAST)
    good = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt or incomplete"):
        checkpoint.read(tmp_path / "last.pt")
    assert checkpoint.read(tmp_path / "best.pt")["step"] > 0
    with pytest.raises(CheckpointError):
        train(word_data, tmp_path, resume=True, **FAST)


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    payload = {"model": {}, "model_config": {}, "tokenizer": "{}"}
    checkpoint.save({**payload, "step": 1}, path)

    def explode(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(WordGPTError, match="disk full"):
        checkpoint.save({**payload, "step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.read(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_foreign_file_is_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a wordgpt checkpoint"):
        checkpoint.read(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.read(tmp_path / "none.pt")
