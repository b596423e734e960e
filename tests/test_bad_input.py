"""Bad input is one line and exit 2, never a traceback: every kind of bad option, checkpoints
that are not whole runs, data too short for the model, an unwritable folder."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from wordgpt.runs import checkpoint

from .helpers import FAST, cli, one_line_error, run_main, train_cli


@pytest.fixture(scope="module")
def foreign(run, tmp_path_factory):
    """Checkpoints with the right format key that are not whole runs."""
    ck = checkpoint.read(run / "last.pt")
    tmp_path, out = tmp_path_factory.mktemp("foreign"), {}
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
def test_bad_options_are_one_line_and_exit_2(
    word_data, run, foreign, tmp_path, capsys, args, message
):
    """In this process, as ``wordgpt ARGS`` runs them (the shell's own tests are in
    test_cli.py); the run is read, never written."""
    fmt = {"data": word_data, "run": run, "tmp": tmp_path, **foreign}
    t = time.perf_counter()
    err = one_line_error(run_main([a.format(**fmt) for a in args], capsys))
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


def test_a_malicious_checkpoint_is_named_as_such_and_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"format": checkpoint.FORMAT, "model": Evil()}, tmp_path / "best.pt")
    err = one_line_error(cli("sample", tmp_path))
    assert "holds code or objects that are not allowed" in err
    assert not (tmp_path / "pwned").exists()


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
def test_a_checkpoint_whose_config_cannot_work_is_one_line_and_fast(
    run, tmp_path, capsys, change, message
):
    ck = checkpoint.read(run / "best.pt")
    ck["model_config"] = change if isinstance(change, str) else {**ck["model_config"], **change}
    (tmp_path / "x").mkdir()
    torch.save(ck, tmp_path / "x" / "best.pt")
    t = time.time()
    err = one_line_error(run_main(["sample", tmp_path / "x", "--max-new-tokens", "2"], capsys))
    assert message in err and time.time() - t < 60


@pytest.mark.parametrize("rate", ["nan", "inf"])
def test_an_adaptive_rate_that_is_not_a_number_is_one_line_and_keeps_eval_json(
    run, tmp_path, capsys, rate
):
    r = tmp_path / "r"
    shutil.copytree(run, r)
    assert run_main(["eval", r], capsys).returncode == 0
    before = (r / "eval.json").read_bytes()
    err = one_line_error(run_main(["eval", r, "--adapt", "--adapt-lr", rate], capsys))
    assert "adapt_lr must be a finite number" in err and (r / "eval.json").read_bytes() == before


def test_a_member_of_another_block_size_is_one_line_naming_it(word_data, run, tmp_path, capsys):
    from wordgpt.use.train_run import train

    r = tmp_path / "r"
    shutil.copytree(run, r)
    train(word_data, r / "members" / "2", preset="tiny", block_size=16, max_iters=2,
          **FAST)  # fmt: skip
    err = one_line_error(run_main(["sample", r, "--max-new-tokens", "2"], capsys))
    assert "members/2/best.pt: a member of block size 16, the run's 32" in err


def test_eval_on_a_run_it_cannot_write_says_eval_json_was_not_written(run, capsys, monkeypatch):
    from wordgpt import fileio
    from wordgpt.errors import WordGPTError

    def read_only(path, data):
        raise WordGPTError(f"cannot write {path}: read-only file system")

    monkeypatch.setattr(fileio, "atomic_write", read_only)
    r = run_main(["eval", run], capsys)
    assert r.returncode == 0 and "bits/char" in r.stdout
    assert f"note: {run}/eval.json not written (cannot write" in r.stderr


@pytest.mark.parametrize(
    "damage",
    ["blank", "number", "null", "bytes", "empty words", "other words"],
)
def test_a_damaged_val_unk_jsonl_is_one_line_never_a_wrong_adaptive_figure(
    run, word_data, tmp_path, capsys, damage
):
    """The <unk> words the adaptive spelling reads, checked line by line and against what
    meta.json records their spelling costs: a file with the right count of wrong words
    would give a wrong figure silently."""
    data = Path(shutil.copytree(word_data, tmp_path / "data"))
    path = data / "val.unk.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_bytes({
        "blank": "\n".join([*lines[:3], "", *lines[3:]]).encode() + b"\n",
        "number": "\n".join([*lines[:-1], "1"]).encode() + b"\n",
        "null": "\n".join(["null", *lines[1:]]).encode() + b"\n",
        "bytes": bytes(range(256)) * 4,
        "empty words": ('""\n' * len(lines)).encode(),
        "other words": ('"zzz"\n' * len(lines)).encode(),
    }[damage])  # fmt: skip
    err = one_line_error(run_main(["eval", run, "--data", data, "--adapt"], capsys))
    assert "val.unk.jsonl" in err and "prepare" in err
