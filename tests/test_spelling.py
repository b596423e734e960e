"""Bits per character that stay honest for words: a vocabulary knows only the training
split, and every <unk> is charged its spelling by a character model fitted on train."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wordgpt
from wordgpt.adapt_config import AdaptConfig
from wordgpt.config import DataConfig
from wordgpt.corpus.build import prepare
from wordgpt.corpus.cleaning import clean
from wordgpt.corpus.spelling import Spelling
from wordgpt.corpus.tokenfiles import load_meta, load_split
from wordgpt.errors import WordGPTError
from wordgpt.use.train_run import train

from .helpers import examples

QUIET = {"progress": False, "tensorboard": False, "dtype": "fp32", "report": False}
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=12)


@settings(max_examples=examples(60), deadline=None)
@given(types=st.lists(WORDS, min_size=1, max_size=30), history=st.text(max_size=6))
def test_the_spelling_model_is_a_distribution_after_any_history(types, history):
    model = Spelling(types)
    total = sum(model.prob(s, "\x02\x02\x02" + history) for s in model.symbols())
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.slow
def test_with_its_lexicon_the_spelling_model_is_a_distribution_over_strings():
    """Every string over a two-letter alphabet and a letter it never saw, up to 12
    characters: the mixture puts exactly its weight on the lexicon and the rest on the
    character model, whose sum over these strings approaches 1 (it is 1 over all strings:
    each step sums to 1, the test above)."""
    from itertools import product

    model = Spelling(["ab", "ba", "aab", "b"], lexicon=["aab", "b"], lexicon_weight=0.4)
    words = ["".join(w) for n in range(13) for w in product("abz", repeat=n)]
    mixture = float(np.exp2(-model.bits_many(words)).sum())
    char = float(np.exp2(-model.char_bits(words)).sum())
    assert 0.98 < char <= 1.0 + 1e-9
    assert mixture == pytest.approx(0.4 * 1.0 + 0.6 * char, abs=1e-9)
    assert model.bits("aab") < model.bits("aba")  # a lexicon word: cheaper than its anagram


def test_the_spelling_that_reads_is_a_distribution_that_remembers_the_words_read():
    """Adaptive evaluation's spelling: after n words (t distinct) the next word w has
    probability (c(w) + t P(w)) / (n + t). Over every string of "abz" up to 7 characters
    that is the words read (all such strings) plus t times the static model's sum there,
    over n + t; the first word costs what the static model says, a word read before costs
    less than it did, and a later word never changes an earlier cost."""
    from itertools import product

    model = Spelling(["ab", "ba", "aab", "b"], lexicon=["aab", "b"], lexicon_weight=0.4)
    read = ["zab", "ab", "zab"]  # n = 3, t = 2
    words = ["".join(w) for n in range(8) for w in product("abz", repeat=n)]
    static = float(np.exp2(-model.bits_many(words)).sum())
    after = sum(2.0 ** -model.read_bits([*read, w])[-1] for w in words)
    assert 0.9 < static < 1.0 and after == pytest.approx((3 + 2 * static) / 5, abs=1e-9)
    bits = model.read_bits(read)
    assert bits[0] == model.bits("zab") and bits[2] < bits[0]
    assert bits[2] == pytest.approx(-math.log2((1 + 2 * 2.0 ** -model.bits("zab")) / 4))
    assert np.array_equal(model.read_bits([*read, "b", "zz"])[:3], bits)


def test_the_lexicon_weight_is_good_turings_share_of_rare_words():
    """Types seen once (N1 = 3) and twice (N2 = 2) in N = 10 tokens, the singletons out of the
    vocabulary: new text's unknown words are rare ones with mass 3 x 2 N2 / N1 / N (each
    singleton's r* = 2 N2 / N1) against N1 / N for words never seen: 4 / 7."""
    from wordgpt.corpus.spelling import lexicon_weights

    counts = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    lam, probs = lexicon_weights(counts, ["a", "b", "c"])
    assert lam == pytest.approx((3 * 2 * 2 / 3 / 10) / (3 * 2 * 2 / 3 / 10 + 3 / 10))
    assert lam == pytest.approx(4 / 7) and probs == pytest.approx([1 / 3] * 3)


