"""The line model: raw text's line breaks inside paragraphs written as spaces, their choice
coded from the column; exact with the flags, the same read in pieces as whole, charged in
every figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wordgpt.config import DataConfig
from wordgpt.corpus import lines
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.corpus.build import prepare
from wordgpt.corpus.cleaning import chunks, clean
from wordgpt.corpus.lines import (
    KEYS,
    PRIOR,
    LineCounts,
    as_spaces,
    break_points,
    read_bits,
    rewrap,
    static_bits,
)
from wordgpt.corpus.marks import WRAP
from wordgpt.corpus.tokenizer import BPETokenizer, CharTokenizer, WordTokenizer
from wordgpt.errors import WordGPTError
from wordgpt.use.adapt import Adaptation
from wordgpt.use.evaluate import NgramSpec, evaluate
from wordgpt.use.generate import decode_stream
from wordgpt.use.report_page import evaluation_rows

from .helpers import examples

WORDS = ("Jane", "was", "glad", "of", "it:", "a", "walk", "that", "day.", '"Yes,"', "no")


def wrapped(n_words: int, width: int, seed: int = 0) -> str:
    """Paragraphs of words wrapped at ``width``, as a typesetter wraps a book."""
    rng = np.random.default_rng(seed)
    paras = []
    for _ in range(max(n_words // 60, 1)):
        line, out = "", []
        for w in rng.choice(WORDS, 60).tolist():
            if line and len(line) + 1 + len(w) > width:
                out.append(line)
                line = w
            else:
                line = f"{line} {w}" if line else w
        paras.append("\n".join([*out, line]))
    return "\n\n".join(paras) + "\n"


def plain_keys(text: str) -> tuple[list[int], list[bool]]:
    """The break points' keys and flags by a loop over the characters."""
    keys, flags, col = [], [], 0
    for i, ch in enumerate(text):
        if ch in " \n" and i + 1 < len(text) and not text[i + 1].isspace():
            word = len(text[i + 1 :].split(maxsplit=1)[0])
            keys.append(min(col + 1 + word, lines.MAX_COLUMN) * 2 + (i > 0 and text[i - 1] == "\n"))
            flags.append(ch == "\n")
        col = 0 if ch == "\n" else col + 1
    return keys, flags


texts = st.text(alphabet=st.sampled_from("ab \n,\t"), max_size=80)


@given(texts)
@settings(max_examples=examples(300), deadline=None)
def test_the_flags_and_the_spaced_text_give_the_text_back(text):
    b = break_points(text)
    assert rewrap(as_spaces(text), b.flags) == text
    keys, _ = b.keys(0)
    want_keys, want_flags = plain_keys(text)
    assert keys.tolist() == want_keys and b.flags.tolist() == want_flags


@given(st.lists(st.tuples(st.sampled_from(["Jane", "walk.", "", "no"]),
                          st.sampled_from([" ", "\n", "\n\n", "  "])), max_size=60),
       st.integers(2, 30))  # fmt: skip
@settings(max_examples=examples(100), deadline=None)
def test_a_text_read_in_pieces_has_the_keys_of_the_text_read_whole(words, size):
    """prepare reads the text in chunks cut at its safe points; the column goes on across."""
    text = "".join(w + sep for w, sep in words)
    whole, _ = break_points(text).keys(0)
    column, parts = 0, []
    for c in chunks([text], size, lowercase=False):
        keys, column = break_points(c).keys(column)
        parts.append(keys)
    np.testing.assert_array_equal(np.concatenate([whole[:0], *parts]), whole)


def test_reading_as_it_goes_is_a_plain_loop_that_counts_each_flag_after_it():
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 6, 300)
    flags = rng.random(300) < 0.3
    counts = np.zeros((KEYS, 2), dtype=np.int64)
    counts[2] = (5, 1)
    want, c = [], counts.copy()
    for k, f in zip(keys.tolist(), flags.tolist(), strict=True):
        p = (c[k, 1] + PRIOR) / (c[k].sum() + 2 * PRIOR)
        want.append(-np.log2(p if f else 1 - p))
        c[k, int(f)] += 1
    np.testing.assert_allclose(read_bits(keys, flags, counts), want, rtol=1e-12)
    np.testing.assert_allclose(static_bits(keys[:1], flags[:1], counts), want[:1])


