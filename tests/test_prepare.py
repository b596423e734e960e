"""prepare: text to token files. The token files and meta.json agree with the text, the
streamed files are byte-identical to the plain in-memory path (whatever the chunk sizes and
the number of workers), a vocabulary from another folder gives its ids, and a prepare that
fails or is interrupted changes nothing."""

from __future__ import annotations

import bz2
import json
import shutil
import signal
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference_corpus import reference_ids
from wordgpt.cli import main
from wordgpt.config import DataConfig
from wordgpt.corpus import sources
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.corpus.build import prepare
from wordgpt.corpus.cleaning import clean
from wordgpt.corpus.sources import BOOKS, Progress, sha256_file
from wordgpt.corpus.tokenfiles import load_meta, load_split, token_dtype
from wordgpt.errors import DataError
from wordgpt.runs import checkpoint

from .conftest import book_path, needs_book
from .helpers import cli, examples, one_line_error, snapshot

# ---------------------------------------------------------------- token files


START = BOOKS["don-quixote"].start
WORDS = st.lists(
    st.sampled_from(["the", "knight", "Sancho", "ΣΑΣ", "İ", ".", ",", "  ", "\n", "é", "x1"]),
    min_size=30,
    max_size=120,
).map(" ".join)


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_token_files_and_meta_agree_with_the_text(corpus_file, tmp_path, kind):
    cfg = DataConfig(dataset=str(corpus_file), tokenizer=kind, vocab_size=400)
    p = prepare(tmp_path, cfg)
    text = clean(corpus_file.read_text(encoding="utf-8"), cfg)
    meta = json.loads((tmp_path / "meta.json").read_text())
    tok = tokenizers.load(tmp_path / "tokenizer.json")
    n_train = meta["splits"]["train"]["chars"]
    texts = {"train": text[:n_train], "val": text[n_train:]}
    assert len(texts["val"]) == meta["splits"]["val"]["chars"]
    for split, part in texts.items():
        ids = load_split(tmp_path, split)
        assert ids.dtype == np.uint16 and meta["dtype"] == "uint16"
        assert len(ids) == meta["splits"][split]["tokens"]
        if kind == "bpe":  # bytes: nothing is unknown
            assert tok.decode(ids.tolist()) == part and meta["splits"][split]["unk"] == 0
            continue
        # a token out of the vocabulary (in val: one train never had; in train: a singleton,
        # by --min-count 2) is <unk>; every other one is itself
        pieces = tok.split(part)
        assert [tok.itos[i] if i else None for i in ids.tolist()] == [
            t if t in tok.stoi else None for t in pieces
        ]
        assert meta["splits"][split]["unk"] == sum(t not in tok.stoi for t in pieces)
    if kind == "word":
        assert meta["splits"]["train"]["unk"] > 0  # the default makes train's singletons <unk>
    assert meta["vocab_size"] == tok.vocab_size == p.tokenizer.vocab_size
    assert meta["source"]["sha256"] == sha256_file(corpus_file)
    assert meta["config"]["tokenizer"] == kind
    assert abs(meta["splits"]["val"]["chars"] / len(text) - 0.1) < 0.01


def test_prepare_prints_a_summary(corpus_file, tmp_path, capsys):
    main(["prepare", "--dataset", str(corpus_file), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    for word in ("unique chars", "vocabulary", "train", "val", "first tokens"):
        assert word in out


def test_the_preview_keeps_the_space_before_each_unk(tmp_path, capsys):
    """With space-prefixed words an <unk> stands for a word and its space: the preview of the
    first text shows "said <unk> <unk>," and never glues them ("said<unk><unk>,")."""
    (tmp_path / "t.txt").write_text("it said quixotic hidalgo, it said. " * 2 + "the end, " * 40)
    main(["prepare", "--dataset", str(tmp_path / "t.txt"), "--out", str(tmp_path / "d"),
          "--tokenizer", "word", "--space-prefix", "--min-count", "3"])  # fmt: skip
    first = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("first text"))
    assert "said <unk> <unk>, it said" in first, first


@pytest.mark.parametrize("words, dtype", [(65_000, "uint16"), (70_000, "uint32")])
def test_token_files_are_uint32_when_the_vocabulary_does_not_fit_uint16(tmp_path, words, dtype):
    """prepare writes the ids with the dtype its vocabulary needs, and they read back: with
    70,000 distinct words an id above 65,535 must survive (uint16 would wrap it)."""
    text = " ".join(f"w{i}" for i in range(words)) + " "
    (tmp_path / "t.txt").write_text(text * 2, encoding="utf-8")  # each word in train
    cfg = DataConfig(dataset=str(tmp_path / "t.txt"), val_fraction=0.01, min_count=1)
    p = prepare(tmp_path / "d", cfg)
    assert p.meta["dtype"] == dtype == token_dtype(p.tokenizer.vocab_size).name
    train = np.asarray(load_split(tmp_path / "d", "train"))
    assert train.dtype == np.dtype(dtype) and int(train.max()) == p.tokenizer.vocab_size - 1
    assert p.tokenizer.decode(train.tolist())[: len(text)] == text


def test_missing_token_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="wordgpt prepare"):
        load_meta(tmp_path)


