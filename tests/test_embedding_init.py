"""A GPT whose token embedding starts from word vectors (--init-embeddings): found rows kept,
missing ones scaled, wider vectors mapped by PCA, a tied head sharing them, frozen for a few
steps then moving; bad vectors are bad input."""

import json

import numpy as np
import pytest
import torch

import wordgpt
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.corpus.tokenizer import WordTokenizer
from wordgpt.runs import checkpoint
from wordgpt.training.embedding_init import embedding_matrix
from wordgpt.use.train_run import train

from .helpers import FAST, one_line_error, train_cli


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
        word_data, tmp_path / "r", preset="tiny", max_iters=2, init_embeddings=str(path), **FAST
    )
    assert r.step == 2  # 20 vectors of 50 dims onto 32: PCA to 19, then padded


@pytest.mark.slow
@pytest.mark.parametrize("values", ["nan", "0.0"])
def test_non_finite_or_zero_vectors_are_bad_input_and_block_no_rerun(word_data, tmp_path, values):
    path = tmp_path / "v.txt"
    path.write_text("".join(f"{w} {values} {values}\n" for w in ("the", "of", "and", "to")))
    out = tmp_path / "r"
    err = one_line_error(train_cli(word_data, out, "--init-embeddings", path))
    assert "not finite" in err or "zero" in err
    r = train_cli(word_data, out, "--max-iters", "2")
    assert r.returncode == 0, r.stderr  # nothing left behind blocks the rerun