def test_a_rare_training_word_costs_less_than_a_new_word_of_its_length(tmp_path):
    """Prepared text: a word seen once in train is <unk> (--min-count 2) but its spelling is
    known; in val it is charged far less than a word of the same length never seen."""
    train_part = "the knight rode on and the squire rode on. " * 40 + "the zarquon came. "
    val_part = "the knight met zarquon. the knight met quozrna. "
    (tmp_path / "t.txt").write_text(train_part + val_part * 2)
    share = len(val_part * 2) / len(train_part + val_part * 2)
    cfg = DataConfig(dataset=str(tmp_path / "t.txt"), val_fraction=share - 0.001)
    p = prepare(tmp_path / "d", cfg, progress=False)
    tok = p.tokenizer
    assert " zarquon" in tok.rare and " zarquon" not in tok.stoi and tok.lexicon_weight > 0
    spelling = tok.spelling()
    assert spelling.bits(" zarquon") < 0.5 * spelling.bits(" quozrna")
    assert wordgpt.corpus.tokenizer.from_dict(tok.to_dict()).spelling().bits(" zarquon") == (
        spelling.bits(" zarquon"))  # it travels in tokenizer.json  # fmt: skip


def test_spelling_costs_more_for_stranger_and_longer_words():
    model = Spelling([" the", " then", " there", " them", " they", " knight", " night"])
    assert model.bits(" the") < model.bits(" thx") < model.bits(" qzxj")
    assert model.bits(" theme") < model.bits(" thememe") < model.bits(" themememe")
    assert model.bits(" Ω") > 20  # a character the training split never had: its code point


TRAIN = "the knight and the squire rode on. the knight spoke. the squire listened. " * 30
VAL = "the knight met zorbulon and quixotic wumples. the squire laughed. "


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """A text whose last tenth (val) holds words the rest never has, and a run on it."""
    root = tmp_path_factory.mktemp("crafted")
    text = TRAIN + VAL * 4
    (root / "t.txt").write_text(text)
    share = len(VAL * 4) / len(text)
    cfg = DataConfig(dataset=str(root / "t.txt"), val_fraction=share - 0.001, space_prefix=False)
    prepare(root / "d", cfg)
    train(
        root / "d",
        root / "r",
        preset="tiny",
        max_iters=60,
        eval_interval=30,
        block_size=64,
        **QUIET,
    )
    return root / "d", root / "r"


def test_the_vocabulary_never_holds_a_word_only_the_val_split_has(crafted):
    data, _ = crafted
    tok = wordgpt.load(crafted[1]).tokenizer
    for word in ("zorbulon", "quixotic", "wumples", "met", "laughed"):
        assert word not in tok.stoi, word
    for word in ("knight", "squire", "the"):
        assert word in tok.stoi, word
    meta = load_meta(data)
    assert meta["splits"]["train"]["unk"] == 0 and meta["splits"]["val"]["unk"] == 4 * 5


def test_bits_per_char_are_the_models_bits_plus_the_spelling_worked_by_hand(crafted):
    """The model's -log2 P of every val token (<unk> included), computed here from its
    logits, plus the spelling bits of each unknown word, over the val split's characters."""
    data, run = crafted
    m = wordgpt.load(run)
    ids = torch.from_numpy(np.asarray(load_split(data, "val")).astype(np.int64))
    T, model_bits = m.gpt.cfg.block_size, 0.0
    with torch.no_grad():  # consecutive windows of the block size, each token predicted once
        for start in range(0, len(ids) - 1, T):
            x, y = ids[start : start + T], ids[start + 1 : start + T + 1]
            logp = torch.log_softmax(m.gpt(x[None, : len(y)])[0].float(), dim=-1)
            model_bits -= logp[torch.arange(len(y)), y].sum().item() / math.log(2)
    r = m.evaluate("val")
    val_text = clean(TRAIN + VAL * 4, DataConfig())[-r.chars :]
    spelling = m.tokenizer.spelling()
    words = [t for t in m.tokenizer.split(val_text) if t not in m.tokenizer.stoi]
    spell_bits = sum(spelling.bits(w) for w in words)
    chars = len(val_text)
    assert len(words) == 20 and r.unk_share == pytest.approx(len(words) / len(ids))
    assert r.bits_per_char == pytest.approx((model_bits + spell_bits) / chars, rel=1e-5)
    assert r.spell_bits_per_char == pytest.approx(spell_bits / chars, rel=1e-9)


