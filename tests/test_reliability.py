"""Never lose a run: one test per finding of the reliability issue, a kill -9 fault
injection, a full disk, and a property test of the CLI's option parsing."""

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
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wordgpt.cli import main
from wordgpt.cli.flags import json_line
from wordgpt.errors import CheckpointError
from wordgpt.runs import checkpoint
from wordgpt.runs.folder import RunDir
from wordgpt.training.train import train

from .helpers import cli, one_line_error, wait_for

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


# ------------------------------------------------------------------ 1. existing run folders


def test_1_train_into_an_existing_run_is_refused_and_overwrite_moves_it_aside(word_data, trained):
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


def test_1_resume_and_overwrite_together_are_refused(word_data, trained):
    one_line_error(train_cli(word_data, trained, "--resume", "--overwrite"))


# ------------------------------------------------------------------ 2. best.pt across resumes


def test_2_best_pt_changes_only_on_a_strictly_better_val_loss_across_resumes(word_data, trained):
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


# ------------------------------------------------------------------ 3. two trainings at once


def test_3_a_second_training_on_the_same_folder_is_refused_naming_the_pid(word_data, tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wordgpt.cli",
            "train",
            "--data",
            str(word_data),
            "--out",
            str(run),
            "--preset",
            "tiny",
            "--max-iters",
            "100000",
            "--dtype",
            "fp32",
            "--no-progress",
            "--no-tensorboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
    assert first.returncode == 130  # stopped by the signal, last.pt saved
    r = train_cli(
        word_data, run, "--resume", "--max-iters", str(checkpoint.read(run / "last.pt")["step"] + 2)
    )
    assert r.returncode == 0, r.stderr  # the lock went with its process


# ------------------------------------------------------------------ 4. divergence


def test_4_divergence_stops_with_exit_code_3_and_never_saves_non_finite_weights(
    word_data, tmp_path
):
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


def test_4_eval_json_is_valid_json_even_for_non_finite_numbers():
    line = json_line({"loss": math.nan, "perplexity": math.inf, "step": 3})
    assert json.loads(line) == {"loss": None, "perplexity": None, "step": 3}


def test_4_a_checkpoint_with_non_finite_weights_is_never_written(tmp_path):
    with pytest.raises(CheckpointError, match="not finite"):
        checkpoint.save({"model": {"w": torch.tensor([1.0, math.nan])}}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 5. atomic files, repairs


def test_5_a_torn_metrics_csv_is_repaired_on_resume(word_data, trained):
    path = trained / "metrics.csv"
    text = path.read_text()
    path.write_text(text[: len(text) - 9])  # the last row torn in the middle
    r = train_cli(word_data, trained, "--resume", "--max-iters", "50")
    assert r.returncode == 0, r.stderr
    assert "dropped 1 damaged row" in r.stderr and f"{trained}/metrics.csv" in r.stderr
    steps = [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]
    assert steps == [0, 10, 20, 30, 50]  # the torn row of step 40 is gone, the rest kept
    assert (trained / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_5_stale_temporary_files_are_removed_at_the_next_start(word_data, trained):
    junk = [trained / ".last.pt.12345.tmp", trained / ".metrics.csv.999.tmp"]
    for j in junk:
        j.write_bytes(b"x" * 1000)
    train(word_data, trained, resume=True, max_iters=41, **QUIET)
    assert not any(j.exists() for j in junk)


def test_5_every_file_is_written_through_a_temporary_name(monkeypatch, word_data, tmp_path):
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


# ------------------------------------------------------------------ 6. one line, never a traceback


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
    ],
)
def test_6_and_7_bad_options_are_one_line_and_exit_2(
    word_data, trained, foreign, tmp_path, args, message
):
    fmt = {"data": word_data, "run": trained, "tmp": tmp_path, **foreign}
    t = time.perf_counter()
    err = one_line_error(cli(*[a.format(**fmt) for a in args]))
    assert message.lower() in err.lower()
    assert time.perf_counter() - t < 60  # refused before allocating a huge model
    assert not (tmp_path / "x").exists()  # nothing written


def test_7_a_block_longer_than_the_val_split_is_refused_before_anything_is_written(
    word_data, tmp_path
):
    val = json.loads((word_data / "meta.json").read_text())["splits"]["val"]["tokens"]
    err = one_line_error(train_cli(word_data, tmp_path / "x", "--block-size", str(val)))
    assert "val split" in err and not (tmp_path / "x").exists()


def test_6_a_one_token_vocabulary_is_refused(word_data, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(word_data, data)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "vocab_size": 1}))
    (data / "tokenizer.json").write_text(json.dumps({"kind": "word", "itos": ["<unk>"]}))
    for split in ("train", "val"):  # every id 0: the one token there is
        size = (data / f"{split}.bin").stat().st_size
        (data / f"{split}.bin").write_bytes(bytes(size))
    assert "at least 2" in one_line_error(train_cli(data, tmp_path / "x"))