def test_the_line_model_learns_the_width_a_book_is_wrapped_at():
    """Counted on one part of a book, the line breaks of another cost a small part of what
    they cost a model that has counted nothing (a bit each), and more at another width."""
    book, other = wrapped(6000, 60), wrapped(600, 60, seed=1)
    seen = LineCounts()
    seen.see("train", break_points(book))
    seen.see("val", break_points(other))
    val = seen.split_bits()["val"]
    points = len(break_points(other).flags)
    assert val["line_breaks"] == other.count("\n") - other.count("\n\n") - 1
    assert val["line_bits"] < 0.05 * points
    elsewhere = LineCounts(seen.counts)
    elsewhere.see("val", break_points(wrapped(600, 45, seed=1)))
    assert elsewhere.split_bits()["val"]["line_bits"] > 10 * val["line_bits"]


RAW = wrapped(300, 50) + "THE END, said McDonald.\n"


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_a_marking_tokenizer_writes_line_breaks_as_spaces_and_keeps_its_line_model(kind):
    if kind == "bpe":
        tok = BPETokenizer.train(RAW * 3, vocab_size=300, marks=True)
    elif kind == "char":
        tok = CharTokenizer.train(RAW, marks=True)
    else:
        tok = WordTokenizer.train(RAW, marks=True, space_prefix=True)
    decoded = tok.decode(tok.encode(RAW))
    assert rewrap(decoded, break_points(RAW).flags) == RAW
    assert tok.lines.sum() == len(break_points(RAW * 3 if kind == "bpe" else RAW).flags)
    again = tokenizers.from_dict(json.loads(json.dumps(tok.to_dict())))
    np.testing.assert_array_equal(again.lines, tok.lines)
    assert again.encode(RAW) == tok.encode(RAW)
    with pytest.raises(WordGPTError, match="line model"):
        tokenizers.from_dict({**tok.to_dict(), "lines": [[1, -1]] * KEYS})


def test_decoded_text_is_broken_into_the_lines_the_line_model_finds_likeliest():
    """A generation reads as the book is laid out: paragraphs begun, lines as wide."""
    book, other = wrapped(3000, 60), wrapped(300, 60, seed=3)
    tok = WordTokenizer.train(other + "\n\n" + book, marks=True, space_prefix=True)
    assert lines.wrap(as_spaces(other), tok.lines) == other
    assert tok.decode(tok.encode(other)) == other
    assert lines.wrap(as_spaces(other), np.zeros((KEYS, 2), np.int64)) == as_spaces(other)
    ids = tok.encode(other)
    assert "".join(decode_stream(tok, iter(ids))) == other


def test_a_continuation_goes_on_the_last_line_of_the_text_before_it():
    """Decoding after a prompt breaks lines as decoding the whole text would: the line model
    reads the column the prompt ends at and whether it ended a line (from column 0, some
    first line would come out too long or too short)."""
    import re

    book, other = wrapped(3000, 60), wrapped(300, 60, seed=3)
    tok = WordTokenizer.train(other + "\n\n" + book, marks=True, space_prefix=True)
    spaced = as_spaces(other)
    whole = lines.wrap(spaced, tok.lines)
    cuts = [m.start() for m in re.finditer(r"[ \n](?=\S)", spaced)][5::7]
    for cut in cuts:
        before = lines.wrap(spaced[:cut], tok.lines)
        assert before == whole[:cut]
        assert lines.wrap(spaced[cut:], tok.lines, before) == whole[cut:], cut
    assert any(lines.wrap(spaced[c:], tok.lines) != whole[c:] for c in cuts)
    cut = next(c for c in cuts if lines.wrap(spaced[c:], tok.lines) != whole[c:])
    ids = iter(tok.encode(spaced[cut:]))
    assert "".join(decode_stream(tok, ids, before=whole[:cut])) == whole[cut:]
    long = "a prompt longer than any line of the book, " * 3  # 129 characters, one line
    assert lines.wrap(" and so it goes on", tok.lines, long).startswith("\nand so")
    assert lines.wrap(" and so", np.zeros((KEYS, 2), np.int64), long) == " and so"


