import hashlib
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.corpus.tokenizer import UNK, BPETokenizer, CharTokenizer, WordTokenizer
from wordgpt.errors import WordGPTError

from .conftest import SHORT_TEXT
from .helpers import ROOT, examples
from .reference_corpus import train_tokenizer

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=200)


@given(texts, st.booleans())
@settings(max_examples=examples(200), deadline=None)
def test_word_round_trip(text, space_prefix):
    tok = WordTokenizer.train(text, space_prefix=space_prefix)
    assert tok.decode(tok.encode(text)) == text
    assert tok.unknown(text) == {}


@given(texts)
@settings(max_examples=examples(200), deadline=None)
def test_char_round_trip(text):
    tok = CharTokenizer.train(text)
    assert tok.decode(tok.encode(text)) == text


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(SHORT_TEXT * 20, vocab_size=300)


@given(texts)
@settings(max_examples=examples(200), deadline=None)
def test_bpe_round_trip_on_any_text(bpe, text):
    """Byte-level: even text the BPE never saw (non-ASCII, emoji, CJK) round-trips."""
    assert bpe.decode(bpe.encode(text)) == text


def test_word_tokens_are_words_marks_and_spaces():
    tok = WordTokenizer.train("don't  stop!\n")
    assert tok.split("don't  stop!\n") == ["don", "'", "t", " ", " ", "stop", "!", "\n"]


def test_space_prefix_attaches_one_space_and_halves_tokens():
    text = "the knight, and the squire.  then\nhe rode"
    plain = WordTokenizer.train(text)
    sp = WordTokenizer.train(text, space_prefix=True)
    assert sp.split(text) == [
        "the",
        " knight",
        ",",
        " and",
        " the",
        " squire",
        ".",
        " ",
        " then",
        "\n",
        "he",
        " rode",
    ]
    assert sp.decode(sp.encode(text)) == text
    assert len(sp.encode(text)) < 0.7 * len(plain.encode(text))


def test_vocabulary_order_is_frequency_then_token():
    tok = WordTokenizer.train("b a c a b a")
    # ' ' x5, 'a' x3, 'b' x2, 'c' x1
    assert tok.itos == [UNK, " ", "a", "b", "c"]


def test_min_count_and_max_vocab():
    text = "a a a b b c"
    assert WordTokenizer.train(text, min_count=2).itos == [UNK, " ", "a", "b"]
    assert WordTokenizer.train(text, max_vocab=2).itos == [UNK, " ", "a"]


def test_unknown_words_become_unk_and_are_counted():
    tok = WordTokenizer.train("the knight rode")
    ids = tok.encode("the dragon rode the dragon")
    assert ids.count(0) == 2
    assert tok.unknown("the dragon rode the dragon") == {"dragon": 2}
    assert tok.decode(ids) == f"the {UNK} rode the {UNK}"


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_save_and_load_give_the_same_ids(tmp_path, kind):
    tok = train_tokenizer(kind, SHORT_TEXT * 5, vocab_size=300, space_prefix=True)
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(tok.to_dict()), encoding="utf-8")
    again = tokenizers.load(path)
    assert again.kind == kind
    assert again.encode(SHORT_TEXT) == tok.encode(SHORT_TEXT)
    assert again.decode(tok.encode(SHORT_TEXT)) == SHORT_TEXT
    assert json.loads(path.read_text())["kind"] == kind


def test_bad_tokenizer_file(tmp_path):
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(WordGPTError, match="not valid JSON"):
        tokenizers.load(tmp_path / "t.json")
    with pytest.raises(WordGPTError, match="no tokenizer file"):
        tokenizers.load(tmp_path / "missing.json")


_DIGEST = """
import hashlib, json, sys
sys.path.insert(0, sys.argv[2])
from tests.reference_corpus import train_tokenizer
text = open(sys.argv[1], encoding="utf-8").read()
for kind in ("word", "char", "bpe"):
    tok = train_tokenizer(kind, text, vocab_size=400)
    blob = json.dumps(tok.to_dict(), sort_keys=True).encode()
    print(kind, hashlib.sha256(blob).hexdigest())
"""


def test_vocabulary_is_the_same_across_processes_and_hash_seeds(corpus_file):
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {"PYTHONHASHSEED": seed, "PATH": "", "TOKENIZERS_PARALLELISM": "true"}
        r = subprocess.run(
            [sys.executable, "-c", _DIGEST, str(corpus_file), str(ROOT)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outs.add(r.stdout)
    assert len(outs) == 1, outs
    lines = dict(line.split() for line in next(iter(outs)).splitlines())
    assert sorted(lines) == ["bpe", "char", "word"]
    text = corpus_file.read_text(encoding="utf-8")
    for kind in ("word", "char", "bpe"):  # and the same as this process builds
        tok = train_tokenizer(kind, text, vocab_size=400)
        blob = json.dumps(tok.to_dict(), sort_keys=True).encode()
        assert lines[kind] == hashlib.sha256(blob).hexdigest(), kind
