"""The plan (training/plan.py): every check made before anything is written, and a frozen
Plan that says what would run (train --dry-run): the partner and the tokens a pass is, the
settings a resume may change, a pass cap already reached; the set-up builds from it without
changing it."""

from __future__ import annotations

import json
import math

import pytest

from wordgpt.errors import WordGPTError
from wordgpt.training.holdout import gpt_tokens
from wordgpt.use.train_run import train

from .helpers import FAST


def test_the_dry_run_says_the_partner_and_the_tokens_a_pass_is(word_data, tmp_path):
    from wordgpt.corpus.tokenfiles import load_meta
    from wordgpt.use.train_run import train

    n = load_meta(word_data)["splits"]["train"]["tokens"]
    plan = str(train(word_data, tmp_path / "r", preset="tiny", ngram=3, epochs=2, dry_run=True))
    assert "n-gram partner: order 3" in plan and f"of {gpt_tokens(n, 3):,} tokens" in plan
    plain = str(train(word_data, tmp_path / "r", preset="tiny", epochs=2, dry_run=True))
    assert "partner" not in plain and f"of {n:,} tokens" in plain


def test_unknown_settings_and_shape_changes_on_resume_are_errors(word_data, tmp_path):
    with pytest.raises(WordGPTError, match="unknown setting"):
        train(word_data, tmp_path, preset="tiny", n_layers=3)
    train(word_data, tmp_path, preset="tiny", max_iters=2, **FAST)
    with pytest.raises(WordGPTError, match="cannot change on resume"):
        train(word_data, tmp_path, resume=True, n_layer=3)


def test_a_resume_past_its_epochs_says_so_and_a_larger_epochs_goes_on(word_data, tmp_path):
    r = train(word_data, tmp_path, preset="tiny", max_iters=10**6, epochs=0.2, **FAST)
    n = json.loads((word_data / "meta.json").read_text())["splits"]["train"]["tokens"]
    assert r.stopped == "epochs" and r.step == math.ceil(0.2 * n / (8 * 32))
    with pytest.raises(WordGPTError, match=r"already made 0\.2\d passes .* larger --epochs"):
        train(word_data, tmp_path, resume=True, **FAST)
    more = train(word_data, tmp_path, resume=True, epochs=0.4, **FAST)
    assert more.stopped == "epochs" and more.step == math.ceil(0.4 * n / (8 * 32))


def test_the_plan_is_frozen_once_built_and_a_dry_run_writes_nothing(word_data, tmp_path):
    import dataclasses

    from wordgpt.corpus.tokenfiles import load_meta

    out = tmp_path / "r"
    p = train(word_data, out, preset="tiny", ngram=3, dry_run=True)
    assert not out.exists()
    assert p.train.ngram == 3 and p.model.vocab_size == load_meta(word_data)["vocab_size"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train = dataclasses.replace(p.train, ngram=0)


def test_the_set_up_builds_what_the_plan_says_without_changing_it(word_data, vectors, tmp_path):
    """Vectors 24 wide with --embeddings-fit model: the model built is 24 wide and says where
    its embedding came from; the plan still says what was asked (32)."""
    from wordgpt.training.setup import build_model

    p = train(word_data, tmp_path / "r", preset="tiny", dry_run=True,
              init_embeddings=str(vectors), embeddings_fit="model")  # fmt: skip
    model, provenance = build_model(p)
    assert model.cfg.n_embd == 24 and p.model.n_embd == 32
    assert provenance["embeddings"]["width"] == 24 and provenance["init_from"] is None


def test_config_json_starts_the_same_run_again_and_flags_override_it(run, word_data, tmp_path,
                                                                      capsys):  # fmt: skip
    """``train --config RUN/config.json``: the run's preset and every setting, but those the
    command line gives; a file that is no run's config is one line."""
    import json

    from .helpers import one_line_error, run_main

    out = tmp_path / "again"
    r = run_main(["train", "--data", word_data, "--out", out, "--config", run / "config.json",
                  "--max-iters", 3, "--no-report", "--no-progress"], capsys)  # fmt: skip
    assert r.returncode == 0, r.stderr
    was, now = (json.loads((d / "config.json").read_text()) for d in (run, out))
    assert now["preset"] == was["preset"] == "tiny" and now["model"] == was["model"]
    assert now["train"]["stop"]["max_iters"] == 3 and was["train"]["stop"]["max_iters"] == 20
    assert {k: v for k, v in now["train"].items() if k != "stop"} == {
        k: v for k, v in was["train"].items() if k != "stop"}  # fmt: skip
    (tmp_path / "x.json").write_text('{"hello": 1}')
    err = one_line_error(run_main(["train", "--data", word_data, "--out", tmp_path / "y",
                                   "--config", tmp_path / "x.json"], capsys))  # fmt: skip
    assert "no run's config.json" in err
