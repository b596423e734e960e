"""Never lose a run, and bad input is one line: existing run folders, best.pt across resumes,
two trainings at once, divergence, atomic files and repairs, locks, a kill -9 at random
moments, a full disk, and the one error line of every kind of bad option."""

from __future__ import annotations

import builtins
import io
import json
import math
import os
import random
import re
import resource
import shutil
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
from wordgpt.runs.folder import RunDir
from wordgpt.training.train import train

from .helpers import cli, one_line_error, snapshot, start_training, wait_for

FAST = {"dtype": "fp32", "progress": False, "tensorboard": False, "report": False}
TEMP = re.compile(r"\..+\.\d+\.tmp")
QUIET: dict = {}  # FAST says report=False


def train_cli(data, out, *extra, **kw):
    return cli(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--preset",
        "tiny",
        "--dtype",
        "fp32",
        "--no-progress",
        "--no-tensorboard",
        *extra,
        **kw,
    )


@pytest.fixture
def trained(word_data, tmp_path):
    """A run of 40 steps (val loss falling), evaluated every 10."""
    run = tmp_path / "run"
    train(word_data, run, preset="tiny", max_iters=40, eval_interval=10, **FAST, **QUIET)
    return run


# ------------------------------------------------------------------ existing run folders


def test_train_into_an_existing_run_is_refused_and_overwrite_moves_it_aside(word_data, trained):
    before = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    err = one_line_error(train_cli(word_data, trained, "--max-iters", "5"))
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    # a command that also fails validation writes nothing either
    one_line_error(train_cli(word_data, trained, "--n-embd", "30", "--n-head", "4"))
    after = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    assert after == before  # config.json, tokenizer.json, checkpoints: untouched
    r = train_cli(word_data, trained, "--max-iters", "5", "--overwrite")
    assert r.returncode == 0, r.stderr
    old = [p for p in trained.parent.iterdir() if p.name.startswith("run.old-")]
    assert len(old) == 1 and (old[0] / "last.pt").read_bytes() == before["last.pt"]
    assert checkpoint.read(trained / "last.pt")["step"] == 5


def test_resume_and_overwrite_together_are_refused(word_data, trained):
    one_line_error(train_cli(word_data, trained, "--resume", "--overwrite"))


# ------------------------------------------------------------------ best.pt across resumes


def test_best_pt_changes_only_on_a_strictly_better_val_loss_across_resumes(word_data, trained):
    """A resumed run whose next evaluation is worse must not replace best.pt: last.pt is made
    worse on purpose (noise on every weight), then resumed for one step."""
    best = checkpoint.read(trained / "best.pt")
    assert best["step"] == 40
    ck = checkpoint.read(trained / "last.pt", resume=True)
    g = torch.Generator().manual_seed(0)
    ck["model"] = {k: v + 0.5 * torch.randn(v.shape, generator=g) for k, v in ck["model"].items()}
    checkpoint.save({k: v for k, v in ck.items() if k != "format"}, trained / "last.pt")
    r = train(word_data, trained, resume=True, max_iters=41, **QUIET)
    last = checkpoint.read(trained / "last.pt")
    assert last["step"] == 41 and last["last_val"] > best["best_val"]
    assert checkpoint.read(trained / "best.pt")["step"] == 40  # not the worse resumed model
    assert r.best_val == best["best_val"] == last["best_val"]  # the true best is reported


# ------------------------------------------------------------------ two trainings at once


def test_a_second_training_on_the_same_folder_is_refused_naming_the_pid(word_data, tmp_path):
    run = tmp_path / "run"
    first = start_training(
        word_data,
        run,
        "--preset",
        "tiny",
        "--max-iters",
        "100000",
        "--dtype",
        "fp32",
        "--no-progress",
        "--no-tensorboard",
    )
    try:
        wait_for(lambda: (run / "last.pt").exists())
        for extra in (["--resume"], ["--overwrite"]):
            err = one_line_error(train_cli(word_data, run, *extra))
            assert f"in use by another training (pid {first.pid})" in err
        rows = (run / "metrics.csv").read_text().splitlines()
        assert rows[0].startswith("step,") and all(r.split(",")[0].isdigit() for r in rows[1:])
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    assert first.returncode == 143  # stopped by SIGTERM (128 + 15), last.pt saved
    r = train_cli(
        word_data, run, "--resume", "--max-iters", str(checkpoint.read(run / "last.pt")["step"] + 2)
    )
    assert r.returncode == 0, r.stderr  # the lock went with its process


# ------------------------------------------------------------------ divergence


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


# ------------------------------------------------------------------ atomic files, repairs


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


