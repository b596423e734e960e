"""The word model read by characters: every state's next-character probabilities are a
distribution, the fast reading of a whole text equals the definition one string at a time, a
character's probability never depends on what comes after it, and reading by characters
costs at most what reading by tokens does."""

from __future__ import annotations

import re

import numpy as np
import pytest

from wordgpt.corpus.marks import CAP, UPPER, WRAP
from wordgpt.corpus.tokenizer import CharTokenizer, WordTokenizer, from_dict
from wordgpt.use.charview import Alphabet, CharView, next_char_probs

TEXT = (
    "the cat sat on the mat, and the dog sat on the log. the cat saw the dog! "
    "a cat, a dog, a mat; then the cats ran.\nthe end"
)


def tokenizer(kind: str):
    if kind == "char":
        return CharTokenizer.train(TEXT)
    return WordTokenizer.train(TEXT, min_count=2, space_prefix=kind == "space")


def tokens_of(tok, text: str) -> list[str]:
    return tok.split(text)


def random_probs(rng, n: int, V: int) -> np.ndarray:
    p = rng.dirichlet(np.full(V, 0.3), size=n)
    return p


@pytest.mark.parametrize("kind", ["word", "space", "char"])
def test_every_state_is_a_distribution_over_the_next_character(kind):
    tok = tokenizer(kind)
    view = CharView(tok, Alphabet.of(TEXT))
    rng = np.random.default_rng(0)
    V = tok.vocab_size
    for s in ["", " ", " c", " ca", "c", "ca", "cat", " cat", ",", " ,", "\n", "q", " qz"]:
        p, q = random_probs(rng, 2, V)
        d = next_char_probs(view, p, s, q)
        assert d.min() >= 0
        assert d.sum() == pytest.approx(1.0, abs=1e-9), s


@pytest.mark.parametrize("kind", ["word", "space", "char"])
def test_reading_a_text_equals_the_definition_character_by_character(kind):
    tok = tokenizer(kind)
    alphabet = Alphabet.of(TEXT)
    view = CharView(tok, alphabet)
    text = "the cats sat, the zebra ran on a mat!\nthe dog"  # zebra: <unk>, z and b: never seen
    toks = tokens_of(tok, text)
    rng = np.random.default_rng(1)
    probs = random_probs(rng, len(toks), tok.vocab_size)
    r = view.read(probs, toks)
    got = r.probs()
    want, at = [], 0
    for t, w in enumerate(toks):
        for j in range(len(w)):
            if j == 0:  # the character that starts token t: after the token before ended
                prev = toks[t - 1] if t else ""
                d = next_char_probs(view, probs[t - 1] if t else probs[t], prev, probs[t])
            else:
                d = next_char_probs(view, probs[t], w[:j])
            want.append(d[int(r.symbols[at])])
            at += 1
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
    assert alphabet.novel(r.symbols).sum() == 2  # the z and b of zebra


def test_a_marked_text_is_read_as_its_marks_and_lowercase_words():
    """Raw text (capitals, line breaks) through a tokenizer that marks them: every state,
    after a mark too, is a distribution, and the fast reading equals the definition."""
    raw = TEXT.replace("the", "The", 3).replace("a cat", "A CAT").replace(" the end", "\nThe end")
    made = WordTokenizer.train(raw, min_count=2, space_prefix=True, marks=True).to_dict()
    # line breaks as marks, as a tokenizer written before the line model writes them
    tok = from_dict({k: v for k, v in made.items() if k != "lines"} | {
        "itos": [*made["itos"], WRAP]})  # fmt: skip
    view = CharView(tok, Alphabet.of(tok.prepared(raw)))
    rng = np.random.default_rng(4)
    for s in ["", CAP, UPPER, WRAP, " c", " ca"]:
        p, q = random_probs(rng, 2, tok.vocab_size)
        d = next_char_probs(view, p, s, q)
        assert d.min() >= 0 and d.sum() == pytest.approx(1.0, abs=1e-9), s
    toks = tok.split(tok.prepared("The cat sat. THE DOG!\nThe end"))
    assert {CAP, UPPER, WRAP} <= set(toks)
    probs = random_probs(rng, len(toks), tok.vocab_size)
    r = view.read(probs, toks)
    want = []
    for t, w in enumerate(toks):
        for j in range(len(w)):
            prev = toks[t - 1] if t else ""
            d = (next_char_probs(view, probs[t - 1] if t else probs[t], prev, probs[t]) if j == 0
                 else next_char_probs(view, probs[t], w[:j]))  # fmt: skip
            want.append(d[view.alphabet.index()[w[j]]])
    np.testing.assert_allclose(r.probs(), want, rtol=1e-8, atol=1e-15)  # prefix sums' rounding


