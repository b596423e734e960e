"""A run with an n-gram partner: its GPT trains on all but the held-out end of the training
split, where the mixture's weight is fitted once trained (RUN/partner.json); evaluation,
sampling, the eval command, the report and the model card use or name it; the dry run says it;
a partner whose training split is gone leaves the GPT alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wordgpt.corpus.tokenfiles import load_meta
from wordgpt.errors import WordGPTError
from wordgpt.model.mixture import Partner
from wordgpt.training.holdout import HELD_OUT, gpt_tokens, partner_order

from .helpers import FAST, cli


def test_the_partner_order_fits_the_keys_and_the_split():
    assert partner_order(100_000, 9_000, 4) == (4, None)
    assert partner_order(100_000, 9_000, 0) == (0, None)
    order, note = partner_order(100_000, 50_000, 4)  # 50,000^4 >= 2^62
    assert order == 3 and "does not fit" in note
    assert partner_order(1_000, 9_000, 4)[0] == 0  # 50 tokens held out: too few to fit on
    assert partner_order(10**9, 9_000, 4)[0] == 0  # too many to count
    assert gpt_tokens(1_000, 0) == 1_000 and gpt_tokens(1_000, 4) == 1_000 - 50
    with pytest.raises(WordGPTError, match="too short"):
        gpt_tokens(20, 4)


@pytest.fixture(scope="module")
def partner_run(word_data, tmp_path_factory):
    """A tiny run with a 3-gram partner, and the length of the training split its GPT got."""
    from wordgpt.training import setup
    from wordgpt.use.train_run import train

    seen = []
    real = setup.Trainer

    def watching(model, cfg, train, *a, **kw):
        seen.append(len(train))
        return real(model, cfg, train, *a, **kw)

    out = tmp_path_factory.mktemp("partner") / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(setup, "Trainer", watching)
    try:
        train(word_data, out, preset="tiny", ngram=3, max_iters=30, progress=False,
                           tensorboard=False, dtype="fp32", report=False)  # fmt: skip
    finally:
        mp.undo()
    return out, seen[0]


def test_a_run_with_a_partner_keeps_its_slice_from_the_gpt_and_fits_the_weight_there(
    partner_run, word_data
):
    from wordgpt.corpus.tokenfiles import load_split

    run, gpt_got = partner_run
    n = len(load_split(word_data, "train"))
    assert gpt_got == gpt_tokens(n, 3) and abs(n - gpt_got - n * HELD_OUT) <= 1  # not the end
    fit = json.loads((run / "partner.json").read_text())
    assert fit["order"] == 3 and fit["held_out_tokens"] == n - gpt_got
    assert 0 < fit["gpt_weight"] < 1
    h = fit["held_out_nats"]  # the fitted mixture beats both on the slice it was fitted on
    assert h["mixed"] < min(h["gpt"], h["ngram"])
    assert json.loads((run / "config.json").read_text())["train"]["ngram"] == 3


def test_evaluation_and_sampling_use_the_runs_partner_unless_told_not_to(partner_run):
    import wordgpt

    m = wordgpt.load(partner_run[0], device="cpu")
    r = m.evaluate()
    assert r.ngram["order"] == 3 and r.ngram["gpt_weight"] == m.partner_fit["gpt_weight"]
    assert r.ngram["bits_per_char"] < r.bits_per_char  # a 30-step GPT: the partner helps
    assert m.evaluate(ngram=0).ngram is None
    alone = m.evaluate(ngram=2).ngram  # another order: its weight fitted now
    assert alone["order"] == 2 and alone["bits_per_char"] != r.ngram["bits_per_char"]
    mixed = m.generate("the", max_new_tokens=12, temperature=0).ids
    gpt = m.generate("the", max_new_tokens=12, temperature=0, ngram=False).ids
    assert mixed != gpt  # a 30-step GPT and a book's 3-grams disagree
    m._partner = Partner(m.partner.kn, 0.0)  # the n-gram model alone: its greedy path
    ids = m.tokenizer.encode("the")
    for i in m.generate("the", max_new_tokens=6, temperature=0).ids:
        p = m.partner.kn.next_probs(ids)
        p[m.tokenizer.stoi["<unk>"]] = -1  # never drawn
        assert i == int(np.argmax(p))
        ids.append(i)


def test_the_eval_command_records_the_partner_with_the_plain_figure(partner_run, tmp_path):
    import shutil

    from wordgpt.cli import main

    run = tmp_path / "run"
    shutil.copytree(partner_run[0], run)
    main(["eval", str(run)])
    main(["eval", str(run), "--ngram", "0"])
    d = json.loads((run / "eval.json").read_text())
    assert d["ngram"]["order"] == 3  # the run's own partner: the plain record
    assert d["variants"]["val, stride block, GPT alone"]["ngram"] is None


def test_a_partner_whose_training_split_is_gone_leaves_the_gpt_alone(partner_run, tmp_path, capsys):
    import shutil

    import wordgpt

    run = tmp_path / "run"
    shutil.copytree(partner_run[0], run)
    m = wordgpt.load(run, device="cpu")
    m.config["data_dir"] = str(tmp_path / "gone")
    assert m.partner is None and "GPT alone" in capsys.readouterr().err
    assert len(m.generate("the", max_new_tokens=3).ids) == 3


def test_every_surface_heads_with_the_figure_eval_prints_last(partner_run, tmp_path):
    """The API's headline, the report's first evaluation row and the page's runs table give
    the mixture's figure (what ``wordgpt eval`` prints last), the GPT alone beside it; the
    report says how its samples were drawn."""
    import shutil

    import wordgpt
    from wordgpt.use.report import write_report
    from wordgpt.use.serve.state import run_summary

    run = tmp_path / "run"
    shutil.copytree(partner_run[0], run)
    r = wordgpt.load(run, device="cpu").evaluate()
    mixed, alone = r.ngram["bits_per_char"], r.bits_per_char
    assert r.headline_bits_per_char == mixed != alone
    assert str(r).endswith(f"{mixed:.4f} bits/char")
    assert r.to_dict()["headline_bits_per_char"] == mixed
    write_report(run)
    md = (run / "report.md").read_text()
    assert f"| val bits per character | **{mixed:.4f}**: the GPT mixed with a 3-gram" in md
    assert f"| the GPT alone | {alone:.4f} (whole split" in md
    assert md.index("val bits per character") < md.index("the GPT alone")
    assert "Drawn with its 3-gram partner (GPT weight" in md
    (run / "eval.json").write_text(json.dumps(r.to_dict()))
    row = run_summary("run", run)
    assert (row["val_bits_per_char"], row["gpt_bits_per_char"]) == (mixed, alone)


def test_a_text_says_how_much_of_it_the_partner_wrote(partner_run):
    """``print(m.generate(...))`` and ``sample`` say the mixture and the GPT's weight, and
    when the n-gram model writes most of the text (a barely trained GPT's weight is low)."""
    import wordgpt
    from wordgpt.model.mixture import Partner

    m = wordgpt.load(partner_run[0], device="cpu")
    g = m.generate("the", max_new_tokens=3, seed=1)
    assert str(g).endswith(f"drawn {m.partner.describe()}")
    assert (
        "GPT weight" in g.mixed and m.generate("the", max_new_tokens=3, ngram=False).mixed is None
    )
    r = cli("sample", partner_run[0], "--max-new-tokens", "3", "--seed", "1")
    assert f"drawn {m.partner.describe()}; --no-ngram: the GPT alone" in r.stderr
    kn = m.partner.kn
    assert "the n-gram model writes most" in Partner(kn, 0.04).describe()
    assert "writes most" not in Partner(kn, 0.6).describe()


def test_the_model_card_says_the_partner_is_not_exported(partner_run, run):
    import wordgpt
    from wordgpt.use.export import model_card

    card = model_card(wordgpt.load(partner_run[0], device="cpu"), "gpt2", "x")
    assert "not exported: the run's 3-gram partner" in card
    assert "partner" not in model_card(wordgpt.load(run, device="cpu"), "gpt2", "x")


def test_on_a_short_budget_the_weight_is_fitted_on_a_sample_of_the_held_out_slice(
    word_data, tmp_path, monkeypatch, capsys
):
    """What a budget's share holds at the measured speed: here, a share so small that the
    weight is fitted on the fewest tokens allowed (the start of the slice), and it says so."""
    from wordgpt.training import budget as budget_mod
    from wordgpt.use.train_run import train

    monkeypatch.setattr(budget_mod, "PARTNER_SHARE", 1e-9)
    monkeypatch.setattr(budget_mod, "MIN_FIT_TOKENS", 60)
    train(word_data, tmp_path / "r", preset="tiny", ngram=3, max_iters=10, time_budget=600,
          **FAST)  # fmt: skip
    fit = json.loads((tmp_path / "r" / "partner.json").read_text())
    n = load_meta(word_data)["splits"]["train"]["tokens"]
    assert fit["held_out_tokens"] == 60
    assert f"fitted on 60 of the last {n - gpt_tokens(n, 3):,} training tokens" in (
        capsys.readouterr().out)  # fmt: skip