def test_6_an_unwritable_output_folder_is_one_line(word_data, tmp_path):
    """A folder without write permission; as root (who ignores permissions) a place no one
    may create folders in: /sys."""
    if os.geteuid() == 0:
        out = Path("/sys/wordgpt-test-run")
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        out = tmp_path / "ro" / "run"
    err = one_line_error(train_cli(word_data, out))
    assert "cannot write" in err and not out.exists()


def test_6_ctrl_c_during_start_up_is_one_line(word_data, tmp_path):
    """SIGINT as soon as the run folder's lock exists (start-up has begun): one line, exit
    code 130, no traceback, whether it lands in start-up or in the loop."""
    run = tmp_path / "x"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wordgpt.cli",
            "train",
            "--data",
            str(word_data),
            "--out",
            str(run),
            "--preset",
            "tiny",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (run / ".lock").exists() or p.poll() is not None)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err


# ------------------------------------------------------------------ 8. clear messages


def test_8_a_malicious_checkpoint_is_named_as_such_and_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"format": checkpoint.FORMAT, "model": Evil()}, tmp_path / "best.pt")
    err = one_line_error(cli("sample", tmp_path))
    assert "holds code or objects that are not allowed" in err
    assert not (tmp_path / "pwned").exists()


def test_8_utf16_text_is_read_by_its_byte_order_mark(tmp_path):
    text = "En un lugar de la Mancha, de cuyo nombre no quiero acordarme. " * 40
    (tmp_path / "bom.txt").write_bytes(text.encode("utf-16"))
    r = cli(
        "prepare", "--dataset", tmp_path / "bom.txt", "--tokenizer", "char", "--out", tmp_path / "d"
    )
    assert r.returncode == 0, r.stderr
    (tmp_path / "nobom.txt").write_bytes(text.encode("utf-16-le"))
    err = one_line_error(
        cli("prepare", "--dataset", tmp_path / "nobom.txt", "--out", tmp_path / "e")
    )
    assert "utf-16" in err.lower() and "binary" not in err


def test_8_a_text_without_whitespace_splits(tmp_path):
    (tmp_path / "a.txt").write_text("abcdefghij" * 30_000)  # 300 KB, not one space
    r = cli(
        "prepare", "--dataset", tmp_path / "a.txt", "--tokenizer", "char", "--out", tmp_path / "d"
    )
    assert r.returncode == 0, r.stderr
    assert "too short" not in r.stderr


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


NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["0", "-1", "1e309", "nan", "inf", "-0.0", "1e-40", "x", ""]),
)
TRAIN_NUMERIC = [
    "--block-size",
    "--n-layer",
    "--n-head",
    "--n-embd",
    "--dropout",
    "--attn-dropout",
    "--batch-size",
    "--grad-accum",
    "--max-iters",
    "--time-budget",
    "--lr",
    "--min-lr-ratio",
    "--warmup",
    "--muon-warmup",
    "--decay-frac",
    "--weight-decay",
    "--beta1",
    "--beta2",
    "--grad-clip",
    "--eval-interval",
    "--eval-iters",
    "--patience",
    "--max-bad-steps",
    "--seed",
    "--embeddings-limit",
    "--freeze-embeddings",
]
SAMPLE_NUMERIC = ["--temperature", "--top-k", "--top-p", "--seed"]


def _run_main(argv, capsys) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(flag=st.sampled_from(TRAIN_NUMERIC), value=NUMBERS)
@example(flag="--time-budget", value=-1)  # checked before the recipe for a budget is picked
def test_any_value_of_any_numeric_train_option_is_accepted_or_one_line(
    word_data, tmp_path_factory, capsys, flag, value
):
    out = tmp_path_factory.mktemp("prop")
    code, err = _run_main(
        ["train", "--data", str(word_data), "--out", str(out / "r"), "--dry-run", flag, str(value)],
        capsys,
    )
    assert code in (0, 2), (flag, value, code, err)
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (out / "r").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(flag=st.sampled_from(SAMPLE_NUMERIC), value=NUMBERS, n=st.integers(0, 3))
@example(flag="--temperature", value=3.4028235677973366e38, n=1)  # past float32: NaN probs
@example(flag="--top-p", value="x", n=1)  # a bad value: the error line, and nothing before it
def test_any_value_of_any_numeric_sample_option_is_accepted_or_one_line(
    sample_run, capsys, flag, value, n
):
    code, err = _run_main(
        ["sample", str(sample_run), "--max-new-tokens", str(n), flag, str(value)], capsys
    )
    assert code in (0, 2), (flag, value, code, err)
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def sample_run(word_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("sample_run") / "run"
    train(word_data, run, preset="tiny", max_iters=5, **FAST, **QUIET)
    return run


def test_rundir_guard_without_the_cli(tmp_path):
    r = RunDir(tmp_path / "run")
    r.check_new(overwrite=False)  # nothing there yet
    r.lock()
    (tmp_path / "run" / "config.json").write_text("{}")
    assert not r.holds_run()  # a config alone is a run that never trained
    (tmp_path / "run" / "metrics.csv").write_text("step\n")
    assert r.holds_run()
    r.unlock()
