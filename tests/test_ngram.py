"""The n-gram model and its mixture with the GPT (model/ngram.py, model/mixture.py):
interpolated Kneser-Ney against a plain reference, a proper distribution, counts that read a
text without looking ahead, a fitted weight and an online one that never looks ahead (a run
with a partner is test_partner.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from wordgpt.errors import WordGPTError
from wordgpt.model.mixture import (
    Partner,
    PartnerReading,
    fit_weight,
    mixed_nll,
    online_mixed_nll,
)
from wordgpt.model.ngram import KneserNey, read_split_prob


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


# ------------------------------------------------------------------------ a run with a partner


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


@pytest.mark.parametrize("reading", [False, True])
def test_the_whole_distributions_mixed_in_parts_are_the_token_figures_mixture(reading):
    """PartnerReading mixes whole next-token distributions (what eval --chars reads), fed in
    parts of any size: each row sums to 1, and each target's probability is the one the
    token-level figure scores: the run's weight and the training counts (static), or the
    counts that read the text in chunks and the weight that follows the leader (reading)."""
    rng = np.random.default_rng(4)
    V, train = 60, rng.integers(0, 60, 1500)
    text = np.concatenate([train[:200], rng.integers(0, 60, 250), train[:200]])
    p = rng.dirichlet(np.full(V, 0.3), len(text) - 1)  # a "GPT" that is sure of a few tokens
    partner = Partner(KneserNey(train, V, 3), 0.7)
    mixing = PartnerReading(partner, text, train if reading else None, chunk=64)
    parts, at = [], 0
    for size in rng.integers(1, 90, 100).tolist():
        idx = np.arange(at, min(at + size, len(p)))
        if len(idx):
            parts.append(mixing.mix(idx, p[idx]))
        at += size
    mixed = np.concatenate(parts)
    assert mixed.shape == p.shape and np.allclose(mixed.sum(1), 1.0)
    got = mixed[np.arange(len(p)), text[1:]]
    g = -np.log(p[np.arange(len(p)), text[1:]])
    if reading:
        want = np.exp(-online_mixed_nll(g, read_split_prob(train, text, V, 3, chunk=64), 0.7))
    else:
        want = np.exp(-mixed_nll(g, partner.kn.split_prob(text), 0.7))
    np.testing.assert_allclose(got, want, rtol=1e-9)
    static = 0.7 * p + 0.3 * partner.kn.next_probs_many(
        np.lib.stride_tricks.sliding_window_view(np.r_[-1, text[:-1]], 2)
    )
    assert np.allclose(mixed, static) != reading  # reading: the repeat is counted


def test_every_next_token_at_once_equals_each_one_alone():
    """KneserNey.next_probs_many (the unrolled sum of each order's seen continuations and the
    back-off weights times the unigram) gives, for every context row, what prob() gives one
    token at a time, short contexts (-1) and unseen ones included; each row sums to 1."""
    rng = np.random.default_rng(0)
    t = rng.integers(0, 30, 2000)
    t[::7] = 3  # a frequent token: contexts with many continuations
    kn = KneserNey(t, 30, 4)
    ctx = np.stack([t[i : i + 3] for i in range(0, 120)])
    ctx[0, :2], ctx[1, 0] = -1, -1  # the text's start
    ctx[5] = [29, 28, 27]  # a context never seen
    got = kn.next_probs_many(ctx)
    for r, c in enumerate(ctx):
        want = kn.prob(np.tile(c, (30, 1)), np.arange(30))
        np.testing.assert_allclose(got[r], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-12)
