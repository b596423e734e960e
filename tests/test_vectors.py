"""Word vector files are data, never code: wordgpt's .npz, word2vec binary and text, GloVe,
compressed or not, read with a limit; neighbours and analogies; the quality measures exact on
crafted vectors; a gensim .kv pickle only when trusted."""

import bz2
import gzip
from pathlib import Path

import gensim
import numpy as np
import pytest

from wordgpt.cli import main
from wordgpt.errors import WordGPTError
from wordgpt.use.train_run import train
from wordgpt.vectors.align import align
from wordgpt.vectors.files import keyed_vectors, load_vectors, save_vectors
from wordgpt.vectors.quality import evaluate_vectors, mean_cosine, word_view
from wordgpt.vectors.queries import neighbors

from .helpers import FAST, cli, one_line_error

GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"
W2V_TEXT = GENSIM_DATA / "word2vec_pre_kv_c"  # word2vec C text format, 1750 x 10
W2V_BIN = GENSIM_DATA / "euclidean_vectors.bin"  # word2vec C binary format, 2747 x 10
GLOVE = GENSIM_DATA / "test_glove.txt"  # GloVe text, no header


@pytest.mark.parametrize(
    "fmt, name",
    [("npz", "v.npz"), ("kv", "v.kv"), ("word2vec-bin", "v.bin"), ("word2vec-txt", "v.txt")],
)
def test_saved_formats_round_trip(vectors, tmp_path, fmt, name):
    kv = load_vectors(vectors)
    save_vectors(kv, tmp_path / name, fmt)
    again = load_vectors(tmp_path / name, trust_pickle=fmt == "kv")
    assert again.index_to_key == kv.index_to_key
    np.testing.assert_allclose(again.vectors, kv.vectors, rtol=1e-5, atol=1e-5)
    if fmt in ("npz", "kv"):  # the formats that keep each word's count
        assert [again.get_vecattr(w, "count") for w in kv.index_to_key[:20]] == [
            kv.get_vecattr(w, "count") for w in kv.index_to_key[:20]
        ]


def test_gensims_bundled_word2vec_files_load_with_a_limit():
    text = load_vectors(W2V_TEXT)
    assert (len(text), text.vector_size) == (1750, 10) and text.index_to_key[0] == "the"
    binary = load_vectors(W2V_BIN, limit=100)
    assert (len(binary), binary.vector_size) == (100, 10) and binary.index_to_key[0] == "the"
    glove = load_vectors(GLOVE, limit=50)
    assert len(glove) == 50 and glove.index_to_key[0] == "the"


@pytest.mark.parametrize(
    "opener, suffix", [(open, ".txt"), (bz2.open, ".txt.bz2"), (gzip.open, ".txt.gz")]
)
def test_text_formats_and_compression(tmp_path, opener, suffix):
    rows = {"king": [1.0, 0.0, 0.5], "queen": [0.9, 0.1, 0.5], "new york": [0.0, 1.0, 0.0]}
    body = "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in rows.items())
    wiki2vec = "4 3\n" + body + "ENTITY/Kingdom_of_Spain 0.1 0.2 0.3\n"
    for name, content in (("glove", body), ("w2v", f"3 3\n{body}"), ("wiki2vec", wiki2vec)):
        path = tmp_path / f"{name}{suffix}"
        with opener(path, "wt") as f:
            f.write(content)
        kv = load_vectors(path)
        assert kv.index_to_key == ["king", "queen", "new york"], name
        np.testing.assert_allclose(kv["queen"], rows["queen"])
    assert len(load_vectors(tmp_path / f"glove{suffix}", limit=2)) == 2