def test_a_characters_probability_depends_only_on_the_text_before_it():
    tok = tokenizer("space")
    view = CharView(tok, Alphabet.of(TEXT))
    rng = np.random.default_rng(2)
    a, b = "the cat sat on the mat", "the cat sat on the matters. the dog"
    ta, tb = tokens_of(tok, a), tokens_of(tok, b)
    probs = random_probs(rng, len(tb), tok.vocab_size)  # row t: given the tokens before t
    pa, pb = view.read(probs[: len(ta)], ta).probs(), view.read(probs, tb).probs()
    shared = len("the cat sat on the mat")
    np.testing.assert_array_equal(pa[:shared], pb[:shared])


@pytest.mark.parametrize("kind", ["word", "space"])
def test_by_characters_a_text_costs_at_most_what_it_costs_by_tokens(kind):
    """With every token in the vocabulary, a token's characters multiply to its probability,
    except that what the tokenizer never makes (a word straight after a word) is spread over
    what it does: never more bits, and fewer."""
    tok = tokenizer(kind)
    view = CharView(tok, Alphabet.of(TEXT))
    toks = tokens_of(tok, "the cat sat on the mat, the dog sat on the mat.")
    ids = [tok.stoi[t] for t in toks]
    assert 0 not in ids
    probs = random_probs(np.random.default_rng(3), len(toks), tok.vocab_size)
    chars = -np.log(view.read(probs, toks).probs()).sum()
    # the first token's first character is read as a start, as the token is
    tokens = -np.log(probs[np.arange(len(ids)), ids]).sum()
    assert chars < tokens - 1e-6
    # a distribution that gives nothing to what the tokenizer never makes: equal
    fixed = probs.copy()
    fixed[:, 0] = 0.0  # no <unk>
    for t in range(1, len(toks)):
        prev = toks[t - 1]
        for i, w in enumerate(tok.itos[1:], 1):
            after_word = re.fullmatch(r" ?\w+", prev) and re.match(r"\w", w)
            after_space = prev == " " and kind == "space" and not w[0].isspace()
            if after_word or after_space:
                fixed[t, i] = 0.0
    fixed /= fixed.sum(1, keepdims=True)
    chars = -np.log(view.read(fixed, toks).probs()).sum()
    tokens = -np.log(fixed[np.arange(len(ids)), ids]).sum()
    assert chars == pytest.approx(tokens, rel=1e-9)


def test_the_spelling_that_reads_is_the_static_one_with_the_words_read_in_its_lexicon():
    """Adapting, <unk>'s mass goes to the static spelling (t / (n + t)) and to each word read
    (c(w) / (n + t)), as the token figure's spelling that reads: at the second " zebra" the
    reading view gives its letters what a static view whose lexicon holds that mixture gives,
    and before any <unk> was read it is the static view."""
    import copy
    from types import SimpleNamespace

    from wordgpt.use.charview import reading_spelling

    tok = tokenizer("space")
    alphabet = Alphabet.of(TEXT + "zb")
    text = "the zebra sat on the mat, the zebra sat on the mat."
    toks = tokens_of(tok, text)
    ids = np.array([tok.stoi.get(t, 0) for t in toks])
    words = [t for t in toks if t not in tok.stoi]
    assert words == [" zebra", " zebra"]
    view = CharView(tok, alphabet, words=words)
    probs = random_probs(np.random.default_rng(4), len(toks) - 1, tok.vocab_size)
    rows = np.arange(len(toks) - 1)  # row r predicts toks[r + 1]
    reads = reading_spelling(ids, words, rows)
    got = view.read(probs, toks[1:], reads).probs()
    static = CharView(tok, alphabet).read(probs, toks[1:]).probs()
    first, second = [i for i, t in enumerate(toks) if t == " zebra"]
    start = lambda j: sum(len(t) for t in toks[1:j])  # noqa: E731
    np.testing.assert_allclose(got[: start(first + 1)], static[: start(first + 1)], rtol=1e-12)
    # at the second: one word read, one distinct: static share 1/2, " zebra" 1/2
    r = second - 1
    assert reads[0][r] == pytest.approx(0.5) and reads[1][r, 0] == pytest.approx(0.5)
    sp = copy.copy(tok.spelling())
    lam = sp.lexicon_weight
    mixed = {w: 0.5 * lam * p for w, p in sp.lexicon.items()}
    mixed[" zebra"] = mixed.get(" zebra", 0.0) + 0.5
    sp.lexicon_weight = 0.5 + 0.5 * lam
    sp.lexicon = {w: m / sp.lexicon_weight for w, m in mixed.items()}
    fake = SimpleNamespace(kind="word", space_prefix=True, token_strings=tok.token_strings,
                           spelling=lambda: sp)  # fmt: skip
    want = CharView(fake, alphabet).read(probs, toks[1:]).probs()
    letters = slice(start(second) + 1, start(second) + len(" zebra"))
    np.testing.assert_allclose(got[letters], want[letters], rtol=1e-9)
    assert (got[letters] > static[letters]).all()  # a word read before costs less
