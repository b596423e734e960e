import bz2
import gzip
import json
from pathlib import Path

import gensim
import matplotlib.image
import numpy as np
import pytest
import torch

import wordgpt
from wordgpt.cli import main
from wordgpt.config import Word2VecConfig
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.corpus.tokenizer import WordTokenizer
from wordgpt.errors import WordGPTError
from wordgpt.runs import checkpoint
from wordgpt.training.embedding_init import embedding_matrix
from wordgpt.training.train import train
from wordgpt.vectors.align import align
from wordgpt.vectors.files import keyed_vectors, load_vectors, save_vectors
from wordgpt.vectors.quality import evaluate_vectors, mean_cosine, word_view
from wordgpt.vectors.queries import neighbors
from wordgpt.vectors.word2vec import corpus_sentences, train_word2vec

from .helpers import cli, one_line_error

QUIET = {"progress": False, "tensorboard": False, "dtype": "fp32", "report": False}

GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"
W2V_TEXT = GENSIM_DATA / "word2vec_pre_kv_c"  # word2vec C text format, 1750 x 10
W2V_BIN = GENSIM_DATA / "euclidean_vectors.bin"  # word2vec C binary format, 2747 x 10
GLOVE = GENSIM_DATA / "test_glove.txt"  # GloVe text, no header


@pytest.fixture(scope="module")
def vectors(word_data, tmp_path_factory):
    kv = train_word2vec(
        word_data, Word2VecConfig(vector_size=24, epochs=2, min_count=1, workers=1, split="all")
    )
    path = tmp_path_factory.mktemp("vec") / "w2v.npz"  # wordgpt's own format: no pickle
    save_vectors(kv, path)
    return path


def test_word2vec_recovers_an_obvious_neighbour(tmp_path):
    rng = np.random.default_rng(0)
    pets, others = ["cat", "dog"], ["stone", "river", "cloud", "sword"]
    lines = []
    for _ in range(600):
        lines.append(f"the {rng.choice(pets)} sleeps by the fire and eats its food.")
        lines.append(f"the {rng.choice(others)} lies on the hill under a grey sky.")
    (tmp_path / "pets.txt").write_text(" ".join(lines))
    from wordgpt.config import DataConfig
    from wordgpt.corpus.build import prepare

    prepare(tmp_path / "d", DataConfig(dataset=str(tmp_path / "pets.txt"), space_prefix=False))
    kv = train_word2vec(
        tmp_path / "d",
        Word2VecConfig(vector_size=16, epochs=20, workers=1, split="all", sample=1e-3),
    )
    assert kv.most_similar("cat", topn=1)[0][0] == "dog"
    assert kv.vector_size == 16


def test_sentences_are_cut_at_stops_and_skip_whitespace(word_data):
    sents = corpus_sentences(word_data)
    assert all(s[-1] in {".", "?", "!"} for s in sents[:-1])
    assert not any(t.isspace() for s in sents for t in s)


def test_every_vocabulary_word_has_a_vector(word_data, vectors):
    kv = load_vectors(vectors)
    tok = tokenizers.load(word_data / "tokenizer.json")
    words = [t for t in tok.itos[1:] if not t.isspace()]
    assert all(w in kv.key_to_index for w in words)
    # most frequent first (on this short text train's singletons, all <unk>, outnumber "the")
    assert [k for k in kv.index_to_key if k != "<unk>"][0] in {"the", ",", "."}
    assert kv.get_vecattr(kv.index_to_key[0], "count") > 100


def test_defaults_are_chosen_by_measurement_and_epochs_follow_the_corpus():
    from wordgpt.config import word2vec_epochs

    cfg = Word2VecConfig()
    assert (cfg.vector_size, cfg.window, cfg.min_count, cfg.sg, cfg.sample) == (100, 5, 5, 1, 1e-4)
    assert word2vec_epochs(cfg, 400_000) == 30  # a book
    assert word2vec_epochs(cfg, 1_200_000) == 10
    assert word2vec_epochs(cfg, 10**9) == 5  # a large corpus: few passes
    assert word2vec_epochs(Word2VecConfig(epochs=7), 10**9) == 7


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


