"""Reading a split by characters (``eval --chars``): the distributions it reads are the ones the
token-level figures score, the word model read by characters costs no more than by tokens,
the mixer is fitted once and kept, and what cannot be read is refused in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from wordgpt.adapt_config import AdaptConfig
from wordgpt.errors import WordGPTError
from wordgpt.model.gpt import GPT
from wordgpt.use.adapt import Adaptation
from wordgpt.use.evaluate import adaptive_nll, token_nll, token_probs
from wordgpt.use.loaded import load

from .helpers import cli, one_line_error, tiny_gpt

BLOCK = 16


@pytest.fixture(scope="module")
def model() -> GPT:
    return tiny_gpt(40, BLOCK)


@pytest.mark.parametrize("stride", [None, 5])
@pytest.mark.parametrize("rule", [None, "sgd", "rms"])
def test_the_distributions_read_are_those_the_token_figures_score(model, stride, rule):
    data = np.random.default_rng(0).integers(0, 40, 16 * 5 + 7).astype(np.uint16)
    adapt = None
    if rule is not None:  # a rate that learns: 0.05 for sgd, 1e-3 for rms
        cfg = AdaptConfig(adapt_rule=rule, adapt_lr=0.05 if rule == "sgd" else 1e-3)
        adapt = Adaptation.of(cfg, model, data[::-1].copy(), BLOCK)
    idx, probs = zip(*token_probs(model, data, BLOCK, stride, adapt), strict=True)
    idx, probs = np.concatenate(idx), np.concatenate(probs)
    np.testing.assert_array_equal(idx, np.arange(len(data) - 1))  # each target once, in order
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    got = -np.log(probs[idx, data[1:].astype(np.int64)])
    if adapt is None:
        want = token_nll(model, data, BLOCK, stride=stride)
    else:
        want = adaptive_nll(model, data, BLOCK, adapt, stride=stride)
        assert not np.allclose(want, token_nll(model, data, BLOCK, stride=stride), rtol=1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def run_dir(word_data, tmp_path_factory):
    from wordgpt.use.train_run import train

    out = tmp_path_factory.mktemp("chars") / "run"
    train(word_data, out, preset="tiny", max_iters=30, ngram=3, dtype="fp32", progress=False,
          tensorboard=False, report=False)  # fmt: skip
    return out


def test_by_characters_the_word_model_costs_no_more_than_by_tokens(run_dir):
    m = load(run_dir)
    r = m.evaluate(chars=True)
    c = r.by_chars
    assert c["word_model_bits_per_char"] <= r.ngram["bits_per_char"] + 1e-9
    assert c["word_model_bits_per_char"] > 0.9 * r.ngram["bits_per_char"]  # the same model
    assert r.headline_bits_per_char == c["bits_per_char"]
    fit = json.loads((run_dir / "charmix.json").read_text())
    assert fit["fitted_on_chars"] > 1000 and "w1" in fit and "w1" not in c
    # the mixer is fitted once: a second evaluation reads it and gives the same figures
    again = m.evaluate(chars=True).by_chars
    assert again["bits_per_char"] == pytest.approx(c["bits_per_char"], rel=1e-6)


@pytest.mark.slow
def test_eval_by_characters_from_the_command_line(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    (run / "charmix.json").unlink(missing_ok=True)
    r = cli("eval", run, "--chars", "--adapt", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["headline_bits_per_char"] == got["by_chars"]["bits_per_char"]
    assert got["by_chars"]["adaptive_bits_per_char"] > 0
    record = json.loads((run / "eval.json").read_text())
    assert any("by characters" in k for k in record["variants"])
    r = cli("eval", run, "--warm", "--adapt", "--adapt-rule", "sgd")
    assert r.returncode == 0 and "warmed on" in r.stdout, r.stderr
    record = json.loads((run / "eval.json").read_text())
    warmed = record["variants"]["val, stride block, adaptive, 3-gram, warmed"]["warmed"]
    assert warmed["rule"] == "sgd" and warmed["lr"] == pytest.approx(0.01)  # half the rule's
    (run / "charmix.json").write_text('{"w1": [[1, 2]], "w2": "x"}')
    r = cli("eval", run, "--chars")
    assert r.returncode == 0 and "fitting the mixer again" in r.stderr
    assert json.loads((run / "charmix.json").read_text())["w1"] != [[1, 2]]
    assert "--ngram" in one_line_error(cli("eval", run, "--chars", "--ngram", "2"))
    data = shutil.copytree(json.loads((run / "config.json").read_text())["data_dir"],
                           tmp_path / "data")  # fmt: skip
    (data / "val.unk.jsonl").unlink()
    assert "prepare it again" in one_line_error(cli("eval", run, "--chars", "--data", data))


def test_a_split_too_large_to_read_by_characters_is_refused_first(run_dir, monkeypatch):
    from wordgpt.errors import WordGPTError
    from wordgpt.use import chars

    monkeypatch.setattr(chars, "machine_memory", lambda device: (1e6, "machine"))
    with pytest.raises(WordGPTError, match="shorter text"):
        load(run_dir).evaluate(chars=True)


def warmed_by_hand(m, held: np.ndarray):
    """The run's GPT after reading ``held`` the plain way: consecutive windows, each one step
    of the default rule at half its rate on the window's mean loss (the last, shorter window
    by its share of a block: each token learned from as much as in a whole one)."""
    import torch

    from wordgpt.use.adapt import WARM_SHARE, Learner

    block = m.gpt.cfg.block_size
    how = Adaptation.of(AdaptConfig(), m.gpt, np.asarray(m.training_tokens()), block)
    learner = Learner(m.gpt, how, share=WARM_SHARE)
    for at in range(0, len(held) - 1, block):
        row = torch.from_numpy(held[at : at + block + 1].astype(np.int64))[None]
        loss = learner.model(row[:, :-1], row[:, 1:], reduction="none").mean()
        learner.learn(loss * min(1.0, (row.shape[1] - 1) / block))
    return learner.model


def test_a_warmed_evaluation_reads_on_from_the_held_out_slice(run_dir):
    """--warm: the GPT first learns from the end of the training split it did not train on,
    and reads val with what it learned (the static figures too); the partner's weight and the
    character mixer are fitted by the GPT that never saw that slice; the run's model is left
    as it was."""
    from wordgpt.corpus.tokenfiles import load_meta, load_split, split_bits_per_char
    from wordgpt.training.holdout import gpt_tokens
    from wordgpt.use.evaluate import evaluate
    from wordgpt.use.loaded import read_spell_bits

    m = load(run_dir)
    before = m.evaluate(chars=True)
    (run_dir / "charmix.json").unlink()  # fitted again within the warmed evaluation
    warm = m.evaluate(chars=True, warm=True)
    train = np.asarray(m.training_tokens())
    cut = gpt_tokens(len(train), m.partner_fit["order"])
    assert warm.warmed["tokens"] == len(train) - cut > 0
    assert warm.warmed["tokens"] % m.gpt.cfg.block_size  # its last window is a short one
    assert warm.warmed["lr"] == pytest.approx(AdaptConfig().rate / 2)
    assert warm.by_chars["mixer"] == before.by_chars["mixer"]  # fitted by the unwarmed GPT
    assert warm.ngram["gpt_weight"] == before.ngram["gpt_weight"]
    assert warm.bits_per_char != pytest.approx(before.bits_per_char, rel=1e-4)
    val, block = load_split(m.data_dir, "val"), m.gpt.cfg.block_size
    counts = load_meta(m.data_dir)["splits"]["val"]

    def figure(model) -> float:
        return split_bits_per_char(counts, float(token_nll(model, val, block).mean()))

    assert warm.bits_per_char == pytest.approx(figure(warmed_by_hand(m, train[cut - 1 :])),
                                               rel=1e-5)  # fmt: skip
    other = warmed_by_hand(m, train[: len(train) - cut + 1])  # the same length, elsewhere
    assert warm.bits_per_char != pytest.approx(figure(other), rel=1e-5)
    # the adaptive reading starts from the warmed weights too
    how = Adaptation.of(AdaptConfig(), m.gpt, train, block)
    read = m.evaluate(adapt=AdaptConfig(), warm=True, ngram=0)
    hand = evaluate(warmed_by_hand(m, train[cut - 1 :]), val, counts, block_size=block,
                    adapt=how, read_spell_bits=read_spell_bits(m.tokenizer, m.data_dir, "val",
                                                               load_meta(m.data_dir)))  # fmt: skip
    assert read.adaptive_bits_per_char == pytest.approx(hand.adaptive_bits_per_char, rel=1e-5)
    assert read.adaptive_bits_per_char != pytest.approx(read.bits_per_char, rel=1e-4)
    assert m.evaluate().bits_per_char == pytest.approx(before.bits_per_char, rel=1e-9)
    with pytest.raises(WordGPTError, match="--ngram"):
        m.evaluate(ngram=2, warm=True)  # a partner fitted now would be fitted on what it read
    with pytest.raises(WordGPTError, match="val split"):
        m.evaluate("train", warm=True)  # the split that holds the slice it learned from
    # as a run trained without a partner (its partner.json, had one been fitted after
    # training, would hold nothing out: the training config says what was held out)
    m.config = {**m.config, "train": {**m.config["train"], "ngram": 0}}
    with pytest.raises(WordGPTError, match="trained on all of it"):
        m.evaluate(warm=True)


@pytest.mark.slow
def test_the_ladder_has_the_warm_up_for_a_run_that_held_a_slice_out(run_dir):
    """benchmarks/quality.py --ladder: a run trained with a partner also has the rows of
    ``eval --warm``, static after the reading by characters and adaptive last (a run that
    held nothing out has neither: the ensemble's ladder test)."""
    from .helpers import load_benchmark

    rows = load_benchmark("quality").ladder(run_dir)
    m = load(run_dir)
    warm = m.evaluate(stride=m.gpt.cfg.block_size // 2, adapt=AdaptConfig(), chars=True,
                      warm=True)  # fmt: skip
    assert len(rows) == 10 and "--warm" in rows[6][0] and "--warm" in rows[-1][0]
    assert rows[6][1] == pytest.approx(warm.by_chars["bits_per_char"], rel=1e-9)
    assert rows[-1][1] == pytest.approx(warm.by_chars["adaptive_bits_per_char"], rel=1e-9)


SINGLES = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]


