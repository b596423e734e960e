"""Fine-tuning: a new run that starts from another run's weights (``--init-from``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import wordgpt
from wordgpt.config import DataConfig
from wordgpt.corpus.build import prepare
from wordgpt.errors import WordGPTError
from wordgpt.runs import checkpoint
from wordgpt.training.setup import build_model
from wordgpt.use.train_run import train

QUIET = {"progress": False, "tensorboard": False, "dtype": "fp32", "report": False}
OTHER = "the squire rode to the inn where the knight slept and the horse ate hay. " * 60


@pytest.fixture(scope="module")
def source(word_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("src") / "pre"
    train(word_data, out, preset="tiny", max_iters=30, eval_interval=10, **QUIET)
    return out


def test_a_fine_tune_with_the_same_vocabulary_starts_from_exactly_its_weights(
    word_data, source, tmp_path
):
    """Before any update, the new run's model is the source's, tensor for tensor, and
    scores exactly what the source scores on the same text."""
    plan = train(word_data, tmp_path / "ft", init_from=str(source), max_iters=5, dry_run=True)
    assert plan.preset == "finetune" and plan.init.same_vocabulary
    model, _ = build_model(plan)
    best = checkpoint.read(source / "best.pt")["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, best[k]), k
    src = wordgpt.load(source)
    m = wordgpt.load(source)
    m.gpt.load_state_dict(model.state_dict())
    assert m.evaluate("val").bits_per_char == src.evaluate("val").bits_per_char


def test_the_new_run_records_where_its_weights_came_from(word_data, source, tmp_path):
    out = tmp_path / "ft"
    r = train(word_data, out, init_from=str(source), max_iters=4, eval_interval=2, time_budget=None,
              **QUIET)  # fmt: skip
    assert r.step == 4  # its own step count, from 0
    src = checkpoint.read(source / "best.pt")
    for name in ("config.json", "summary.json"):
        got = json.loads((out / name).read_text())["init_from"]
        assert got["run"] == str(source.resolve()) and got["step"] == src["step"]
        assert got["val_loss"] == src["best_val"] and got["same_vocabulary"] is True
    ck = checkpoint.read(out / "last.pt", resume=True)
    assert ck["state"]["step"] == 4 and ck["provenance"]["init_from"]["step"] == src["step"]


@pytest.mark.slow
def test_a_fine_tune_cannot_change_the_models_shape_and_cannot_be_a_resume(
    word_data, source, tmp_path
):
    def run(*extra):
        return subprocess.run(
            [sys.executable, "-m", "wordgpt.cli", "train", "--data", str(word_data), "--out",
             str(tmp_path / "ft"), "--init-from", str(source), "--no-progress", *extra],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    for extra, message in [
        (["--n-embd", "64", "--n-head", "2"], "n_embd cannot change (it has n_embd=32)"),
        (["--n-layer", "3"], "n_layer cannot change"),
        (["--head", "adaptive"], "head cannot change"),
        (["--resume"], "choose one"),
    ]:
        r = run(*extra)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr, (
            r.stderr
        )
        assert r.stderr.count("\n") == 1
    r = run("--dropout", "0.1", "--max-iters", "2", "--dry-run")  # what may change, may
    assert r.returncode == 0 and "preset finetune" in r.stdout, r.stderr


def test_rows_are_mapped_by_token_string_across_vocabularies(source, tmp_path):
    """Another vocabulary: a token both have keeps the source's rows exactly, a new one
    starts from the mean of the source's rows; nothing else moves."""
    (tmp_path / "other.txt").write_text(OTHER)
    data = tmp_path / "other"
    prepare(data, DataConfig(dataset=str(tmp_path / "other.txt")), progress=False)
    plan = train(data, tmp_path / "ft", init_from=str(source), max_iters=2, dry_run=True)
    assert not plan.init.same_vocabulary
    model, provenance = build_model(plan)
    src = checkpoint.read(source / "best.pt")["model"]
    old = {t: i for i, t in enumerate(plan.init.tokenizer.token_strings())}
    shared = 0
    for i, t in enumerate(plan.tokenizer.token_strings()):
        for name in ("wte.weight", "lm_head.weight", "lm_head.bias"):
            got = model.state_dict()[name][i]
            want = src[name][old[t]] if t in old else src[name].mean(dim=0)
            assert (
                torch.allclose(got, want, atol=0, rtol=0) if t in old else torch.allclose(got, want)
            ), (t, name)
        shared += t in old
    assert 0 < shared < plan.tokenizer.vocab_size
    assert provenance["init_from"]["shared_tokens"] == shared
    for k, v in model.state_dict().items():
        if k not in ("wte.weight", "lm_head.weight", "lm_head.bias"):
            assert torch.equal(v, src[k]), k


def test_an_adaptive_head_over_another_vocabulary_is_refused_naming_tokenizer_from(
    word_data, tmp_path
):
    pre = tmp_path / "pre"
    train(word_data, pre, preset="tiny", max_iters=2, head="adaptive", cutoffs=(20,), **QUIET)
    (tmp_path / "other.txt").write_text(OTHER)
    data = tmp_path / "other"
    prepare(data, DataConfig(dataset=str(tmp_path / "other.txt")), progress=False)
    with pytest.raises(WordGPTError, match="--tokenizer-from"):
        train(data, tmp_path / "ft", init_from=str(pre), dry_run=True)
    same = tmp_path / "same"
    prepare(
        same, DataConfig(dataset=str(tmp_path / "other.txt")), tokenizer_from=pre, progress=False
    )
    assert train(same, tmp_path / "ft", init_from=str(pre), dry_run=True).init.same_vocabulary


def test_a_split_made_with_another_vocabulary_shows_its_unk_share_and_warns(
    source, tmp_path, capsys
):
    from wordgpt.cli import main

    (tmp_path / "other.txt").write_text(OTHER + " zorbulon quuxes " * 40)
    main(["prepare", "--dataset", str(tmp_path / "other.txt"), "--out", str(tmp_path / "o"),
          "--tokenizer-from", str(source), "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert "<unk>" in out and "their spelling" in out and "warning:" in out
    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    assert meta["splits"]["val"]["unk_share"] > 0.01 and meta["splits"]["val"]["unk_spell_bits"] > 0
