"""Streaming preparation: the streamed token files are byte-identical to the plain
in-memory path, whatever the chunk sizes and the number of workers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wordgpt
from tests.reference_corpus import reference_ids
from wordgpt.config import DataConfig
from wordgpt.corpus import cleaning, sources
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.corpus.build import prepare
from wordgpt.corpus.cleaning import clean
from wordgpt.corpus.sources import BOOKS, Progress
from wordgpt.errors import DataError
from wordgpt.runs import checkpoint
from wordgpt.training.train import train

from .conftest import book_path, needs_book
from .helpers import examples

PIECES = [
    "*** START OF THE PROJECT GUTENBERG EBOOK X ***",
    "*** END OF THIS PROJECT GUTENBERG EBOOK X ***",
    "End of the Project Gutenberg EBook of X",
    "end of project gutenberg",
    "VOLUME I. CHAPTER I.",
    "***",
    "End of",
    "\r\n",
    "\r",
    "\n",
    "\n\n",
    " ",
    "   ",
    "\t",
    "ΣΑΣ",
    "Σ",
    "İ",
    "word",
    "Knight",
    ".",
    ",",
    "é",
    "日本",
]
TEXTS = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(alphabet="abcXYZ .\n", max_size=8)), max_size=40
).map("".join)
CONFIGS = [
    DataConfig(),
    DataConfig(newlines_to_spaces=False, collapse_spaces=False, lowercase=False),
    DataConfig(strip_gutenberg=False, skip_front_matter=False),
]
START = BOOKS["don-quixote"].start
FAST = settings(max_examples=examples(80), deadline=None, suppress_health_check=list(HealthCheck))


def pieces_of(text: str, sizes: list[int]) -> list[str]:
    out, i = [], 0
    for n in sizes or [len(text) or 1]:
        out.append(text[i : i + n])
        i += n
    out.append(text[i:])
    return out


# ------------------------------------------------------------------ cleaning


def cleaned(pieces, cfg: DataConfig, start: str | None = None):
    """Raw pieces through the streaming cleaner, as prepare's first pass feeds it."""
    c = cleaning.TextCleaner(cfg, start)
    for p in pieces:
        if out := c.feed(p):
            yield out
    if out := c.finish():
        yield out
    if not c.produced:
        raise DataError("no text is left after cleaning")


@FAST
@given(
    text=TEXTS,
    sizes=st.lists(st.integers(1, 9), max_size=30),
    chunk=st.integers(1, 30),
    cfg=st.sampled_from(CONFIGS),
)
def test_the_cleaning_stream_equals_cleaning_the_whole_text(text, sizes, chunk, cfg):
    with mock.patch.object(cleaning, "HEAD", 40):  # small, so the look-ahead is exercised
        try:
            expect = cleaning.clean(text, cfg, START)
        except DataError:
            with pytest.raises(DataError):
                list(cleaned(pieces_of(text, sizes), cfg, START))
            return
        stream = cleaned(pieces_of(text, sizes), cfg, START)
        got = "".join(cleaning.chunks(stream, chunk, cfg.lowercase))
    assert got == expect


@FAST
@given(text=TEXTS, size=st.integers(1, 20))
def test_chunks_cut_only_where_every_tokenizer_cuts_too(text, size):
    parts = list(cleaning.chunks([text], size, lowercase=False))
    assert "".join(parts) == text
    for a, b in zip(parts, parts[1:], strict=False):
        assert b.startswith(" ") and not a[-1].isspace()
    for sp in (False, True):
        tok = tokenizers.train_tokenizer("word", text + " x", space_prefix=sp)
        assert [i for p in parts for i in tok.encode(p)] == tok.encode(text)


# ------------------------------------------------------------------ token files


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


WORDS = st.lists(
    st.sampled_from(["the", "knight", "Sancho", "ΣΑΣ", "İ", ".", ",", "  ", "\n", "é", "x1"]),
    min_size=30,
    max_size=120,
).map(" ".join)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    text=WORDS,
    chunk=st.integers(2, 40),
    read=st.integers(1, 13),
    kind=st.sampled_from(["word", "word-sp", "char", "bpe"]),
)
def test_streamed_token_files_are_byte_identical_to_the_in_memory_path(
    tmp_path_factory, text, chunk, read, kind
):
    tmp = tmp_path_factory.mktemp("s")
    (tmp / "t.txt").write_text(text, encoding="utf-8")
    cfg = DataConfig(
        dataset=str(tmp / "t.txt"),
        tokenizer="word" if kind.startswith("word") else kind,
        space_prefix=kind == "word-sp",
        vocab_size=300,
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


def test_the_article_split_is_deterministic_and_recorded(wiki_articles, tmp_path):
    cfg = DataConfig(dataset="wikipedia-sample")
    a = prepare(tmp_path / "a", cfg, workers=2, progress=False)
    b = prepare(tmp_path / "b", cfg, workers=1, progress=False)
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        assert (a.out / name).read_bytes() == (b.out / name).read_bytes(), name
    split = a.meta["split"]
    assert split["method"] == "articles" and split["every"] == 10
    n = len(wiki_articles)
    assert split["articles"] == {"val": n // 10, "train": n - n // 10}
    tok, train_ids, val_ids, _ = reference_ids(cfg, wiki_articles, kind="wikipedia")
    assert np.fromfile(a.out / "val.bin", a.meta["dtype"]).tolist() == val_ids
    assert np.fromfile(a.out / "train.bin", a.meta["dtype"]).tolist() == train_ids


def test_parallel_parsing_of_a_dump_gives_the_same_articles(wiki_articles):
    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import iter_articles

    assert list(iter_articles(sample_dump_path(), workers=2)) == wiki_articles


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


def test_eval_on_any_text_file_reports_bits_per_char(word_data, corpus_file, tmp_path):
    run = tmp_path / "run"
    train(
        word_data,
        run,
        preset="tiny",
        max_iters=20,
        progress=False,
        tensorboard=False,
        dtype="fp32",
        report=False,
    )
    m = wordgpt.load(run)
    r = m.evaluate_text(corpus_file)
    text = clean(corpus_file.read_text(encoding="utf-8"), DataConfig())
    assert r.chars == len(text) and r.tokens == len(m.tokenizer.encode(text)) - 1
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wordgpt.cli",
            "eval",
            str(run),
            "--text",
            str(corpus_file),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["bits_per_char"] == pytest.approx(r.bits_per_char)


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
    import bz2

    packed = tmp_path / "c.txt.bz2"
    packed.write_bytes(bz2.compress(corpus_file.read_bytes()))
    seen = []
    real = Progress.update
    with mock.patch.object(Progress, "update", lambda self, n: seen.append(n) or real(self, n)):
        prepare(tmp_path / "o", DataConfig(dataset=str(packed)), progress=False)
    assert sum(seen) == packed.stat().st_size  # compressed bytes: the total is known up front