@pytest.fixture(scope="module")
def rare_run(tmp_path_factory):
    """A run on a text whose training split has words that come once (<unk>: min_count 2),
    some of them in its last part, which the mixer is fitted on."""
    from wordgpt.config import DataConfig
    from wordgpt.corpus.build import prepare
    from wordgpt.use.train_run import train

    root = tmp_path_factory.mktemp("rare")
    body = "the knight and the squire rode on the road. the squire spoke. "
    at = dict(zip((14, 42, 70, 98, 122, 124), SINGLES, strict=True))  # the last two: held out
    text = "".join(
        body + (f"{at[i]} the knight {at[i]}s. " if i in at else "") for i in range(140)
    )  # "alphas" comes once too
    (root / "t.txt").write_text(text)
    prepare(root / "d", DataConfig(dataset=str(root / "t.txt"), space_prefix=False,
                                   val_fraction=0.1), workers=2, chunk_size=256)  # fmt: skip
    train(root / "d", root / "run", preset="tiny", max_iters=5, ngram=3, dtype="fp32",
          progress=False, tensorboard=False, report=False)  # fmt: skip
    return root / "d", root / "run"


def test_prepare_keeps_the_training_splits_unk_words_in_order(rare_run, tmp_path):
    from wordgpt.config import DataConfig
    from wordgpt.corpus.build import prepare
    from wordgpt.corpus.tokenfiles import load_split, load_unk_words

    data, run = rare_run
    words = load_unk_words(data, "train")
    want = [w for s in SINGLES for w in (s, s + "s")]
    assert words == want
    assert int((np.asarray(load_split(data, "train")) == 0).sum()) == len(words)
    again = tmp_path / "again"  # the run's tokenizer, prepared anew: the same words
    prepare(again, DataConfig(dataset=str(data.parent / "t.txt"), space_prefix=False,
                              val_fraction=0.1), tokenizer_from=load(run).tokenizer,
            workers=2, chunk_size=256)  # fmt: skip
    assert load_unk_words(again, "train") == want