@needs_book
@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_don_quixote_prepares_with_each_tokenizer(tmp_path, kind):
    p = prepare(tmp_path, DataConfig(tokenizer=kind))
    m = p.meta
    total = m["splits"]["train"]["chars"] + m["splits"]["val"]["chars"]
    assert 2_100_000 < total < 2_200_000
    if kind == "word":
        # 14,891 space-prefixed words and marks in the training split (words in its last
        # tenth only are not among them: the vocabulary must not know them); those seen once
        # are <unk> (--min-count 2), each once in train, and the spelling model knows them
        rare = p.tokenizer.rare
        assert m["vocab_size"] - 1 + len(rare) == 14_891
        assert m["splits"]["train"]["unk"] == len(rare) > 1000
        assert m["splits"]["val"]["unk"] > 0
        assert m["splits"]["val"]["unk_spell_bits"] > 10 * m["splits"]["val"]["unk"]


def test_prepare_warns_when_the_vocabulary_fits_val_much_worse_than_train():
    """With --min-count 2 train has its own <unk>s (its singletons): a val split with about
    twice as many is what a book gives, no warning; far more, or any above 1 % when train has
    none (--min-count 1, or a vocabulary from other text), is."""
    from wordgpt.corpus.build import unk_warning

    assert unk_warning({"unk_share": 0.016}, {"unk_share": 0.0335}) is None  # Don Quixote
    assert unk_warning({"unk_share": 0.0}, {"unk_share": 0.009}) is None
    assert "2.0% of the val tokens" in unk_warning({"unk_share": 0.0}, {"unk_share": 0.02})
    assert "against 1.0% of the training" in unk_warning({"unk_share": 0.01}, {"unk_share": 0.05})


# ---------------------------------------------------------------- a failed prepare changes nothing


def test_a_prepare_that_fails_leaves_the_data_folder_it_would_replace(corpus_file, tmp_path):
    victim = tmp_path / "victim"
    prepare(victim, DataConfig(dataset=str(corpus_file)), progress=False)
    before = snapshot(victim)
    (tmp_path / "gd" / "x.txt").mkdir(parents=True)  # a glob that matches only a folder
    err = one_line_error(
        cli("prepare", "--dataset", f"{tmp_path}/gd/*.txt", "--out", victim, "--overwrite")
    )
    assert "no file matches" in err and snapshot(victim) == before
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    one_line_error(cli("prepare", "--dataset", empty, "--out", victim, "--overwrite"))
    assert snapshot(victim) == before
    err = one_line_error(cli("prepare", "--dataset", corpus_file, "--out", victim))
    assert "--overwrite" in err and snapshot(victim) == before  # replaced only when asked
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no private folder left


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "meta.json").write_text("garbage{"), "cannot be read"),
        (lambda d: (d / "meta.json").write_text("{}"), "not what `wordgpt prepare` writes"),
        (lambda d: (d / "meta.json").write_text("[1, 2]"), "not a JSON object"),
        (
            lambda d: (d / "train.bin").write_bytes((d / "train.bin").read_bytes()[:-1]),
            "bytes, not the",
        ),
        (
            lambda d: (d / "train.bin").write_bytes(
                np.full(100_000, 65_000, np.uint16).tobytes()[: (d / "train.bin").stat().st_size]
            ),
            "outside the vocabulary",
        ),
        (
            lambda d: (d / "tokenizer.json").write_text('{"kind": "word", "itos": [1, 2]}'),
            "not a list of tokens",
        ),
    ],
)
def test_a_damaged_data_folder_is_one_line(word_data, tmp_path, damage, message):
    data = tmp_path / "d"
    shutil.copytree(word_data, data)
    damage(data)
    err = one_line_error(
        cli("train", "--data", data, "--out", tmp_path / "r", "--preset", "tiny", "--no-progress")
    )
    assert message in err, err


# ------------------------------------------------------------------ texts of any shape


def streamed(cfg, tmp_path, name, **kw):
    out = tmp_path / name
    p = prepare(out, cfg, progress=False, **kw)
    ids = {s: np.fromfile(out / f"{s}.bin", dtype=p.meta["dtype"]) for s in ("train", "val")}
    return p, ids