@pytest.mark.slow
@settings(
    max_examples=examples(8),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    words=st.lists(
        st.text(alphabet="bcdfghjklmnpqrstvwxz", min_size=2, max_size=6), min_size=20, max_size=60
    ),
    times=st.integers(2, 6),
)
def test_longer_unknown_words_never_make_a_text_look_easier(crafted, tmp_path, words, times):
    """The same gibberish with every word ``times`` longer: without the spelling charge its
    bits/char fell by about that factor (one <unk> for a word of any length). Now it costs
    more bits in all, and its bits/char stay at least 0.8 of the short text's: the only cost
    that does not grow with a word is its <unk> itself."""
    m = wordgpt.load(crafted[1])
    short, long = tmp_path / "short.txt", tmp_path / "long.txt"
    short.write_text(" ".join(words) + "\n")
    long.write_text(" ".join(w * times for w in words) + "\n")
    a, b = m.evaluate_text(short), m.evaluate_text(long)
    assert a.unk_share > 0.4 and b.unk_share > 0.4
    assert b.bits_per_char * b.chars > a.bits_per_char * a.chars  # more bits in all
    assert b.bits_per_char >= 0.8 * a.bits_per_char, (a.bits_per_char, b.bits_per_char)


def test_adaptive_evaluation_spells_with_the_words_it_has_read(crafted, tmp_path, capsys):
    """The data folder keeps the val split's <unk> words in order; adaptive evaluation
    charges them by the spelling that reads (each of the 5 words comes 4 times: cheaper),
    evaluate_text too; a folder without them falls back to the static spelling, saying so."""
    import json
    import shutil

    data, run = crafted
    m = wordgpt.load(run)
    kept = [json.loads(line) for line in (data / "val.unk.jsonl").read_text().splitlines()]
    val_text = clean(TRAIN + VAL * 4, DataConfig())[-load_meta(data)["splits"]["val"]["chars"] :]
    words = [t for t in m.tokenizer.split(val_text) if t not in m.tokenizer.stoi]
    assert kept == words and len(words) == 20
    nothing = AdaptConfig(adapt_lr=1e-30)  # learning nothing: the GPT's part is the static one
    r = m.evaluate("val", adapt=nothing)
    read = float(m.tokenizer.spelling().read_bits(words).sum())
    assert read < 0.6 * r.spell_bits_per_char * r.chars
    assert r.adaptive_spell_bits_per_char == pytest.approx(read / r.chars, rel=1e-9)
    assert r.adaptive_bits_per_char == pytest.approx(
        r.bits_per_char - r.spell_bits_per_char + read / r.chars, rel=1e-6)  # fmt: skip
    (tmp_path / "v.txt").write_text(VAL * 4)
    t = m.evaluate_text(tmp_path / "v.txt", adapt=nothing)
    assert t.adaptive_spell_bits_per_char < 0.6 * t.spell_bits_per_char
    old = tmp_path / "old"
    shutil.copytree(data, old)
    (old / "val.unk.jsonl").unlink()
    capsys.readouterr()
    r = m.evaluate("val", old, adapt=nothing)
    assert r.adaptive_spell_bits_per_char == r.spell_bits_per_char
    assert "does not keep its val split's <unk> words" in capsys.readouterr().err


