"""A run folder is never lost: an existing run is refused (or moved aside with --overwrite),
two trainings of one folder never run at once (the lock names the pid), files are written
through temporary names and a dead process's are cleaned up, and a run folder and a data
folder never overwrite each other."""

from __future__ import annotations

import builtins
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wordgpt.errors import WordGPTError
from wordgpt.runs import checkpoint
from wordgpt.runs.folder import RunDir
from wordgpt.use.train_run import train

from .helpers import FAST, cli, one_line_error, snapshot, start_training, train_cli, wait_for

TEMP = re.compile(r"\..+\.\d+\.tmp")


# ------------------------------------------------------------------ existing run folders


@pytest.mark.slow
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


# ------------------------------------------------------------------ two trainings at once


@pytest.mark.slow
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


# ------------------------------------------------------------------ atomic files, repairs


def test_stale_temporary_files_are_removed_at_the_next_start(word_data, trained):
    junk = [trained / ".last.pt.12345.tmp", trained / ".metrics.csv.999.tmp"]
    for j in junk:
        j.write_bytes(b"x" * 1000)
    train(word_data, trained, resume=True, max_iters=41)
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
    train(word_data, run, preset="tiny", max_iters=2, eval_interval=1, **FAST)
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
        train(word_data, data, preset="tiny")
    assert snapshot(data) == d0 and snapshot(r) == r0


def test_a_failed_start_releases_the_lock_in_the_same_process(word_data, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("knight nan nan nan\nsancho nan nan nan\n")  # vectors that are not finite
    out = tmp_path / "r"
    with pytest.raises(WordGPTError, match="not finite"):
        train(word_data, out, preset="tiny", init_embeddings=str(bad))
    r = train(word_data, out, preset="tiny", max_iters=2)  # not "in use"
    assert r.step == 2


@pytest.mark.slow
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


@pytest.mark.slow
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
    train(word_data, out, preset="tiny", max_iters=2)
    assert not theirs.exists() and live.exists()


def test_a_run_refuses_its_data_folder_prepared_again_with_other_tokens(corpus_file, tmp_path):
    """``prepare --overwrite`` of a run's data folder (here the same vocabulary, another
    split): sampling with the partner, eval and ``--resume`` refuse it in one line, instead of
    counting the partner on other tokens. The same text prepared the same way is the same
    data."""
    from wordgpt.config import DataConfig
    from wordgpt.corpus.build import prepare

    data, run = tmp_path / "data", tmp_path / "r"
    cfg = DataConfig(dataset=str(corpus_file), tokenizer="word", space_prefix=False)
    first = prepare(data, cfg, progress=False).meta["fingerprint"]
    assert prepare(data, cfg, overwrite=True, progress=False).meta["fingerprint"] == first
    train(data, run, preset="tiny", max_iters=2, ngram=2, **FAST)
    assert (run / "partner.json").is_file()
    other = DataConfig(**{**vars(cfg), "val_fraction": 0.2})
    prepare(data, other, overwrite=True, tokenizer_from=run, progress=False)
    for r in (cli("sample", run, "--max-new-tokens", "3"), cli("eval", run)):
        assert f"{data} is not the data run {run} was trained on" in one_line_error(r)
    with pytest.raises(WordGPTError, match="is not the data .* was trained on"):
        train(data, run, resume=True, **FAST)


def test_the_data_sets_a_run_names_are_shown_by_their_file_names():
    """The runs list and the model card: files by name, never this machine's paths; a config
    written before data sets were always lists (one string) names one file, not its
    characters; a damaged value is shown, never a crash."""
    from wordgpt.runs.folder import dataset_names

    assert dataset_names({"dataset": "/home/me/books/jane.txt"}) == "jane.txt"
    assert dataset_names({"dataset": ["/a/one.txt", "don-quixote"]}) == "one.txt, don-quixote"
    assert dataset_names({"dataset": 5}) == "5" and dataset_names({}) == "?"