def reference(cfg, texts, start=None):
    tok, train_ids, val_ids, chars = reference_ids(cfg, texts, start=start)
    return tok, {"train": train_ids, "val": val_ids}, chars


def assert_same(p, ids, ref):
    tok, ref_ids, chars = ref
    assert checkpoint.tokenizer_json(p.tokenizer) == checkpoint.tokenizer_json(tok)
    for s in ("train", "val"):
        assert ids[s].tolist() == ref_ids[s], s
        assert p.meta["splits"][s]["chars"] == chars[s]
        assert p.meta["splits"][s]["tokens"] == len(ref_ids[s])


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    text=WORDS,
    chunk=st.integers(2, 40),
    read=st.integers(1, 13),
    kind=st.sampled_from(["word", "word-sp", "char", "bpe"]),
    raw=st.booleans(),
)
def test_streamed_token_files_are_byte_identical_to_the_in_memory_path(
    tmp_path_factory, text, chunk, read, kind, raw
):
    """Raw text too (capitals and line breaks kept, written as marks)."""
    tmp = tmp_path_factory.mktemp("s")
    (tmp / "t.txt").write_text(text, encoding="utf-8")
    cfg = DataConfig(
        dataset=str(tmp / "t.txt"),
        tokenizer="word" if kind.startswith("word") else kind,
        space_prefix=kind == "word-sp",
        vocab_size=300,
        lowercase=not raw,
        newlines_to_spaces=not raw,
    )
    with mock.patch.object(sources, "READ", read):  # multi-byte characters split across reads
        p, ids = streamed(cfg, tmp, "out", workers=1, chunk_size=chunk)
    assert_same(p, ids, reference(cfg, [text]))


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_one_and_two_workers_write_the_same_files(corpus_file, tmp_path, kind):
    cfg = DataConfig(dataset=str(corpus_file), tokenizer=kind, vocab_size=400)
    a = prepare(tmp_path / "one", cfg, workers=1, progress=False, chunk_size=4096)
    b = prepare(tmp_path / "two", cfg, workers=2, progress=False, chunk_size=4096)
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        assert (a.out / name).read_bytes() == (b.out / name).read_bytes(), name
    ref = reference(cfg, [corpus_file.read_text(encoding="utf-8")])
    assert_same(
        a, {s: np.fromfile(a.out / f"{s}.bin", a.meta["dtype"]) for s in ("train", "val")}, ref
    )


@needs_book
def test_the_book_streamed_equals_the_book_in_memory(tmp_path):
    cfg = DataConfig(space_prefix=True)
    p, ids = streamed(cfg, tmp_path, "dq", workers=2, chunk_size=100_000)
    text = book_path().read_text(encoding="utf-8")
    assert_same(p, ids, reference(cfg, [text], start=START))
    # --min-count 2: each of train's singletons is one <unk> there, and nothing else is
    assert p.meta["splits"]["train"]["unk"] == len(p.tokenizer.rare) > 1000


