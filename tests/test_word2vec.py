"""Word2Vec on the GPT's own tokens: sentences cut at stops, a vector for every vocabulary
word, defaults chosen by measurement (the notebook's with --notebook), the embed command, and
its t-SNE picture."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np

from wordgpt.cli import main
from wordgpt.config import Word2VecConfig
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.vectors.files import load_vectors
from wordgpt.vectors.word2vec import corpus_sentences, train_word2vec


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
    from wordgpt.vectors.word2vec import word2vec_epochs

    cfg = Word2VecConfig()
    assert (cfg.vector_size, cfg.window, cfg.min_count, cfg.sg, cfg.sample) == (100, 5, 5, 1, 1e-4)
    assert word2vec_epochs(cfg, 400_000) == 30  # a book
    assert word2vec_epochs(cfg, 1_200_000) == 10
    assert word2vec_epochs(cfg, 10**9) == 5  # a large corpus: few passes
    assert word2vec_epochs(Word2VecConfig(epochs=7), 10**9) == 7


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


def test_notebook_flag_reproduces_the_notebooks_parameters(word_data, tmp_path, capsys):
    from wordgpt.presets import NOTEBOOK_WORD2VEC

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

    main(["embed", "evaluate", str(vectors), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["vectors"] == str(vectors) and 0 <= d["wordsim353_coverage"] <= 1