def test_the_spelling_model_gives_every_next_symbol_at_once():
    model = Spelling(["abc", "abd", " xy", "hello"], lexicon=["abd"], lexicon_weight=0.3)
    histories = ["", "a", " x", "hel", "zz", "hello world"]
    got = model.next_probs(histories)
    for h, row in zip(histories, got, strict=True):
        np.testing.assert_allclose(row, [model.prob(s, h) for s in model.symbols()], rtol=1e-12)
        assert row.sum() == pytest.approx(1.0)


def test_a_spelling_without_some_rare_words_keeps_the_others_shares():
    """What the character mixer's fit spells its held-out slice with: the lexicon lacks the
    words asked (the others' shares renormalised, the weight kept), and so does the character
    model's training; the tokenizer's own spelling is untouched."""
    from wordgpt.corpus.tokenizer import WordTokenizer

    tok = WordTokenizer(["<unk>", "the", " "], rare=["zorb", "quill", "mire"],
                        lexicon_weight=0.2, rare_probs=[0.5, 0.3, 0.2])  # fmt: skip
    out = tok.spelling(frozenset({"quill", "absent"}))
    assert out.lexicon == pytest.approx({"zorb": 0.5 / 0.7, "mire": 0.2 / 0.7})
    assert out.lexicon_weight == 0.2
    assert out.bits("quill") > tok.spelling().bits("quill") + 1  # never seen: dearer
    assert out.char_bits(["quill"])[0] > tok.spelling().char_bits(["quill"])[0] + 1  # spelled too
    assert set(tok.spelling().lexicon) == {"zorb", "quill", "mire"}
    assert tok.spelling(frozenset({"absent"})) is tok.spelling()


def test_the_spelling_order_is_saved_with_the_tokenizer_and_old_ones_keep_theirs():
    """A tokenizer made now spells with ORDER characters of history minus one and says so in
    its dict; one saved before the order was kept spells as it did then (FIRST_ORDER), so a
    data folder's recorded spelling bits still match it; the order reaches every spelling."""
    from wordgpt.corpus.spelling import FIRST_ORDER, ORDER
    from wordgpt.corpus.tokenizer import WordTokenizer, from_dict

    types = ["<unk>", "the", " ", "trembling", "tremble", "rumbling", " rambling"]
    tok = WordTokenizer.train(" ".join(types[1:] * 2) + " mumbling", min_count=2)
    d = tok.to_dict()
    assert d["spell_order"] == ORDER == 5 and tok.spelling().order == ORDER
    old = {k: v for k, v in d.items() if k != "spell_order"}
    again, before = from_dict(d), from_dict(old)
    assert again.spelling().order == ORDER and before.spelling().order == FIRST_ORDER == 4
    word = " grumbling"
    ref = Spelling(tok.itos[1:] + tok.rare, order=4, lexicon=tok.rare,
                   lexicon_weight=tok.lexicon_weight)  # fmt: skip
    assert before.spelling().bits(word) == pytest.approx(ref.bits(word))
    assert again.spelling().bits(word) != pytest.approx(ref.bits(word))
    assert before.spelling(frozenset(tok.rare[:1])).order == FIRST_ORDER
    for bad in (0, 9, "5", True, 4.0):
        with pytest.raises(WordGPTError, match="spell_order"):
            from_dict({**d, "spell_order": bad})


def test_a_large_alphabet_spells_at_a_lower_order_rather_than_not_at_all():
    """A context of ORDER - 1 symbols is one int64: with about 7,000 distinct characters
    (a dump of many scripts) the order drops until it fits, and it is still a distribution."""
    chars = [chr(0x4E00 + i) for i in range(7000)]
    model = Spelling(["".join(chars[i : i + 5]) for i in range(0, 7000, 5)])
    assert model.order == 4
    assert model.next_probs(["", chars[3]]).sum(1) == pytest.approx([1.0, 1.0])