def test_the_mixer_is_fitted_on_the_held_out_words_as_new_words(rare_run, monkeypatch, capsys):
    """The held-out slice's <unk> words are read (none of its characters left out), spelled
    by a lexicon without those only it has; a folder that does not keep them leaves their
    characters out, and its fit is made again when they are kept."""
    from wordgpt.corpus.tokenfiles import load_unk_words
    from wordgpt.training.holdout import gpt_tokens
    from wordgpt.use import chars

    data, run = rare_run
    m = load(run)
    train = np.asarray(m.training_tokens())
    cut = gpt_tokens(len(train), m.partner_fit["order"])
    words = load_unk_words(data, "train")
    before = set(words[: int((train[:cut] == 0).sum())])
    held = set(words[int((train[:cut] == 0).sum()) :])  # the slice's own words
    assert held == {"omega", "omegas", "sigma", "sigmas"} and not held & before
    lexicons = []
    real = chars.CharView

    def view(tokenizer, alphabet, words=(), spelling=None):
        lexicons.append((list(words), set((spelling or tokenizer.spelling()).lexicon)))
        return real(tokenizer, alphabet, words=words, spelling=spelling)

    texts = []
    real_features = chars.features

    def features(alphabet, reading, text, start, adaptive):
        texts.append(text[:start])
        return real_features(alphabet, reading, text, start, adaptive)

    monkeypatch.setattr(chars, "CharView", view)
    monkeypatch.setattr(chars, "features", features)
    (run / "charmix.json").unlink(missing_ok=True)
    m.evaluate(chars=True)
    assert texts and all(chars.PLACEHOLDER not in t for t in texts)  # the fit's, the split's
    at = [texts[-1].find(f"{w} the knight {w}s.") for w in SINGLES]  # the whole training text
    assert -1 not in at and at == sorted(at)  # its <unk> words spelled out, in order
    with pytest.raises(WordGPTError, match="val split"):
        m.evaluate("train", chars=True)  # its models count it: they would read what they know
    fit = json.loads((run / "charmix.json").read_text())
    assert fit["unk_words_read"]
    itos = m.tokenizer.token_strings()
    held_words = words[int((train[:cut] == 0).sum()) :]
    held_chars = sum(len(s) for s in chars.token_strings(itos, train[cut:], held_words))
    assert fit["fitted_on_chars"] == held_chars  # every character, the <unk> words' too
    views = dict((tuple(w), lex) for w, lex in lexicons)
    fitted = views[tuple(held_words)]  # the fit's view, built with the slice's words
    assert not fitted & held and before <= fitted
    whole = views[tuple(load_unk_words(data, "val"))]  # the split's: the whole lexicon
    assert held | before <= whole
    shutil.move(data / "train.unk.jsonl", data / "kept.jsonl")
    try:  # a folder that does not keep them: the fit made again, their characters left out
        old = load(run).evaluate(chars=True)
        fit = json.loads((run / "charmix.json").read_text())
        assert not fit["unk_words_read"] and fit["fitted_on_chars"] < held_chars
        assert old.by_chars["bits_per_char"] > 0
    finally:
        shutil.move(data / "kept.jsonl", data / "train.unk.jsonl")
    capsys.readouterr()
    load(run).evaluate(chars=True)  # kept again: fitted again, with them
    assert "fitting the mixer again" in capsys.readouterr().err
    assert json.loads((run / "charmix.json").read_text())["unk_words_read"]