def test_stale_temporary_files_are_removed_at_the_next_start(word_data, trained):
    junk = [trained / ".last.pt.12345.tmp", trained / ".metrics.csv.999.tmp"]
    for j in junk:
        j.write_bytes(b"x" * 1000)
    train(word_data, trained, resume=True, max_iters=41, **QUIET)
    assert not any(j.exists() for j in junk)


def test_every_file_is_written_through_a_temporary_name(monkeypatch, word_data, tmp_path):
    """Spy on every open for writing while a run trains: inside the run folder only
    temporary names (.NAME.PID.tmp), the lock and TensorBoard's own folder are ever opened
    for writing, and each temporary name is then renamed onto a run file."""
    run = tmp_path / "r"
    opened, renamed = [], []
    real_open, real_os_open, real_replace = builtins.open, os.open, os.replace

    def spy_open(file, mode="r", *a, **k):
        if isinstance(file, str | os.PathLike) and any(c in mode for c in "wax+"):
            opened.append(Path(os.path.realpath(file)))  # now: a run writes through its fd
        return real_open(file, mode, *a, **k)

    def spy_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            opened.append(Path(os.path.realpath(path)))
        return real_os_open(path, flags, *a, **k)

    def spy_replace(src, dst, *a, **k):
        renamed.append((Path(src).name, Path(dst).name))
        return real_replace(src, dst, *a, **k)

    for module, name, spy in [
        (builtins, "open", spy_open),
        (io, "open", spy_open),
        (os, "open", spy_os_open),
        (os, "replace", spy_replace),
    ]:
        monkeypatch.setattr(module, name, spy)
    train(word_data, run, preset="tiny", max_iters=2, eval_interval=1, **FAST, **QUIET)
    inside = [p for p in opened if run.resolve() in p.parents]
    assert inside, "the spy saw nothing"
    for p in inside:
        assert p.name == ".lock" or TEMP.fullmatch(p.name), p
    assert all(TEMP.fullmatch(src) for src, _ in renamed)
    assert {dst for _, dst in renamed} >= {
        "config.json",
        "tokenizer.json",
        "metrics.csv",
        "loss.png",
        "last.pt",
        "best.pt",
        "summary.json",
    }


# ------------------------------------------------------------------ one line, never a traceback


@pytest.fixture
def foreign(trained, tmp_path):
    """Checkpoints with the right format key that are not whole runs."""
    ck = checkpoint.read(trained / "last.pt")
    out = {}
    for name, change in {
        "missing": lambda c: {k: v for k, v in c.items() if k != "model_config"},
        "misfit": lambda c: {**c, "model_config": {**c["model_config"], "n_embd": 64}},
    }.items():
        d = tmp_path / name
        d.mkdir()
        torch.save(change(dict(ck)), d / "best.pt")
        out[name] = d
    return out


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "{missing}"], "lacks model_config"),
        (["sample", "{misfit}"], "do not fit its config"),
        (["eval", "{misfit}"], "do not fit its config"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--lr", "-0.01"], "lr must be > 0"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--n-embd", "0"], "n_embd must be >= 1"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--device", "cuda"], "no CUDA GPU"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--device", "gpu0"], "unknown device"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--seed", str(2**70)], "too large"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--max-iters", "0"], "max_iters"),
        (["sample", "{run}", "--temperature", "nan"], "finite"),
        (["sample", "{run}", "--temperature", "1e-40"], "between 0.001 and 100"),
        (["sample", "{run}", "--device", "cuda"], "no CUDA GPU"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--warmup", "-5"], "in [0, 1)"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--grad-clip", "-1"], ">= 0"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--time-budget", "0"], "> 0"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--time-budget", "-1"], "> 0"),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--epochs", "-1"], "epochs must be >="),
        (
            [
                "train",
                "--data",
                "{data}",
                "--out",
                "{tmp}/x",
                "--tie-weights",
                "--head",
                "adaptive",
                "--cutoffs",
                "20",
            ],
            "softmax head only",
        ),
        (
            ["train", "--data", "{data}", "--out", "{run}", "--resume", "--preset", "cpu"],
            "trained with preset 'tiny'",
        ),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/x", "--block-size", "100000000"],
            "block_size must be at most",
        ),
        (["train", "--data", "{data}", "--out", "{tmp}/x", "--no-such-flag"], "no such option"),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/x", "--batch-size", "100000000"],
            "at most --batch-size",
        ),
        (
            [
                "train",
                "--data",
                "{data}",
                "--out",
                "{tmp}/x",
                "--batch-size",
                "100000000",
                "--dry-run",
            ],
            "of activations",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(word_data, trained, foreign, tmp_path, args, message):
    fmt = {"data": word_data, "run": trained, "tmp": tmp_path, **foreign}
    t = time.perf_counter()
    err = one_line_error(cli(*[a.format(**fmt) for a in args]))
    assert message.lower() in err.lower()
    assert time.perf_counter() - t < 60  # refused before allocating a huge model
    assert not (tmp_path / "x").exists()  # nothing written


def test_a_block_longer_than_the_val_split_is_refused_before_anything_is_written(
    word_data, tmp_path
):
    val = json.loads((word_data / "meta.json").read_text())["splits"]["val"]["tokens"]
    err = one_line_error(train_cli(word_data, tmp_path / "x", "--block-size", str(val)))
    assert "val split" in err and not (tmp_path / "x").exists()


def test_a_one_token_vocabulary_is_refused(word_data, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(word_data, data)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "vocab_size": 1}))
    (data / "tokenizer.json").write_text(json.dumps({"kind": "word", "itos": ["<unk>"]}))
    for split in ("train", "val"):  # every id 0: the one token there is
        size = (data / f"{split}.bin").stat().st_size
        (data / f"{split}.bin").write_bytes(bytes(size))
    assert "at least 2" in one_line_error(train_cli(data, tmp_path / "x"))


