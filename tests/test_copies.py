"""Does it write or copy? The n-gram index of a training split, copied spans found exactly,
the val split's own share as the baseline, and the figures of `eval --copies`."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import wordgpt
from wordgpt.config import DataConfig
from wordgpt.corpus import copy_index
from wordgpt.corpus.build import prepare
from wordgpt.corpus.copy_index import CopyIndex, Span
from wordgpt.use.copies import split_share
from wordgpt.use.generate import COPY_MIN
from wordgpt.use.train_run import train

QUIET = {"progress": False, "tensorboard": False, "dtype": "fp32", "report": False}


def token_folder(root, train_ids: np.ndarray, val_ids: np.ndarray, vocab: int = 5000):
    """A data folder written by hand: the ids are known exactly."""
    root.mkdir(parents=True, exist_ok=True)
    train_ids.astype(np.uint16).tofile(root / "train.bin")
    val_ids.astype(np.uint16).tofile(root / "val.bin")
    meta = {
        "vocab_size": vocab,
        "dtype": "uint16",
        "config": {},
        "tokenizer": "word",
        "sources": [{"dataset": "crafted", "train_start": 0}],
        "splits": {
            "train": {"tokens": len(train_ids), "chars": len(train_ids)},
            "val": {"tokens": len(val_ids), "chars": len(val_ids)},
        },
    }
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def random_folder(tmp_path):
    rng = np.random.default_rng(0)
    return token_folder(tmp_path / "d", rng.integers(1, 5000, 50_000), rng.integers(1, 5000, 5_000))


def test_a_copied_span_is_found_with_its_place_and_nothing_else(random_folder):
    rng = np.random.default_rng(1)
    train = np.fromfile(random_folder / "train.bin", dtype=np.uint16).astype(np.int64)
    query = np.concatenate([rng.integers(1, 5000, 30), train[1234:1250], rng.integers(1, 5000, 20)])
    index = CopyIndex.open(random_folder, 8)
    assert index.spans(query) == [Span(30, 16, 1234)]
    assert index.spans(query, min_length=17) == []  # 16 tokens: not 17
    assert index.spans(rng.integers(1, 5000, 200)) == []  # text that is not there
    found, total = index.share(query)
    assert total == len(query) - 7 and found == 16 - 8 + 1


def test_two_copies_side_by_side_are_two_spans(random_folder):
    train = np.fromfile(random_folder / "train.bin", dtype=np.uint16).astype(np.int64)
    query = np.concatenate([train[100:110], train[40_000:40_012]])
    spans = CopyIndex.open(random_folder, 8).spans(query)
    assert spans == [Span(0, 10, 100), Span(10, 12, 40_000)]


def test_the_val_baseline_counts_a_passage_repeated_from_train(tmp_path):
    rng = np.random.default_rng(2)
    train = rng.integers(1, 5000, 20_000)
    val = np.concatenate([rng.integers(1, 5000, 900), train[5000:5100]])  # 100 tokens copied
    folder = token_folder(tmp_path / "d", train, val)
    assert split_share(folder, "val", 8) == pytest.approx((100 - 8 + 1) / (1000 - 8 + 1))


def test_the_index_is_built_again_when_train_bin_changes(random_folder):
    first = CopyIndex.open(random_folder, 8)
    old = np.asarray(first.train[:20], dtype=np.int64)
    assert first.spans(old) == [Span(0, 20, 0)]
    new = np.random.default_rng(3).integers(1, 5000, 50_000).astype(np.uint16)
    new.tofile(random_folder / "train.bin")
    os.utime(random_folder / "train.bin", ns=(1, 1))  # a stamp the index does not know
    again = CopyIndex.open(random_folder, 8)
    assert again.spans(old) == [] and again.spans(new[:12].astype(np.int64)) == [Span(0, 12, 0)]


def test_a_half_built_index_is_never_read(random_folder, monkeypatch):
    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(copy_index, "_sort_buckets", broken)
    with pytest.raises(wordgpt.WordGPTError, match="disk full"):
        CopyIndex.open(random_folder, 8)
    assert not list(random_folder.glob("copies-*")) and not list(random_folder.glob(".*.tmp"))
    monkeypatch.undo()
    assert len(CopyIndex.open(random_folder, 8)) == 50_000 - 7


@pytest.mark.slow
def test_a_run_that_recites_its_book_shows_it(tmp_path, capsys):
    """A model trained to recite a short text: its samples stand in the training text, and
    `eval --copies` says so beside the val split's own share."""
    from wordgpt.cli import main

    text = "".join(
        f"sentence number {i} of a book that the model learns by heart. " for i in range(60)
    )
    (tmp_path / "book.txt").write_text(text)
    cfg = DataConfig(dataset=str(tmp_path / "book.txt"), space_prefix=False, min_count=1)
    prepare(tmp_path / "d", cfg, progress=False)
    train(tmp_path / "d", tmp_path / "r", preset="tiny", max_iters=300, lr=1e-2, **QUIET)
    m = wordgpt.load(tmp_path / "r")
    w = m.generate("sentence number", max_new_tokens=60, temperature=0, seed=1)
    assert w.copies.spans and w.copies.share > 0.5
    top = w.copies.longest
    assert w.text[top.start : top.end].strip() in text and "book.txt" in top.where
    main(["sample", str(tmp_path / "r"), "--prompt", "sentence number", "--temperature", "0",
          "--max-new-tokens", "40"])  # fmt: skip
    err = capsys.readouterr().err
    assert "copies: " in err and "of the text is in" in err and "«" in err


@pytest.mark.slow
def test_eval_copies_reports_the_samples_and_the_val_baseline(tmp_path, capsys, word_data):
    from wordgpt.cli import main

    train(word_data, tmp_path / "r", preset="tiny", max_iters=20, **QUIET)
    capsys.readouterr()  # what training said
    main(["eval", str(tmp_path / "r"), "--copies", "--json"])
    c = json.loads(capsys.readouterr().out)["copies"]
    assert c["samples"] == 10 and c["n"] == COPY_MIN["word"]  # plain word tokens: 16
    assert 0 <= c["sample_ngrams_in_train"] <= 1 and 0 <= c["val_ngrams_in_train"] < 0.2
    assert json.loads((tmp_path / "r" / "eval.json").read_text())["copies"] == c