def test_matrix_keeps_found_rows_and_scales_missing_ones(tmp_path):
    kv_path = tmp_path / "v.txt"
    kv_path.write_text("3 4\nthe 1 0 0 0\nknight 0 2 0 0\nsancho 0 0 3 0\n")
    tok = WordTokenizer(["<unk>", "the", "knight", "squire", "sancho"])
    m, info = embedding_matrix(kv_path, tok, 4)
    scale = m[1, 0]  # "the" was (1, 0, 0, 0)
    np.testing.assert_allclose(m[2], [0, 2 * scale, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(m[4], [0, 0, 3 * scale, 0], rtol=1e-6)
    mean_norm = (1 + 2 + 3) / 3 * scale
    np.testing.assert_allclose(np.linalg.norm(m[[0, 3]], axis=1), mean_norm, rtol=1e-5)
    assert m.std() == pytest.approx(0.02, rel=1e-5)
    assert info["coverage_tokens"] == pytest.approx(3 / 5)
    m2, info2 = embedding_matrix(kv_path, tok, 2, fit="pca")
    assert m2.shape == (5, 2) and info2["width"] == 2
    m3, _ = embedding_matrix(kv_path, tok, 8, fit="model")
    assert m3.shape == (5, 4)


def test_an_embedding_initialised_gpt_starts_with_those_rows_frozen_then_moving(
    word_data, vectors, tmp_path
):
    tok = tokenizers.load(word_data / "tokenizer.json")
    from wordgpt.corpus.tokenfiles import load_split

    counts = np.bincount(np.asarray(load_split(word_data, "train")), minlength=tok.vocab_size)
    expected, _ = embedding_matrix(vectors, tok, 24, fit="model", seed=1337, counts=counts)
    common = {"preset": "tiny", "dtype": "fp32", "progress": False, "n_head": 2, "report": False}
    train(
        word_data,
        tmp_path,
        max_iters=5,
        freeze_embeddings=5,
        init_embeddings=str(vectors),
        embeddings_fit="model",
        eval_interval=5,
        **common,
    )
    ck = checkpoint.read(tmp_path / "last.pt")
    assert ck["model_config"]["n_embd"] == 24  # the width followed the vectors
    assert torch.equal(ck["model"]["wte.weight"], torch.from_numpy(expected))
    assert ck["provenance"]["embeddings"]["path"] == str(vectors.resolve())
    assert ck["model"]["h.0.attn.qkv.weight"].abs().sum() > 0
    train(word_data, tmp_path, resume=True, max_iters=8, progress=False, report=False)
    moved = checkpoint.read(tmp_path / "last.pt")
    assert not torch.equal(moved["model"]["wte.weight"], torch.from_numpy(expected))
    assert moved["provenance"]["embeddings"]["dim"] == 24


def test_pca_maps_wider_vectors_onto_the_model(word_data, vectors, tmp_path):
    r = train(
        word_data,
        tmp_path,
        preset="tiny",
        max_iters=2,
        init_embeddings=str(vectors),
        dtype="fp32",
        progress=False,
        report=False,
    )
    ck = checkpoint.read(tmp_path / "last.pt")
    assert ck["model_config"]["n_embd"] == 32 and r.step == 2
    assert ck["provenance"]["embeddings"]["fit"] == "pca"


def test_tied_head_shares_the_initialised_embedding(word_data, vectors, tmp_path):
    tok = tokenizers.load(word_data / "tokenizer.json")
    from wordgpt.corpus.tokenfiles import load_split

    counts = np.bincount(np.asarray(load_split(word_data, "train")), minlength=tok.vocab_size)
    expected, _ = embedding_matrix(vectors, tok, 32, seed=1337, counts=counts)
    train(
        word_data,
        tmp_path,
        preset="tiny",
        max_iters=1,
        init_embeddings=str(vectors),
        tie_weights=True,
        freeze_embeddings=1,
        dtype="fp32",
        progress=False,
        report=False,
    )
    m = wordgpt.load(tmp_path, "last")
    assert m.gpt.lm_head.weight is m.gpt.wte.weight  # one tensor after loading too
    assert torch.equal(m.gpt.lm_head.weight.detach(), torch.from_numpy(expected))  # the vectors


def test_tsne_plot_writes_a_png_of_the_asked_size(vectors, tmp_path, capsys):
    out, html = tmp_path / "map.png", tmp_path / "map.html"
    main(
        [
            "embed",
            "plot",
            str(vectors),
            "--out",
            str(out),
            "--words",
            "300",
            "--label",
            "20",
            "--size",
            "400x300",
            "--html",
            str(html),
        ]
    )
    img = matplotlib.image.imread(out)
    assert img.shape[:2] == (300, 400)
    assert "<html>" in html.read_text()[:2000].lower()
    assert "t-SNE" in (err := capsys.readouterr().err) and "750/750" in err  # its progress bar


def test_embed_cli_train_and_coverage(word_data, tmp_path, capsys):
    main(
        [
            "embed",
            "train",
            "--data",
            str(word_data),
            "--out",
            str(tmp_path / "v.bin"),
            "--format",
            "word2vec-bin",
            "--vector-size",
            "16",
            "--epochs",
            "1",
            "--workers",
            "1",
        ]
    )
    assert "words x 16 dims" in capsys.readouterr().out
    main(["embed", "coverage", str(tmp_path / "v.bin"), "--data", str(word_data)])
    assert "coverage:" in capsys.readouterr().out


# ------------------------------------------------------------------ vector quality


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


def test_notebook_flag_reproduces_the_notebooks_parameters(word_data, tmp_path, capsys):
    from wordgpt.config import NOTEBOOK_WORD2VEC

    n = NOTEBOOK_WORD2VEC
    assert (
        n.vector_size,
        n.window,
        n.min_count,
        n.sg,
        n.epochs,
        n.negative,
        n.sample,
        n.alpha,
    ) == (500, 5, 1, 1, 5, 5, 1e-3, 0.025)
    main(
        [
            "embed",
            "train",
            "--data",
            str(word_data),
            "--out",
            str(tmp_path / "nb.npz"),
            "--notebook",
            "--workers",
            "1",
        ]
    )
    out = capsys.readouterr().out
    kv = load_vectors(tmp_path / "nb.npz")
    assert kv.vector_size == 500 and "5 epochs" in out and "WordSim353" in out


def test_embed_evaluate_prints_json(vectors, capsys):
    import json

    main(["embed", "evaluate", str(vectors), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["vectors"] == str(vectors) and 0 <= d["wordsim353_coverage"] <= 1


# --------------------------------------------------------------- vector files are data, never code


def test_a_kv_file_runs_no_code_from_the_cli(evil_kv, word_data, tmp_path):
    path, marker = evil_kv
    err = one_line_error(cli("embed", "neighbors", path, "knight"))
    assert "pickle" in err and "--trust-pickle" in err
    args = ["--preset", "tiny", "--no-progress", "--init-embeddings", path]
    err = one_line_error(cli("train", "--data", word_data, "--out", tmp_path / "r", *args))
    assert "--trust-pickle" in err and not marker.exists()
    with pytest.raises(WordGPTError, match="trust_pickle"):
        train(word_data, tmp_path / "r2", preset="tiny", init_embeddings=str(path), **QUIET)
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


def test_a_few_vectors_narrower_model_than_their_width_still_initialise(word_data, tmp_path):
    words = [
        w for w in json.loads((word_data / "tokenizer.json").read_text())["itos"] if w.isalpha()
    ][:20]
    rng = np.random.default_rng(0)
    path = tmp_path / "twenty.txt"
    path.write_text(
        "".join(
            f"{w} " + " ".join(f"{v:.4f}" for v in rng.standard_normal(50)) + "\n" for w in words
        )
    )
    r = train(
        word_data, tmp_path / "r", preset="tiny", max_iters=2, init_embeddings=str(path), **QUIET
    )
    assert r.step == 2  # 20 vectors of 50 dims onto 32: PCA to 19, then padded


@pytest.mark.parametrize("values", ["nan", "0.0"])
def test_non_finite_or_zero_vectors_are_bad_input_and_block_no_rerun(word_data, tmp_path, values):
    path = tmp_path / "v.txt"
    path.write_text("".join(f"{w} {values} {values}\n" for w in ("the", "of", "and", "to")))
    out = tmp_path / "r"
    err = one_line_error(
        cli(
            "train",
            "--data",
            word_data,
            "--out",
            out,
            "--preset",
            "tiny",
            "--init-embeddings",
            path,
            "--no-progress",
        )
    )
    assert "not finite" in err or "zero" in err
    r = cli(
        "train",
        "--data",
        word_data,
        "--out",
        out,
        "--preset",
        "tiny",
        "--max-iters",
        "2",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr  # nothing left behind blocks the rerun