def test_an_analogy_subtracts_and_adds():
    """Crafted vectors where king - man + woman is exactly queen, and king + man + woman
    (minus read as plus) is exactly prince; neither answer is one of the query's words."""
    from gensim.models import KeyedVectors

    rows = {
        "king": [1.0, 1.0, 0.0, 0.0],
        "man": [1.0, 0.0, 0.0, 0.0],
        "woman": [0.0, 0.0, 1.0, 0.0],
        "queen": [0.0, 1.0, 1.0, 0.0],
        "prince": [2.0, 1.0, 1.0, 0.0],
        "apple": [0.0, 0.0, 0.0, 1.0],
    }
    kv = KeyedVectors(4)
    kv.add_vectors(list(rows), np.array(list(rows.values()), dtype=np.float32))
    assert neighbors(kv, "king - man + woman", 1)[0][0] == "queen"
    assert neighbors(kv, "king + man + woman", 1)[0][0] == "prince"
    assert neighbors(kv, "king -man +woman", 1)[0][0] == "queen"  # spaces are optional


def test_a_bad_vector_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(WordGPTError, match="no word vectors"):
        load_vectors(tmp_path / "empty.txt")
    with pytest.raises(WordGPTError, match="no vector file"):
        load_vectors(tmp_path / "missing.bin")


def test_neighbours_analogies_and_unknown_words(vectors, capsys):
    kv = load_vectors(W2V_TEXT)
    near = neighbors(kv, "the", 5)
    assert len(near) == 5 and all(-1 <= s <= 1 for _, s in near)
    assert neighbors(kv, "king - man + woman", 3)[0][0] != "king"  # the query words are left out
    with pytest.raises(WordGPTError, match="close spellings: .*\\bthe\\b"):
        neighbors(kv, "teh")
    with pytest.raises(SystemExit) as e:
        main(["embed", "neighbors", str(vectors), "qqqzzz"])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith("error: 'qqqzzz' is not in")


def test_coverage_on_a_crafted_vocabulary():
    from gensim.models import KeyedVectors

    kv = KeyedVectors(2)
    kv.add_vectors(["the", "knight", "sancho", " rode"], np.eye(4, 2, dtype=np.float32))
    vocab = ["<unk>", " the", "Knight", " rode", "rode", ",", "sancho"]
    counts = np.array([0, 50, 10, 20, 3, 15, 5])
    rows, cov = align(kv, vocab, counts)
    assert rows.tolist() == [-1, 0, 1, 3, -1, -1, 2]  # " rode" as it is, " the" stripped
    assert (cov.exact, cov.lowercase) == (3, 1)
    assert cov.tokens == pytest.approx(4 / 7)
    assert cov.weighted == pytest.approx(85 / 103)
    assert cov.missing_top == [",", "rode", "<unk>"]


