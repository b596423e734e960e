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
    from wordgpt.training.train import train

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