def test_an_unwritable_output_folder_is_one_line(word_data, tmp_path):
    """A folder without write permission; as root (who ignores permissions) a place no one
    may create folders in: /sys."""
    if os.geteuid() == 0:
        out = Path("/sys/wordgpt-test-run")
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        out = tmp_path / "ro" / "run"
    err = one_line_error(train_cli(word_data, out))
    assert "cannot write" in err and not out.exists()


def test_ctrl_c_after_the_last_step_stops_the_run_as_asked(word_data, tmp_path, monkeypatch):
    """A signal that lands once the loop has ended, here during the final evaluation, is not
    lost: the run stops as one stopped in the loop does (last.pt saved, summary "signal 2",
    the InterruptError that makes exit code 130), instead of ending as if never asked."""
    from wordgpt.errors import InterruptError
    from wordgpt.training import train as train_module

    real = train_module.evaluate_and_save

    def evaluate_then_ctrl_c(trainer, *a, **k):
        if trainer.state.step == 10:  # the final evaluation: the loop has ended
            os.kill(os.getpid(), signal.SIGINT)
        return real(trainer, *a, **k)

    monkeypatch.setattr(train_module, "evaluate_and_save", evaluate_then_ctrl_c)
    with pytest.raises(InterruptError, match="by a signal"):
        train(word_data, tmp_path / "r", "tiny", max_iters=10, eval_interval=100,
              progress=False, tensorboard=False, report=False)  # fmt: skip
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["stopped"] == "signal 2" and (tmp_path / "r" / "last.pt").is_file()


def test_a_signal_that_lands_in_a_log_line_is_not_swallowed(capsys):
    """A Ctrl-C raised while a line is written, which the writer turns into another error
    (tqdm's lock set-up does), still stops the program; a plain write error does not."""
    import logging

    from wordgpt.errors import InterruptError
    from wordgpt.logs import Console

    class Broken:
        def __init__(self, interrupted):
            self.interrupted = interrupted

        def write(self, s):
            try:
                if self.interrupted:
                    raise InterruptError("interrupted", 2)
            finally:
                raise ValueError("release unlocked lock")

        def flush(self):
            pass

    record = logging.LogRecord("wordgpt", logging.INFO, __file__, 1, "a line", None, None)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sys, "stdout", Broken(True))
        with pytest.raises(InterruptError):
            Console().emit(record)
        m.setattr(sys, "stdout", Broken(False))
        Console().emit(record)  # a closed stdout must not stop a run
    assert "Logging error" in capsys.readouterr().err


def test_ctrl_c_during_start_up_is_one_line(word_data, tmp_path):
    """SIGINT as soon as the run folder's lock exists (start-up has begun): one line, exit
    code 130, no traceback, whether it lands in start-up or in the loop."""
    run = tmp_path / "x"
    p = start_training(word_data, run, "--preset", "tiny", "--no-progress", output=True)
    wait_for(lambda: (run / ".lock").exists() or p.poll() is not None)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err


# ------------------------------------------------------------------ clear messages


def test_a_malicious_checkpoint_is_named_as_such_and_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"format": checkpoint.FORMAT, "model": Evil()}, tmp_path / "best.pt")
    err = one_line_error(cli("sample", tmp_path))
    assert "holds code or objects that are not allowed" in err
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------ faults


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