@pytest.fixture
def crafted(tmp_path):
    """Vectors whose similarities and analogies are known, and small benchmark files."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(3)
    words = ["king", "queen", "man", "woman", "apple", "pear", "car", " Paris", "France"]
    vecs = np.array(
        [
            [1, 1, 0],
            [1, -1, 0],
            [0, 1, 0],
            [0, -1, 0],
            [0, 0, 1],
            [0.1, 0, 1],
            [5, 0, 0.1],
            [2, 0, 2],
            [2, 0, 1],
        ],
        dtype=np.float32,
    )
    kv.add_vectors(words, vecs)
    pairs = tmp_path / "pairs.tsv"
    # human scores ordered like the cosines of these pairs: Spearman exactly 1
    pairs.write_text(
        "# a comment\nking\tqueen\t2\napple\tpear\t9\nman\twoman\t1\nking\tunicorn\t5\n"
    )
    reverse = tmp_path / "reverse.tsv"
    reverse.write_text("king\tqueen\t8\napple\tpear\t1\nman\twoman\t9\n")
    analogies = tmp_path / "analogies.txt"
    analogies.write_text(
        ": family\nman woman king queen\nwoman man queen king\nman king woman car\n"
        "man woman unicorn horse\n"
    )
    files = {"wordsim353": pairs, "simlex999": reverse, "analogies": analogies}
    return kv, files


def test_the_measures_come_out_exactly_on_crafted_vectors(crafted):
    kv, files = crafted
    s = evaluate_vectors(kv, files)
    assert s.wordsim353 == pytest.approx(1.0) and s.wordsim353_coverage == pytest.approx(3 / 4)
    assert s.simlex999 == pytest.approx(-1.0) and s.simlex999_coverage == pytest.approx(1.0)
    # 3 of 4 questions covered; two right (queen, king), one wrong (car is not woman:king)
    assert s.analogies == pytest.approx(2 / 3) and s.analogies_coverage == pytest.approx(3 / 4)
    d = s.to_dict()
    assert set(d) >= {"wordsim353", "analogies_coverage", "mean_cosine", "collapsed"}


def test_space_prefixed_keys_are_found_as_plain_words(crafted):
    kv, _ = crafted
    view = word_view(kv)
    assert "paris" in view.key_to_index and " Paris" not in view.key_to_index


def test_neighbours_of_space_prefixed_vectors_take_plain_words():
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=2)
    kv.add_vectors([" knight", " errant", " wine"], np.array([[1, 0], [0.9, 0.1], [0, 1.0]]))
    assert neighbors(kv, "knight", 1)[0][0] == " errant"
    with pytest.raises(WordGPTError, match="close spellings"):
        neighbors(kv, "knigt")


def test_a_word_is_its_most_frequent_form():
    """'knight' in space-prefixed vectors is ' knight' (frequent), not the rare 'knight' that
    follows a quote mark, though that key exists as typed."""
    from gensim.models import KeyedVectors

    from wordgpt.vectors.queries import find_key

    kv = KeyedVectors(vector_size=2)
    kv.add_vectors([" knight", " the", "knight", "The"], np.eye(4, 2, dtype=np.float32))
    assert find_key(kv, "knight") == " knight"
    assert find_key(kv, "The") == " the"  # lowercased and prefixed, as it is most often
    assert find_key(kv, " knight") == " knight"


def test_the_collapse_warning_fires_on_collapsed_vectors_only():
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(600)]
    good = KeyedVectors(50)
    good.add_vectors(words, rng.standard_normal((600, 50)).astype(np.float32))
    bad = KeyedVectors(50)
    common = rng.standard_normal(50)
    bad.add_vectors(words, (common + 0.2 * rng.standard_normal((600, 50))).astype(np.float32))
    assert mean_cosine(good) < 0.05 and mean_cosine(bad) > 0.9
    assert not evaluate_vectors(good).collapsed
    s = evaluate_vectors(bad)
    assert s.collapsed and "look collapsed" in str(s)


def test_a_kv_file_runs_no_code_from_the_cli(evil_kv, word_data, tmp_path):
    path, marker = evil_kv
    err = one_line_error(cli("embed", "neighbors", path, "knight"))
    assert "pickle" in err and "--trust-pickle" in err
    args = ["--preset", "tiny", "--no-progress", "--init-embeddings", path]
    err = one_line_error(cli("train", "--data", word_data, "--out", tmp_path / "r", *args))
    assert "--trust-pickle" in err and not marker.exists()
    with pytest.raises(WordGPTError, match="trust_pickle"):
        train(word_data, tmp_path / "r2", preset="tiny", init_embeddings=str(path), **FAST)
    assert not marker.exists()


def test_a_trusted_kv_loads_and_a_foreign_one_is_one_line(word_data, tmp_path):
    kv = keyed_vectors(["knight", "sancho", "horse"], np.eye(3, dtype=np.float32))
    save_vectors(kv, tmp_path / "ok.kv")
    r = cli("embed", "neighbors", tmp_path / "ok.kv", "knight", "-n", "1", "--trust-pickle")
    assert r.returncode == 0, r.stderr
    (tmp_path / "junk.kv").write_bytes(b"not a pickle at all" * 10)
    assert "not a gensim .kv" in one_line_error(
        cli("embed", "neighbors", tmp_path / "junk.kv", "x", "--trust-pickle")
    )
