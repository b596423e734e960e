"""Shared fixtures: the real book (through $WORDGPT_DATA_DIR), small texts, prepared data."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from hypothesis import settings

from wordgpt.config import DataConfig
from wordgpt.corpus.build import prepare

os.environ.setdefault("MPLBACKEND", "Agg")

# One torch thread per test: the suite runs one worker per core (pytest-xdist), tiny models
# gain nothing from a second thread, and two workers with two threads each would wait on each
# other's cores (beside one busy process, two threads train 1.6x slower than one). The
# processes a test starts (the wordgpt command, torchrun) inherit it. A test that needs more
# says so: @pytest.mark.threads(n).
os.environ["OMP_NUM_THREADS"] = "1"

# Hypothesis: `make test` (what CI runs) draws the same examples every time, so whether a
# change lands never depends on chance; `make fuzz` explores at random, ten times as many.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHORT_TEXT = (
    "In a village of La Mancha, the name of which I have no desire to call to mind, "
    "there lived not long since one of those gentlemen that keep a lance in the lance-rack, "
    "an old buckler, a lean hack, and a greyhound for coursing. An olla of rather more beef "
    "than mutton, a salad on most nights, scraps on Saturdays, lentils on Fridays, and a "
    "pigeon or so extra on Sundays, made away with three-quarters of his income.\n"
)


def book_path() -> Path | None:
    d = os.environ.get("WORDGPT_DATA_DIR")
    p = Path(d) / "don_quixote.txt" if d else None
    return p if p and p.is_file() else None


needs_book = pytest.mark.skipif(
    book_path() is None, reason="set WORDGPT_DATA_DIR to a folder with don_quixote.txt"
)


@pytest.fixture(autouse=True)
def _threads(request):
    """torch's threads for this test: one, or what its ``threads`` mark asks for."""
    import torch

    mark = request.node.get_closest_marker("threads")
    was = torch.get_num_threads()
    torch.set_num_threads(mark.args[0] if mark else 1)
    yield
    torch.set_num_threads(was)


@pytest.fixture(autouse=True)
def _lines_as_a_user_sees_them():
    """wordgpt's log lines on stdout and stderr, as a user without logging set up sees them
    (pytest's own log capture would otherwise take them): tests read them with capsys."""
    import logging

    from wordgpt.logs import Console, log

    handler, was = Console(), (log.propagate, log.level)
    log.addHandler(handler)
    log.propagate, log.level = False, logging.INFO
    yield
    log.removeHandler(handler)
    log.propagate, log.level = was


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache, never download: an empty cache per test."""
    monkeypatch.setenv("WORDGPT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    """About 40 KB of real English prose: the start of the book where we have it."""
    p = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    if (bp := book_path()) is not None:
        text = bp.read_text(encoding="utf-8")
        start = text.index("CHAPTER I.")
        p.write_text(text[start : start + 40_000], encoding="utf-8")
    else:
        p.write_text(SHORT_TEXT * 90, encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def word_data(corpus_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("word_data")
    # words and the spaces between them as tokens of their own (the tests' figures were set
    # on them; the default, space-prefixed words, has tests of its own)
    prepare(out, DataConfig(dataset=str(corpus_file), tokenizer="word", space_prefix=False))
    return out


@pytest.fixture(scope="session")
def wiki_articles() -> list[tuple[str, str]]:
    """(title, text) of every article of the Wikipedia sample (parsed once: ~13 s)."""
    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import iter_articles

    return list(iter_articles(sample_dump_path()))


@pytest.fixture(scope="session")
def run(word_data, tmp_path_factory) -> Path:
    """A tiny run (20 steps) on word_data, trained once: tests that change it copy it."""
    from wordgpt.use.train_run import train

    out = tmp_path_factory.mktemp("tiny-run") / "s1"
    train(
        word_data,
        out,
        preset="tiny",
        max_iters=20,
        eval_interval=10,
        progress=False,
        tensorboard=False,
        dtype="fp32",
        report=False,
    )
    return out


@pytest.fixture(scope="session")
def trained_once(word_data, tmp_path_factory) -> Path:
    """A run of 40 steps (val loss falling), evaluated every 10, trained once."""
    from wordgpt.use.train_run import train

    from .helpers import FAST

    run = tmp_path_factory.mktemp("trained") / "run"
    train(word_data, run, preset="tiny", max_iters=40, eval_interval=10, **FAST)
    return run


@pytest.fixture
def trained(trained_once, tmp_path) -> Path:
    """A copy of that run of 40 steps, for a test to change."""
    import shutil

    return Path(shutil.copytree(trained_once, tmp_path / "run"))


@pytest.fixture(scope="module")
def vectors(word_data, tmp_path_factory) -> Path:
    """Word2Vec vectors (24 wide) of word_data's tokens, in wordgpt's own format (no pickle)."""
    from wordgpt.config import Word2VecConfig
    from wordgpt.vectors.files import save_vectors
    from wordgpt.vectors.word2vec import train_word2vec

    cfg = Word2VecConfig(vector_size=24, epochs=2, min_count=1, workers=1, split="all")
    path = tmp_path_factory.mktemp("vec") / "w2v.npz"
    save_vectors(train_word2vec(word_data, cfg), path)
    return path


@pytest.fixture(scope="module")
def runs_dir(word_data, tmp_path_factory) -> Path:
    """A runs folder for ``wordgpt serve``: two tiny runs and two things that are no run
    (:func:`serving.make_runs`)."""
    from .serving import make_runs

    return make_runs(word_data, tmp_path_factory.mktemp("runs"))


@pytest.fixture
def server(runs_dir):
    """``server(**ServeConfig settings)`` serves ``runs_dir`` on a free port, returns its URL;
    every server started is stopped after the test."""
    from .serving import start_server

    servers: list = []
    yield lambda **kw: start_server(runs_dir, servers, **kw)
    for srv, t in servers:
        srv.should_exit = True
        t.join(10)


class Evil:
    """A pickle that, when loaded, creates a file: proof that loading ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def evil_kv(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.kv"
    path.write_bytes(pickle.dumps(Evil(marker)))
    return path, marker