def test_several_files_a_folder_and_a_glob(corpus_file, tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    text = corpus_file.read_text(encoding="utf-8")
    thirds = [
        text[: len(text) // 3],
        text[len(text) // 3 : 2 * len(text) // 3],
        text[2 * len(text) // 3 :],
    ]
    for i, t in enumerate(thirds):
        (books / f"part{i}.txt").write_text(t, encoding="utf-8")
    cfg = DataConfig(dataset=str(books))
    p, ids = streamed(cfg, tmp_path, "folder", workers=1, chunk_size=3000)
    assert_same(p, ids, reference(cfg, thirds))
    assert len(p.meta["sources"]) == 3 and p.meta["split"]["per"] == "file"
    g, gids = streamed(DataConfig(dataset=str(books / "part*.txt")), tmp_path, "glob", workers=1)
    assert {s: gids[s].tolist() for s in gids} == {s: ids[s].tolist() for s in ids}
    two = DataConfig(dataset=(str(books / "part0.txt"), str(books / "part2.txt")))
    t, tids = streamed(two, tmp_path, "two", workers=1)
    assert_same(t, tids, reference(two, [thirds[0], thirds[2]]))


def test_tokenizer_from_gives_the_original_ids(word_data, corpus_file, tmp_path):
    meta = json.loads((word_data / "meta.json").read_text())
    cfg = DataConfig(**{**meta["config"], "dataset": str(corpus_file)})
    p = prepare(tmp_path / "again", cfg, tokenizer_from=word_data, progress=False)
    for s in ("train", "val"):
        assert (p.out / f"{s}.bin").read_bytes() == (word_data / f"{s}.bin").read_bytes()
    assert p.meta["tokenizer_from"] == str(word_data.resolve())
    other = tmp_path / "other.txt"
    other.write_text("The zyzzyva and the knight. " * 40)
    q = prepare(
        tmp_path / "o", DataConfig(dataset=str(other)), tokenizer_from=word_data, progress=False
    )
    assert q.meta["vocab_size"] == meta["vocab_size"]
    assert q.meta["splits"]["train"]["unk"] > 0 and 0 < q.meta["splits"]["train"]["unk_share"] < 1


def test_max_vocab_and_min_count_stream_too(corpus_file, tmp_path):
    # words seen once, at the end (in the validation split), whatever the corpus is
    text = corpus_file.read_text(encoding="utf-8") + " ".join(f"rare{i}" for i in range(300))
    src = tmp_path / "rare.txt"
    src.write_text(text, encoding="utf-8")
    for kw in ({"max_vocab": 50}, {"min_count": 5}):
        cfg = DataConfig(dataset=str(src), **kw)
        p, ids = streamed(cfg, tmp_path, f"v{len(kw)}{list(kw)[0]}", workers=1, chunk_size=2000)
        assert_same(p, ids, reference(cfg, [text]))
        assert p.meta["splits"]["val"]["unk"] > 0


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_prepare_changes_nothing(corpus_file, tmp_path, existing):
    """Ctrl-C in the middle of a prepare (its private folder is being written): exit 130,
    no new folder, and an older data folder at --out is still the same, byte for byte."""
    big = tmp_path / "big.txt"
    big.write_text(
        ("In a village of La Mancha, the name of which I have no desire. " * 4000 + "\n") * 60,
        encoding="utf-8",
    )  # 15 MB
    out = tmp_path / "out"
    before = {}
    if existing:
        prepare(out, DataConfig(dataset=str(corpus_file)), progress=False)
        before = {f.name: f.read_bytes() for f in out.iterdir()}
    args = ["--dataset", str(big), "--out", str(out), "--workers", "1", "--no-progress"]
    p = subprocess.Popen(
        [sys.executable, "-m", "wordgpt.cli", "prepare", *args, *(["--overwrite"] * existing)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not any(tmp_path.glob(".out.*.tmp/.*.tmp")) and time.time() < deadline:
        time.sleep(0.01)  # the first pass is writing into the private folder: mid-prepare
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err.startswith("interrupted"), err
    assert not list(tmp_path.glob(".out.*"))  # the private folder is gone
    if existing:
        assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    else:
        assert not out.exists()


def test_progress_is_counted_in_input_bytes(corpus_file, tmp_path):

    packed = tmp_path / "c.txt.bz2"
    packed.write_bytes(bz2.compress(corpus_file.read_bytes()))
    seen = []
    real = Progress.update
    with mock.patch.object(Progress, "update", lambda self, n: seen.append(n) or real(self, n)):
        prepare(tmp_path / "o", DataConfig(dataset=str(packed)), progress=False)
    assert sum(seen) == packed.stat().st_size  # compressed bytes: the total is known up front


def test_of_two_prepares_into_one_new_folder_the_second_is_refused(
    corpus_file, tmp_path, monkeypatch
):
    """Two ``prepare --out D`` at once into a new D: the one that finishes first is kept;
    the other says so in one line instead of replacing it without --overwrite."""
    from wordgpt.corpus import build

    out, real = tmp_path / "d", build.write_folder

    def another_prepare_finishes_first(work, job):  # another process, with its own temp folder
        r = cli("prepare", "--dataset", corpus_file, "--out", out, "--tokenizer", "char")
        assert r.returncode == 0, r.stderr
        real(work, job)

    monkeypatch.setattr(build, "write_folder", another_prepare_finishes_first)
    with pytest.raises(DataError, match="written by another prepare while this one ran"):
        build.prepare(out, dataset=str(corpus_file), tokenizer="word", progress=False)
    assert load_meta(out)["tokenizer"] == "char"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folder left behind


def test_the_fingerprint_follows_the_token_files(corpus_file, tmp_path):
    """The same text prepared the same way has the same fingerprint; another split, another."""
    a = prepare(tmp_path / "a", dataset=str(corpus_file), progress=False).meta["fingerprint"]
    b = prepare(tmp_path / "b", dataset=str(corpus_file), progress=False).meta["fingerprint"]
    c = prepare(tmp_path / "c", dataset=str(corpus_file), val_fraction=0.2, progress=False)
    assert a == b != c.meta["fingerprint"] and len(a) == 16
