"""A whole training run through the API and the command: the run folder it writes, its golden
first losses, a resume after SIGTERM that is bit-exact, model options end to end, bf16,
torch.compile, TensorBoard, patience, and what a resume may and may not change."""

from __future__ import annotations

import csv
import json
import math
import signal

import pytest
import torch

import wordgpt
from wordgpt.config import DataConfig, ModelConfig
from wordgpt.errors import CheckpointError
from wordgpt.model.gpt import estimate_flops
from wordgpt.runs import checkpoint
from wordgpt.use.train_run import train

from .helpers import FAST, need, start_training, wait_for


def metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_folder_has_everything(word_data, tmp_path):
    r = train(word_data, tmp_path, preset="tiny", max_iters=30, eval_interval=10, **FAST)
    assert r.step == 30 and r.stopped == "max_iters" and r.tokens_per_s > 0
    for name in ("config.json", "tokenizer.json", "metrics.csv", "loss.png", "last.pt", "best.pt"):
        assert (tmp_path / name).is_file(), name
    rows = metrics(tmp_path)
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 30]
    assert set(rows[0]) == {"step", "train_loss", "val_loss", "lr", "tokens", "elapsed_s"}
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model"]["n_layer"] == 2 and cfg["train"]["stop"]["max_iters"] == 30
    ck = torch.load(tmp_path / "last.pt", weights_only=True)  # no unpickling of code
    assert ck["step"] == 30 and ck["provenance"]["data"]["sha256"]
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    best = torch.load(tmp_path / "best.pt", weights_only=True)  # for sampling: no optimizer
    assert (
        "optimizer" not in best and "optimizer" in ck and best["model"].keys() == ck["model"].keys()
    )
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["flops_per_token"] == estimate_flops(ModelConfig(**cfg["model"]))
    assert s["flops_per_s"] == pytest.approx(s["tokens_per_s"] * s["flops_per_token"])
    assert s["mfu"] == pytest.approx(s["flops_per_s"] / s["peak_flops"]) and 0 < s["mfu"] < 1
    assert s["dtype"] == "fp32" and s["device"] == "cpu"


def test_golden_losses_of_a_seeded_tiny_run(word_data, tmp_path):
    """A silent change in numerics (init, data order, optimizer) changes these figures."""
    train(word_data, tmp_path, preset="tiny", max_iters=3, eval_interval=1, **FAST)
    rows = metrics(tmp_path)
    got = [float(r["train_loss"]) for r in rows]
    vocab = json.loads((word_data / "meta.json").read_text())["vocab_size"]
    assert got[0] == pytest.approx(math.log(vocab), abs=0.05)  # uniform at init
    golden = GOLDEN.get(vocab)
    if golden is None:
        pytest.skip(f"no golden figures for this corpus (vocabulary {vocab})")
    assert got == pytest.approx(golden, abs=2e-3)


# first train losses at steps 0..3, keyed by the corpus fixture's vocabulary size
GOLDEN = {1831: [7.53528, 7.48485, 7.4003, 7.31395]}  # the first 40,000 chars of the book


@pytest.mark.slow
def test_resume_after_sigterm_is_bit_exact(word_data, tmp_path):
    """A run stopped by SIGTERM at whatever step and resumed reaches the same weights."""
    n = 1500
    args = [
        "--preset",
        "tiny",
        "--max-iters",
        str(n),
        "--eval-interval",
        "500",
        "--dtype",
        "fp32",
        "--no-progress",
    ]
    interrupted = tmp_path / "interrupted"
    p = start_training(word_data, interrupted, *args, output=True)
    # the step-0 evaluation is written: the loop is about to start
    wait_for(lambda: (interrupted / "metrics.csv").exists())
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 143, err  # SIGTERM: 128 + 15, as shells report it
    stopped_at = checkpoint.read(interrupted / "last.pt")["step"]
    assert 0 < stopped_at < n, out
    assert "stopping after this step" in out and f"stopped at step {stopped_at}" in err
    train(word_data, interrupted, resume=True, progress=False)

    straight = tmp_path / "straight"
    train(word_data, straight, preset="tiny", max_iters=n, eval_interval=500, **FAST)
    a = checkpoint.read(interrupted / "last.pt")
    b = checkpoint.read(straight / "last.pt")
    assert a["step"] == b["step"] == n
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    rows = metrics(interrupted)
    assert [r["step"] for r in rows][-1] == str(n)