def test_a_tokenizer_written_before_the_line_model_keeps_its_line_marks():
    """Its runs were trained on the marks: it writes them as it did."""
    tok = WordTokenizer.train(RAW, marks=True, space_prefix=True).to_dict()
    old = tokenizers.from_dict({k: v for k, v in tok.items() if k != "lines"} | {
        "itos": [*tok["itos"], WRAP]})  # fmt: skip
    assert old.lines is None and old.stoi[WRAP] in old.encode(RAW)
    assert old.decode(old.encode(RAW)) == RAW


def test_prepare_counts_the_line_breaks_whatever_its_chunks(tmp_path):
    (tmp_path / "t.txt").write_text(RAW * 6, encoding="utf-8")
    cfg = DataConfig(dataset=str(tmp_path / "t.txt"), lowercase=False,
                     newlines_to_spaces=False, min_count=1)  # fmt: skip
    small = prepare(tmp_path / "s", cfg, progress=False, chunk_size=64)
    big = prepare(tmp_path / "b", cfg, progress=False)
    for split in ("train", "val"):  # the same sums, added in other parts
        assert small.meta["splits"][split] == pytest.approx(big.meta["splits"][split], rel=1e-12)
    val = big.meta["splits"]["val"]
    text = clean(RAW * 6, cfg)
    assert val["line_breaks"] + big.meta["splits"]["train"]["line_breaks"] == sum(
        break_points(text).flags)  # fmt: skip
    assert val["line_bits_read"] > 0 and 0 < val["line_bits"] < val["line_breaks"]
    np.testing.assert_array_equal(big.tokenizer.lines, small.tokenizer.lines)
    assert WRAP not in big.tokenizer.itos
    # a text prepared with the run's tokenizer is coded by its line model, not counted anew
    again = prepare(tmp_path / "a", cfg, progress=False, tokenizer_from=big.tokenizer)
    assert again.meta["splits"]["val"]["line_bits"] == pytest.approx(val["line_bits"])


def test_every_figure_pays_for_the_line_breaks():
    """Static figures the line model's static bits, adaptive ones its bits read as it goes;
    with the n-gram partner too."""
    rng = np.random.default_rng(0)
    data, train = rng.integers(0, 5, 11), rng.integers(0, 5, 200)
    counts = {"chars": 1000, "tokens": 11, "unk_spell_bits": 3.0}
    nats = np.full(10, 0.5)
    ngram = NgramSpec(train, 5, 2, {"order": 2, "gpt_weight": 0.7, "held_out_tokens": 100})
    kw = dict(block_size=4, token_nats=nats, adapted_nats=nats * 0.9, ngram=ngram,
              adapt=Adaptation.sgd(1e-4))  # fmt: skip
    without = evaluate(None, data, counts, **kw)
    lines_in = {**counts, "line_bits": 40.0, "line_bits_read": 30.0}
    got = evaluate(None, data, lines_in, **kw)
    assert got.bits_per_char - without.bits_per_char == pytest.approx(0.04)
    assert got.line_bits_per_char == pytest.approx(0.04)
    assert got.adaptive_bits_per_char - without.adaptive_bits_per_char == pytest.approx(0.03)
    for key, more in (("bits_per_char", 0.04), ("adaptive_bits_per_char", 0.03)):
        assert got.ngram[key] - without.ngram[key] == pytest.approx(more)
    shown = " ".join(v for _, v in evaluation_rows({"evaluation": got.to_dict()}))
    assert "the line model: 0.0400" in shown and "line model" not in " ".join(
        v for _, v in evaluation_rows({"evaluation": without.to_dict()}))  # fmt: skip
