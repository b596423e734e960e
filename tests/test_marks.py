"""Case and line marks: raw text (capitals and line breaks kept) is written as marks and
lowercase words, undone exactly; a raw text keeps a lowercase text's vocabulary, and its bits
per character are the marked text's bits over the raw text's characters."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wordgpt.config import DataConfig
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.corpus.build import prepare
from wordgpt.corpus.cleaning import chunks, clean
from wordgpt.corpus.lines import break_points, rewrap
from wordgpt.corpus.marks import CAP, UPPER, WRAP, mark, unmark
from wordgpt.corpus.tokenfiles import load_split
from wordgpt.corpus.tokenizer import BPETokenizer, CharTokenizer, WordTokenizer
from wordgpt.errors import WordGPTError
from wordgpt.model import charmix as cx
from wordgpt.model.charmix import columns
from wordgpt.use import chars
from wordgpt.use.chars import line_structure
from wordgpt.use.charview import Alphabet, CharView
from wordgpt.use.generate import decode_stream
from wordgpt.use.words import query_cleaning

from .helpers import examples, load_benchmark

RAW = (
    "CHAPTER I\n\nThere was no possibility of taking a walk that day. We had been\n"
    "wandering, indeed, in the leafless shrubbery an hour in the morning; but since\n"
    "dinner (Mrs. Reed, when there was no company, dined early) the cold winter wind\n"
    "had brought with it clouds so sombre, and a rain so penetrating, that further\n"
    "out-door exercise was now out of the question. I was glad of it: I never liked\n"
    "long walks, especially on chilly afternoons. THE END, said McDonald.\n"
)
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120)
tricky = st.lists(
    st.sampled_from(
        [
            "The",
            "THE",
            "the",
            "McD",
            "İs",
            "ǅa",
            "ß",
            "SS",
            "I",
            "1ST",
            " ",
            "  ",
            "\n",
            "\n\n",
            ",",
            "é",
            "É",
            "_x",
            CAP,
            UPPER,
            WRAP,
        ]
    ),  # fmt: skip
    max_size=30,
).map("".join)


@given(st.one_of(texts, tricky))
@settings(max_examples=examples(300), deadline=None)
def test_unmark_undoes_mark_on_any_text(text):
    """Exact, with the marks themselves (noncharacters) read as U+FFFD when a text has them."""
    clean_text = text.replace(CAP, "\ufffd").replace(UPPER, "\ufffd").replace(WRAP, "\ufffd")
    assert unmark(mark(text)) == clean_text


def test_capitals_and_line_breaks_become_marks_after_the_word():
    assert mark("said Sancho") == f"said sancho{CAP}"
    assert mark("THE END") == f"the{UPPER} end{UPPER}"
    assert mark("I am") == f"i{CAP} am"
    assert mark("one\nline\n\nTwo") == f"one line{WRAP}\n two{CAP}{WRAP}"
    assert mark('said:\n"Yes\n-- no') == f'said: "{WRAP}yes{CAP} -{WRAP}- no'
    assert mark("McDonald and iPhone") == "McDonald and iPhone"  # mixed case: kept
    assert mark("(Mrs. Reed") == f"(mrs{CAP}. reed{CAP}"


@given(st.lists(st.sampled_from(["Sancho", "THE", "\n", "word", ".", " ", "İ"]), max_size=60),
       st.integers(2, 30))  # fmt: skip
@settings(max_examples=examples(100), deadline=None)
def test_a_text_marked_in_chunks_is_the_text_marked_whole(words, size):
    """prepare marks the text chunk by chunk, cut at its safe points."""
    text = " ".join(words)
    assert "".join(mark(c) for c in chunks([text], size, lowercase=False)) == mark(text)


@pytest.mark.parametrize("kind", ["word", "space", "char", "bpe"])
def test_a_marking_tokenizer_round_trips_and_saves_its_marks(kind, tmp_path):
    if kind == "bpe":
        tok = BPETokenizer.train(RAW * 3, vocab_size=300, marks=True)
    elif kind == "char":
        tok = CharTokenizer.train(RAW, marks=True)
    else:
        tok = WordTokenizer.train(RAW, marks=True, space_prefix=kind == "space")
    flags = break_points(RAW).flags  # line breaks inside paragraphs: the line model's
    assert rewrap(tok.decode(tok.encode(RAW)), flags) == RAW
    (tmp_path / "t.json").write_text(json.dumps(tok.to_dict()))
    again = tokenizers.load(tmp_path / "t.json")
    assert again.marks and again.encode(RAW) == tok.encode(RAW)
    assert rewrap(again.decode(again.encode(RAW)), flags) == RAW
    if kind != "bpe":  # a capital is a mark and the lowercase letter
        assert "T" not in "".join(tok.itos) and CAP in tok.itos


def test_raw_words_share_the_lowercase_vocabulary():
    """ " The", " THE" and " the" are one token; a word after a line break keeps its space."""
    marked = WordTokenizer.train(RAW, marks=True, space_prefix=True)
    plain = WordTokenizer.train(RAW, space_prefix=True)
    lower = WordTokenizer.train(RAW.lower().replace("\n", " "), space_prefix=True)
    assert {"There", " THE", " I", "wandering", " the"} <= set(plain.itos)
    words = {t for t in marked.itos if any(c.isalnum() for c in t)}
    assert words - {" McDonald"} <= set(lower.itos) | {"chapter"}  # mixed case kept; the first word
    assert marked.vocab_size < plain.vocab_size
    assert marked.encode(" The end") == [marked.stoi[t] for t in (" the", CAP, " end")]


def test_decoding_a_generation_piece_by_piece_gives_the_whole_text():
    """Only what a later mark cannot change is shown (the text before its last space, which a
    line break's mark would turn into a line break): the pieces join to the whole text."""
    tok = WordTokenizer.train(RAW, marks=True, space_prefix=True)
    ids = tok.encode(RAW)
    pieces = list(decode_stream(tok, iter(ids)))
    assert "".join(pieces) == tok.decode(ids)
    assert rewrap(tok.decode(ids), break_points(RAW).flags) == RAW
    assert tok.decode([tok.stoi[CAP]]) == ""  # a mark with no word before it
    assert tok.decode([tok.stoi[CAP], tok.stoi[","]]) == ","


def test_prepare_marks_raw_text_and_counts_the_raw_characters(tmp_path):
    (tmp_path / "t.txt").write_text(RAW * 8, encoding="utf-8")
    raw = DataConfig(dataset=str(tmp_path / "t.txt"), lowercase=False, newlines_to_spaces=False,
                     min_count=1)  # fmt: skip
    marked = prepare(tmp_path / "m", raw, progress=False)
    unmarked = prepare(tmp_path / "u", DataConfig(**{**raw.__dict__, "marks": False}),
                       progress=False)  # fmt: skip
    assert marked.tokenizer.marks and not unmarked.tokenizer.marks
    capitals = {t for t in marked.tokenizer.itos if t != "<unk>" and t != t.lower()}
    assert capitals == {" McDonald"} and " Reed" in unmarked.tokenizer.itos
    text = clean(RAW * 8, raw)
    for p in (marked, unmarked):  # the same raw characters, whatever the tokens
        splits = p.meta["splits"]
        assert splits["train"]["chars"] + splits["val"]["chars"] == len(text)
        both = np.concatenate([load_split(p.out, "train"), load_split(p.out, "val")])
        got = p.tokenizer.decode(both.tolist())
        assert (rewrap(got, break_points(text).flags) if p is marked else got) == text
    assert json.loads((tmp_path / "m/tokenizer.json").read_text())["marks"] is True
    # a lowercased text on one line has nothing to mark: its tokenizer is as it always was
    plain = prepare(tmp_path / "p", DataConfig(dataset=str(tmp_path / "t.txt")), progress=False)
    assert "marks" not in json.loads((tmp_path / "p/tokenizer.json").read_text())
    assert not plain.tokenizer.marks


def test_a_word_asked_for_is_lowercased_when_the_words_are():
    marked = WordTokenizer.train(RAW, marks=True)
    assert query_cleaning(marked)("Reed") == "reed"
    assert query_cleaning(WordTokenizer.train(RAW))("Reed") == "Reed"


def test_a_marking_tokenizer_has_no_hugging_face_form():
    tok = WordTokenizer.train(RAW, marks=True)
    with pytest.raises(WordGPTError, match="--no-marks"):
        tokenizers.to_hf(tok)


def test_the_column_model_counts_the_raw_texts_columns():
    """Read by characters, a marked text's columns are the raw text's, the case marks left
    out; the first word of a wrapped line stands where it would on the line before until its
    mark says that the space before it was the line break."""
    marked = mark(RAW)
    alphabet = Alphabet.of(marked)
    starts, uncounted = line_structure(alphabet, alphabet.encode(marked))
    want, col, word = [], 0, 0  # word: the characters since the last space
    for ch in marked:
        want.append(col)
        if ch == "\n":
            col = word = 0
        elif ch == WRAP:
            col = word
        elif ch not in (CAP, UPPER):
            col, word = col + 1, 0 if ch == " " else word + 1
    np.testing.assert_array_equal(columns(starts, uncounted), want)
    after_mark = [want[i + 1] for i, ch in enumerate(marked[:-1]) if ch == WRAP]
    first_words = [len(m.group(1)) for m in re.finditer(r"\n(\w+|[^\w\s])", RAW)]
    assert after_mark == first_words  # the character after the mark: its raw column
    assert line_structure(Alphabet.of("one line only"), alphabet.encode("x")) is None


def test_the_quality_benchmark_reads_the_books_raw_when_asked():
    quality = load_benchmark("quality")
    raw = quality.data_fields(argparse.Namespace(raw=True, min_count=DataConfig.min_count))
    assert raw == {"lowercase": False, "newlines_to_spaces": False}
    assert quality.data_fields(argparse.Namespace(raw=False, min_count=1)) == {"min_count": 1}


def test_the_mixer_takes_its_line_end_weights_where_the_column_model_expects_a_break():
    text = mark(RAW * 4)
    tok = WordTokenizer.train(RAW, min_count=1, space_prefix=True, marks=True)
    toks = tok.split(text)
    alphabet = Alphabet.of(text)
    probs = np.random.default_rng(0).dirichlet(np.ones(tok.vocab_size), size=len(toks))
    reading = CharView(tok, alphabet).read(probs, toks)
    f = chars.features(alphabet, reading, text, 0, adaptive=True)
    end = f.sets >= cx.SETS_TEXT
    breaks = np.isin(f.target, [alphabet.index()[c] for c in ("\n", WRAP)])
    assert end.sum() > 10 and breaks[end].mean() > 5 * breaks.mean()  # where lines end


def test_a_mixer_fitted_to_context_models_that_read_the_marks_is_fitted_again(tmp_path):
    """A RUN/charmix.json fitted before the context models read across marks is refitted
    when its alphabet has marks (its inputs changed), and kept when it has none."""
    weights = {"w1": np.zeros((cx.SETS, 4)).tolist(), "w2": np.zeros((cx.SETS, 3)).tolist()}
    path = tmp_path / "charmix.json"
    for alphabet, across, kept in [(" ab" + CAP, False, False), (" ab" + WRAP, True, True),
                                   (" ab", False, True)]:  # fmt: skip
        fit = {**weights, "alphabet": alphabet, **({"across_marks": True} if across else {})}
        path.write_text(json.dumps(fit))
        assert (chars.read_fit(path, words_kept=False) is not None) == kept, alphabet