def test_resume_on_another_vocabulary_is_refused(word_data, corpus_file, tmp_path):
    train(word_data, tmp_path / "run", preset="tiny", max_iters=5, **FAST)
    other = wordgpt.prepare(
        tmp_path / "char", DataConfig(dataset=str(corpus_file), tokenizer="char")
    )
    with pytest.raises(CheckpointError, match="another vocabulary"):
        train(other.out, tmp_path / "run", resume=True, **FAST)
    with pytest.raises(CheckpointError, match="another vocabulary"):
        wordgpt.load(tmp_path / "run").evaluate("val", data_dir=other.out)


@pytest.mark.parametrize(
    "kw", [{"norm": "post"}, {"pos": "rope", "head": "adaptive", "cutoffs": (50, 200)}]
)
def test_model_options_train_end_to_end(word_data, tmp_path, kw):
    r = train(word_data, tmp_path, preset="tiny", max_iters=40, eval_interval=20, **kw, **FAST)
    rows = metrics(tmp_path)
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"]) - 1.0
    assert r.step == 40


def test_bf16_training_runs_on_cpu(word_data, tmp_path):
    r = train(word_data, tmp_path, preset="tiny", max_iters=3, eval_iters=1,
              **{**FAST, "dtype": "bf16"})  # fmt: skip
    assert math.isfinite(r.last_val)


@pytest.mark.slow
def test_compiled_training_saves_plain_weight_names_that_load_uncompiled(word_data, tmp_path):
    r = train(
        word_data, tmp_path, preset="tiny", max_iters=2, eval_interval=2, compile=True, **FAST
    )
    assert r.step == 2
    ck = checkpoint.read(tmp_path / "last.pt")
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in ck["model"])
    m = wordgpt.load(tmp_path)  # an uncompiled GPT, with the compiled run's weights
    assert type(m.gpt).__name__ == "GPT"
    for k, v in m.gpt.state_dict().items():
        assert torch.equal(v, ck["model"][k]), k
    text = m.generate("the", max_new_tokens=3, temperature=0, seed=0).text
    assert text and text == m.generate("the", max_new_tokens=3, temperature=0, seed=1).text


def test_tensorboard_gets_losses_lr_speed_and_a_sample(word_data, tmp_path):
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(
        word_data,
        tmp_path,
        preset="tiny",
        max_iters=20,
        eval_interval=10,
        dtype="fp32",
        progress=False,
        tensorboard=True,
    )
    ev = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    scalars = ev.Tags()["scalars"]
    assert {"loss/train", "loss/val", "lr", "tokens_per_s"} <= set(scalars)
    val = [e.value for e in ev.Scalars("loss/val")]
    assert [e.step for e in ev.Scalars("loss/val")] == [0, 10, 20] and val[-1] < val[0]
    rows = metrics(tmp_path)
    assert val == pytest.approx([float(r["val_loss"]) for r in rows], abs=1e-4)
    texts = ev.Tensors("sample/text_summary")
    assert len(texts) == 3 and texts[-1].tensor_proto.string_val[0].decode().strip()


def test_patience_stops_the_run_and_says_why(word_data, tmp_path, monkeypatch, capsys):
    from wordgpt.cli import main
    from wordgpt.training.trainer import Trainer

    vals = iter([5.0, 4.0, 4.5, 4.4, 4.3, 1.0])
    monkeypatch.setattr(Trainer, "estimate_loss", lambda self: {"train": 1.0, "val": next(vals)})
    main(
        [
            "train",
            "--data",
            str(word_data),
            "--out",
            str(tmp_path),
            "--preset",
            "tiny",
            "--eval-interval",
            "5",
            "--patience",
            "3",
            "--dtype",
            "fp32",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert "stopped at step 20: no better val loss in 3 evaluations" in out
    assert "done: step 20 (patience)" in out and "best val loss 4.0000" in out
    assert json.loads((tmp_path / "summary.json").read_text())["stopped"] == "patience"
    assert checkpoint.read(tmp_path / "best.pt")["step"] == 5
