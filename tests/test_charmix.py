"""The character-level partners and their mixer: counts and matches equal a plain loop over
the text, every distribution sums to 1, and nothing depends on what comes after it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from wordgpt.model import charmix as cx


def text_symbols(seed: int, n: int, A: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, A, 40)  # a phrase that repeats, with noise: matches to find
    out = []
    while len(out) < n:
        out.extend(base[: rng.integers(5, 40)])
        out.extend(rng.integers(0, A, rng.integers(0, 6)))
    return np.array(out[:n], dtype=np.int64)


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("order", [1, 3, 12])
def test_context_counts_equal_a_plain_loop(order, adaptive):
    A, n, start = 5, 600, 400
    sym = text_symbols(0, n, A)
    valid = np.ones(n, dtype=bool)
    valid[::37] = False  # a placeholder now and then: never counted
    got = cx.counts_before(cx.context_keys(sym, order), np.minimum(sym, A - 1), start, A,
                           adaptive, valid)  # fmt: skip
    seen: dict[tuple, Counter] = {}
    pad = [-1] * order
    padded = pad + sym.tolist()
    for i in range(n):
        ctx = tuple(padded[i : i + order])
        if i >= start:
            c = seen.get(ctx, Counter())
            want = [c[a] for a in range(A)]
            np.testing.assert_array_equal(got[i - start], want, err_msg=f"position {i}")
        if valid[i] and (i < start or adaptive):
            seen.setdefault(ctx, Counter())[int(sym[i])] += 1


def test_backed_off_distributions_sum_to_one():
    A, n, start = 6, 500, 300
    sym = text_symbols(1, n, A)
    valid = np.ones(n, dtype=bool)
    counts = [cx.counts_before(cx.context_keys(sym, k), sym, start, A, True, valid)
              for k in (1, 2, 4)]  # fmt: skip
    uni = np.full((n - start, A), 1.0 / A, dtype=np.float32)
    for p in cx.backed_off(counts, uni):
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
        assert (p > 0).all()


@pytest.mark.parametrize("adaptive", [False, True])
def test_the_match_model_finds_the_latest_longest_earlier_context(adaptive):
    A, n, start = 4, 700, 350
    sym = text_symbols(2, n, A)
    valid = np.ones(n, dtype=bool)
    pred, bucket = cx.match_predictions(sym, start, adaptive, valid)
    s = sym.tolist()
    for i in range(start, n):
        want, b = -1, 0
        for L in sorted(cx.MATCH_ORDERS, reverse=True):
            if i < L:
                continue
            ctx = s[i - L : i]
            last = i if adaptive else start
            js = [j for j in range(L, last) if s[j - L : j] == ctx]
            if js:
                want, b = s[js[-1]], (1 if L < 12 else 2 if L < 24 else 3)
                break
        assert (pred[i - start], bucket[i - start]) == (want, b), f"position {i}"


def random_features(seed: int, n: int, A: int, K: int) -> cx.Features:
    rng = np.random.default_rng(seed)
    on = rng.random(n) < 0.6
    target = rng.integers(0, A, n)
    within = np.log(rng.dirichlet(np.ones(A), size=(n, K))).astype(np.float32)
    side = rng.normal(size=(n, K + 2)).astype(np.float32)
    sets = rng.integers(0, cx.SETS, n)
    return cx.Features(on, side, within, target, sets)


def test_the_mixer_that_reads_predicts_each_character_before_learning_from_it():
    f = random_features(3, 300, 7, 3)
    mixer = cx.Mixer(f.side_logit.shape[1], f.within.shape[1])
    full = cx.Mixer(1, 1)
    full.w1, full.w2 = mixer.w1.copy(), mixer.w2.copy()
    a = full.read(f, 0.05)
    cut = cx.Features(f.on_side[:200], f.side_logit[:200], f.within[:200].copy(), f.target[:200],
                      f.sets[:200])  # fmt: skip
    cut.within[150:] = 0.0  # what comes after character 150 changed
    b = mixer.read(cut, 0.05)
    np.testing.assert_allclose(a[:150], b[:150])
    assert not np.allclose(a[150:200], b[150:200])
    # the first prediction is the static one
    assert a[0] == pytest.approx(cx.Mixer(f.side_logit.shape[1], f.within.shape[1]).nats(f)[0])


def test_the_mixer_is_a_distribution_and_fitting_lowers_its_loss():
    f = random_features(4, 400, 6, 3)
    mixer = cx.Mixer(f.side_logit.shape[1], f.within.shape[1])
    before = mixer.nats(f).mean()
    # every outcome's probability: the two sides and the characters of each sum to 1
    for i in range(0, 400, 37):
        total = 0.0
        for on in (True, False):
            for t in range(6):
                g = cx.Features(np.array([on]), f.side_logit[i : i + 1], f.within[i : i + 1],
                                np.array([t]), f.sets[i : i + 1])  # fmt: skip
                total += np.exp(-mixer.nats(g)[0])
        assert total == pytest.approx(1.0)
    mixer.fit(f)
    assert mixer.nats(f).mean() < before - 0.01


@pytest.mark.parametrize("words", [0, 1, 2])
def test_word_contexts_are_the_word_so_far_and_the_words_before(words):
    """Two positions share a word context exactly when a plain reading gives them the same
    word so far (or last character between words) and the same ``words`` whole words
    before."""
    rng = np.random.default_rng(5)
    sym = rng.integers(0, 6, 800)
    word = sym < 4  # symbols 4 and 5: a space and a mark
    keys = cx.word_keys(sym, word, words)
    s, w = sym.tolist(), word.tolist()
    contexts = []
    for i in range(len(s)):
        j = i
        while j > 0 and w[j - 1]:
            j -= 1
        current = ("word", tuple(s[j:i])) if i and w[i - 1] else ("last", s[i - 1] if i else None)
        done, k = [], j
        while len(done) < words:  # whole words ending before position j
            while k > 0 and not w[k - 1]:
                k -= 1
            if k == 0:
                done.append(None)
                continue
            e = k
            while k > 0 and w[k - 1]:
                k -= 1
            done.append(tuple(s[k:e]))
        contexts.append((current, tuple(done)))
    first_of: dict = {}
    for i, c in enumerate(contexts):
        first_of.setdefault(c, i)
    by_key: dict = {}
    for i, k in enumerate(keys.tolist()):
        by_key.setdefault(k, i)
    for i in range(len(s)):
        assert by_key[int(keys[i])] == first_of[contexts[i]], f"position {i}"


def test_the_column_is_the_characters_since_the_line_began_marks_left_out():
    """A plain reading of a text with line breaks (symbol 0), marks (1) that stand in no
    column, and anything else (2, 3); columns past MAX_COLUMN share one context."""
    rng = np.random.default_rng(6)
    sym = rng.choice(4, 3000, p=[0.01, 0.1, 0.45, 0.44])
    sym[:400] = 2  # a line longer than MAX_COLUMN
    breaks, marks = sym == 0, sym == 1
    starts = np.r_[-1, np.maximum.accumulate(np.where(breaks, np.arange(len(sym)), -1))[:-1]]
    want, col = [], 0
    for s in sym.tolist():
        want.append(col)
        col = 0 if s == 0 else col + (s != 1)
    np.testing.assert_array_equal(cx.columns(starts, marks), want)
    keys = cx.column_keys(sym, starts, marks)
    context = [(min(c, cx.MAX_COLUMN), int(sym[i - 1]) if i else None) for i, c in enumerate(want)]
    first_key: dict = {}
    first_context: dict = {}
    for i, (k, c) in enumerate(zip(keys.tolist(), context, strict=True)):
        assert first_key.setdefault(k, i) == first_context.setdefault(c, i), f"position {i}"


def test_a_mixer_fitted_before_the_line_end_sets_reads_as_it_did():
    """A RUN/charmix.json of the sets by kind and match alone serves both halves: where no
    line may end (every text without line breaks) the mixer is the one fitted."""
    rng = np.random.default_rng(7)
    old = {"w1": rng.normal(size=(cx.SETS_TEXT, 4)).tolist(),
           "w2": rng.normal(size=(cx.SETS_TEXT, 3)).tolist()}  # fmt: skip
    m = cx.Mixer.from_state(old)
    np.testing.assert_array_equal(m.w1[: cx.SETS_TEXT], old["w1"])
    np.testing.assert_array_equal(m.w1[cx.SETS_TEXT :], old["w1"])
    np.testing.assert_array_equal(m.w2[cx.SETS_TEXT :], old["w2"])
    with pytest.raises(ValueError):
        cx.Mixer.from_state({"w1": old["w1"][:5], "w2": old["w2"][:5]})


@pytest.mark.parametrize("order", [1, 3])
def test_contexts_read_across_marks(order):
    """Given the marks' positions, a position's context is the ``order`` symbols before it
    that are not marks, and the mark right before it: keys are equal exactly where those
    are; with no mark in the text they are the plain contexts."""
    rng = np.random.default_rng(8)
    sym = rng.choice(5, 2000, p=[0.1, 0.05, 0.3, 0.3, 0.25])  # 0 and 1 are marks
    marks = sym <= 1
    keys = cx.context_keys(sym, order, marks)
    kept, context = [-1] * order, []
    for i, s in enumerate(sym.tolist()):
        mark = int(sym[i - 1]) if i and marks[i - 1] else None
        context.append((tuple(kept[-order:]), mark))
        if s > 1:
            kept.append(s)
    first_key: dict = {}
    first_context: dict = {}
    for i, (k, c) in enumerate(zip(keys.tolist(), context, strict=True)):
        assert first_key.setdefault(k, i) == first_context.setdefault(c, i), f"position {i}"
    plain = sym + 2
    np.testing.assert_array_equal(cx.context_keys(plain, order, plain <= 1),
                                  cx.context_keys(plain, order))  # fmt: skip