# ------------------------------------------------------------------ the CLI's options


def test_rundir_guard_without_the_cli(tmp_path):
    r = RunDir(tmp_path / "run")
    r.check_new(overwrite=False)  # nothing there yet
    r.lock()
    (tmp_path / "run" / "config.json").write_text("{}")
    assert not r.holds_run()  # a config alone is a run that never trained
    (tmp_path / "run" / "metrics.csv").write_text("step\n")
    assert r.holds_run()
    r.unlock()


# -------------------------------------------------------------- folders, locks and temporary files


def test_a_run_folder_and_a_data_folder_never_overwrite_each_other(word_data, run, tmp_path):
    data, r = tmp_path / "data", tmp_path / "run"
    shutil.copytree(word_data, data)
    shutil.copytree(run, r)
    d0, r0 = snapshot(data), snapshot(r)
    err = one_line_error(
        cli("train", "--data", word_data, "--out", data, "--preset", "tiny", "--no-progress")
    )
    assert "data folder" in err
    err = one_line_error(cli("prepare", "--dataset", "don-quixote", "--out", r, "--overwrite"))
    assert "run folder" in err
    with pytest.raises(WordGPTError, match="data folder"):
        train(word_data, data, preset="tiny", **QUIET)
    assert snapshot(data) == d0 and snapshot(r) == r0


def test_a_failed_start_releases_the_lock_in_the_same_process(word_data, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("knight nan nan nan\nsancho nan nan nan\n")  # vectors that are not finite
    out = tmp_path / "r"
    with pytest.raises(WordGPTError, match="not finite"):
        train(word_data, out, preset="tiny", init_embeddings=str(bad), **QUIET)
    r = train(word_data, out, preset="tiny", max_iters=2, **QUIET)  # not "in use"
    assert r.step == 2


def test_a_deleted_lock_file_lets_no_second_trainer_in(word_data, tmp_path):
    run = tmp_path / "live"
    args = [
        "--preset",
        "tiny",
        "--max-iters",
        "100000",
        "--eval-interval",
        "20",
        "--no-progress",
        "--dtype",
        "fp32",
    ]
    first = start_training(word_data, run, *args)
    try:
        wait_for(lambda: (run / "last.pt").exists())
        (run / ".lock").unlink()
        err = one_line_error(
            cli("train", "--data", word_data, "--out", run, "--overwrite", *args[:2])
        )
        assert "in use by another training" in err
        assert not list(tmp_path.glob("live.old-*"))  # the live run was not moved aside
    finally:
        first.terminate()
        first.wait(60)


def test_a_run_moved_away_while_training_keeps_its_own_files(word_data, tmp_path):
    """The run writes through its open folder: moving the folder (by hand) while it trains
    neither breaks the run nor lets its files land in a new folder at the old name."""
    run, moved = tmp_path / "r", tmp_path / "moved"
    args = [
        "--preset",
        "tiny",
        "--max-iters",
        "300",
        "--eval-interval",
        "10",
        "--no-progress",
        "--dtype",
        "fp32",
    ]
    p = start_training(word_data, run, *args, output=True)
    wait_for(lambda: (run / "last.pt").exists())
    run.rename(moved)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert checkpoint.read(moved / "last.pt")["step"] == 300 and not run.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_embd": 2**20, "n_head": 1}, "n_embd must be at most"),
        ({"n_layer": 10**7}, "n_layer must be at most"),
        ("a string", "model_config is not a dict"),
        ({"n_layer": 2.5}, "whole number"),
        ({"vocab_size": 3}, "do not fit its config"),
    ],
)
def test_a_checkpoint_whose_config_cannot_work_is_one_line_and_fast(run, tmp_path, change, message):
    ck = checkpoint.read(run / "best.pt")
    ck["model_config"] = change if isinstance(change, str) else {**ck["model_config"], **change}
    (tmp_path / "x").mkdir()
    torch.save(ck, tmp_path / "x" / "best.pt")
    t = time.time()
    err = one_line_error(cli("sample", tmp_path / "x", "--max-new-tokens", "2", timeout=120))
    assert message in err and time.time() - t < 60


def test_only_a_dead_processs_temporary_files_are_removed(word_data, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    theirs = out / f".other.json.{dead.stdout.strip()}.tmp"
    live = out / f".other.json.{os.getppid()}.tmp"  # pytest's parent: alive
    for p in (theirs, live):
        p.write_text("x")
    train(word_data, out, preset="tiny", max_iters=2, **QUIET)
    assert not theirs.exists() and live.exists()
