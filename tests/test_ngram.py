"""The n-gram partner: interpolated Kneser-Ney against a plain reference, a proper
distribution, and its mixture with the GPT (a fitted weight; an online one that never
looks ahead); a run with a partner: its slice kept from the GPT, partner.json, and the
partner in evaluation, sampling and the page."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from wordgpt.errors import WordGPTError
from wordgpt.use.ngram import (
    HELD_OUT,
    KneserNey,
    Partner,
    fit_weight,
    gpt_tokens,
    mixed_nll,
    online_mixed_nll,
    partner_order,
    read_split_prob,
)


def reference_kn(tokens: list[int], V: int, N: int):
    """Interpolated Kneser-Ney the plain way, with dictionaries: counts at the highest order,
    continuation counts below, an absolute discount n1 / (n1 + 2 n2) per order, the unigrams
    interpolated with the uniform distribution (each discount within 0.05 and 0.95)."""
    grams = {n: Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
             for n in range(1, N + 1)}  # fmt: skip
    use = {N: grams[N]}
    for n in range(N - 1, 0, -1):
        use[n] = Counter(g[1:] for g in grams[n + 1])  # distinct left extensions
    D = {}
    for n, c in use.items():
        n1, n2 = sum(v == 1 for v in c.values()), sum(v == 2 for v in c.values())
        D[n] = min(max(n1 / (n1 + 2 * n2), 0.05), 0.95) if n1 + n2 else 0.5

    def p(context: tuple, w: int) -> float:
        S = sum(use[1].values())
        pr = max(use[1][(w,)] - D[1], 0) / S + D[1] * len(use[1]) / S / V
        for n in range(2, N + 1):
            if len(context) < n - 1:
                break
            h = tuple(context[len(context) - n + 1 :])
            followers = {g: c for g, c in use[n].items() if g[:-1] == h}
            total = sum(followers.values())
            if total:
                pr = max(use[n][h + (w,)] - D[n], 0) / total + D[n] * len(followers) / total * pr
        return pr

    return p


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_is_the_plain_reference_and_sums_to_one(order):
    rng = np.random.default_rng(order)
    V = 12
    tokens = rng.integers(0, V, 400)
    tokens[200:260] = tokens[20:80]  # a repeated passage: long grams that recur
    kn, ref = KneserNey(tokens, V, order), reference_kn(tokens.tolist(), V, order)
    for _ in range(6):
        ctx = rng.integers(0, V, order - 1)
        cut = rng.integers(0, order)  # a shorter context at the start of a text
        given = np.where(np.arange(order - 1) < cut, -1, ctx)
        probs = kn.prob(np.tile(given, (V, 1)), np.arange(V))
        assert probs.sum() == pytest.approx(1.0, abs=1e-12) and (probs > 0).all()
        short = tuple(int(c) for c in ctx[cut:])
        assert probs == pytest.approx([ref(short, w) for w in range(V)], rel=1e-12)


def test_a_crafted_bigram_by_hand():
    """'a b a b a c' (a=0, b=1, c=2, V=3), order 2. Bigram counts ab 2, ba 2, ac 1: n1 = 1,
    n2 = 2, D2 = 1/5. Unigram continuation counts: a 1 (after b), b 1, c 1: n1 = 3, D1 =
    0.95 (capped). P1(w) = (1 - .95)/3 + .95 * 3/3/3 = 1/3 for each. After a: total 3, types
    2: P(b|a) = (2 - .2)/3 + .2 * 2/3 * 1/3 = 0.6 + 0.04444."""
    kn = KneserNey(np.array([0, 1, 0, 1, 0, 2]), 3, 2)
    p = kn.prob(np.array([[0], [0], [0]]), np.array([0, 1, 2]))
    assert p[1] == pytest.approx(1.8 / 3 + 0.2 * 2 / 3 / 3)
    assert p[2] == pytest.approx(0.8 / 3 + 0.2 * 2 / 3 / 3)
    assert p[0] == pytest.approx(0.2 * 2 / 3 / 3)
    assert kn.split_prob(np.array([0, 1]))[0] == pytest.approx(p[1])


def test_the_fitted_weight_is_the_best_mixture():
    rng = np.random.default_rng(0)
    p_gpt, p_kn = rng.uniform(0.01, 1, 5000), rng.uniform(0.01, 1, 5000)
    w = fit_weight(-np.log(p_gpt), p_kn)
    best = min(
        np.linspace(0.01, 0.999, 999), key=lambda v: -np.log(v * p_gpt + (1 - v) * p_kn).sum()
    )
    assert w == pytest.approx(best, abs=0.002)
    assert mixed_nll(-np.log(p_gpt), p_kn, w).sum() <= -np.log(p_gpt).sum()


def test_the_online_weight_never_looks_ahead_and_learns_which_partner_is_better():
    rng = np.random.default_rng(1)
    n = 3000
    gpt, kn = rng.uniform(0.2, 0.3, n), rng.uniform(0.01, 0.02, n)  # the GPT is better
    a = online_mixed_nll(-np.log(gpt), kn, prior=0.5, chunk=700)
    later = kn.copy()
    later[1234:] = 0.9  # the n-gram model becomes better from token 1234
    b = online_mixed_nll(-np.log(gpt), later, prior=0.5, chunk=700)
    assert np.array_equal(a[:1234], b[:1234]) and not np.allclose(a[1240:], b[1240:])
    assert a[0] == pytest.approx(-np.log(0.5 * gpt[0] + 0.5 * kn[0]), rel=1e-3)  # the prior
    assert a[-100:].mean() == pytest.approx(-np.log(0.98 * gpt[-100:] + 0.02 * kn[-100:]).mean(),
                                            rel=1e-9)  # fmt: skip


def test_no_token_is_ever_impossible_and_short_texts_are_refused_or_empty():
    """A text without a single gram seen once (discount n1 / (n1 + 2 n2) = 0) still leaves
    every token some probability; too short a training text is one clear error."""
    kn = KneserNey(np.array([0, 1, 2] * 3), 5, 3)
    p = kn.prob(np.array([[0, 1]] * 5), np.arange(5))
    assert (p > 0).all() and p.sum() == pytest.approx(1.0)
    assert len(kn.split_prob(np.array([3]))) == 0
    from wordgpt.errors import WordGPTError

    with pytest.raises(WordGPTError, match="too few"):
        KneserNey(np.array([1, 2]), 5, 3)


def test_the_next_token_distribution_is_the_models_and_sums_to_one():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 7, 400)
    kn = KneserNey(t, 7, 3)
    for context in ([], [4], [1, 2], [5, 1, 2]):  # shorter than the order, and longer
        p = kn.next_probs(context)
        assert p.shape == (7,) and p.sum() == pytest.approx(1.0)
        padded = ([-1, -1] + context)[-2:]
        for w in range(7):
            assert p[w] == pytest.approx(kn.prob(np.array([padded]), np.array([w]))[0])


def test_the_mixture_of_a_partner_is_the_weighted_sum_of_both_distributions():
    import torch

    kn = KneserNey(np.array([0, 1, 2, 0, 1, 2, 0, 1, 3]), 4, 2)
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0]])
    gpt, ngram = logits.softmax(-1)[0], torch.from_numpy(kn.next_probs([0])).float()
    for w in (0.0, 0.3, 1.0):
        got = Partner(kn, w).mix(logits, [2, 0]).exp()[0]
        torch.testing.assert_close(got, w * gpt + (1 - w) * ngram)
    assert Partner(kn, 0.0).mix(logits, [2, 0]).argmax() == 1  # after 0 the book says 1


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


# ------------------------------------------------------------------------ a run with a partner


@pytest.fixture(scope="module")
def partner_run(word_data, tmp_path_factory):
    """A tiny run with a 3-gram partner, and the length of the training split its GPT got."""
    from wordgpt.training import train as train_module

    seen = []
    real = train_module.Trainer

    def watching(model, cfg, train, *a, **kw):
        seen.append(len(train))
        return real(model, cfg, train, *a, **kw)

    out = tmp_path_factory.mktemp("partner") / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(train_module, "Trainer", watching)
    try:
        train_module.train(word_data, out, preset="tiny", ngram=3, max_iters=30, progress=False,
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


def test_the_report_says_the_partner_is_on_with_its_figure(partner_run, tmp_path):
    import shutil

    import wordgpt
    from wordgpt.use.report import write_report

    run = tmp_path / "run"
    shutil.copytree(partner_run[0], run)
    write_report(run)
    md = (run / "report.md").read_text()
    mixed = wordgpt.load(run, device="cpu").evaluate().ngram["bits_per_char"]
    assert f"| with the n-gram partner | **{mixed:.4f}**: the GPT mixed with a 3-gram" in md


def test_the_model_card_says_the_partner_is_not_exported(partner_run, run):
    import wordgpt
    from wordgpt.use.export import model_card

    card = model_card(wordgpt.load(partner_run[0], device="cpu"), "gpt2", "x")
    assert "not exported: the run's 3-gram partner" in card
    assert "partner" not in model_card(wordgpt.load(run, device="cpu"), "gpt2", "x")


def test_the_dry_run_says_the_partner_and_the_tokens_a_pass_is(word_data, tmp_path):
    from wordgpt.corpus.tokenfiles import load_meta
    from wordgpt.training.train import train

    n = load_meta(word_data)["splits"]["train"]["tokens"]
    plan = str(train(word_data, tmp_path / "r", preset="tiny", ngram=3, epochs=2, dry_run=True))
    assert "n-gram partner: order 3" in plan and f"of {gpt_tokens(n, 3):,} tokens" in plan
    plain = str(train(word_data, tmp_path / "r", preset="tiny", epochs=2, dry_run=True))
    assert "partner" not in plain and f"of {n:,} tokens" in plain


def test_reading_the_n_gram_counts_never_looks_ahead_and_learns_a_text_that_repeats():
    """Adaptive evaluation's n-gram model counts each chunk once it has scored it: a text
    whose second half repeats the first costs far less there than under the static model, a
    change late in the text leaves every earlier probability as it was, and one chunk as
    long as the text is the static model."""
    rng = np.random.default_rng(3)
    V, train = 200, rng.integers(0, 200, 2000)
    half = rng.integers(0, 200, 300)
    text = np.concatenate([half, half])
    static = KneserNey(train, V, 3).split_prob(text)
    read = read_split_prob(train, text, V, 3, chunk=64)
    assert np.array_equal(read[:63], static[:63])  # the first chunk: nothing read yet
    assert -np.log(read[330:]).sum() < 0.5 * -np.log(static[330:]).sum()
    assert -np.log(read[:300]).sum() == pytest.approx(-np.log(static[:300]).sum(), rel=0.05)
    changed = text.copy()
    changed[450:] = (changed[450:] + 1) % V
    after = read_split_prob(train, changed, V, 3, chunk=64)
    assert np.array_equal(read[:449], after[:449]) and not np.allclose(read[449:], after[449:])
    assert np.allclose(read_split_prob(train, text, V, 3, chunk=len(text)), static)
