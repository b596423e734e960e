"""Cleaning text as the original notebook does: Project Gutenberg's header and footer cut at
their markers, a named book from its first chapter, each step a switch, the split
contiguous; and the cleaning stream, chunk by chunk, equal to cleaning the whole text."""

from __future__ import annotations

from dataclasses import replace
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference_corpus import train_tokenizer
from wordgpt.config import DataConfig
from wordgpt.corpus import cleaning
from wordgpt.corpus.cleaning import clean, split_text
from wordgpt.corpus.sources import BOOKS
from wordgpt.errors import DataError

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


def test_gutenberg_header_and_footer_are_cut_at_their_markers():
    raw = (
        "Title: X\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n\r\nThe tale.\r\n"
        "\r\nEnd of the Project Gutenberg EBook of X\r\n\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nLicence text\r\n"
    )
    cfg = DataConfig(newlines_to_spaces=False, lowercase=False)
    assert clean(raw, cfg) == "The tale.\n"
    assert "Licence" in clean(raw, replace(cfg, strip_gutenberg=False))


def test_a_file_of_several_books_keeps_every_books_text():
    """Gutenberg files joined into one (``cat shelf/*.txt > all.txt``): each book's text, not
    the first book's alone; what stands between an END line and the next START line goes."""

    def book(t: str) -> str:
        start, end = (f"*** {w} OF THE PROJECT GUTENBERG EBOOK {t} ***" for w in ("START", "END"))
        return f"Header of {t}\n{start}\nThe tale of {t}.\n{end}\nLicence of {t}.\n"

    cfg = DataConfig(newlines_to_spaces=False, lowercase=False)
    want = "The tale of A.\nThe tale of B.\nThe tale of C.\n"
    assert clean(book("A") + book("B") + book("C"), cfg) == want


@needs_book
def test_the_shelf_in_one_file_keeps_every_novel():
    """The nineteen novels in one file clean to as much text as each cleaned alone (later
    books keep their few lines of credits)."""
    shelf = book_path().parent / "shelf"
    if not shelf.is_dir():
        pytest.skip("set WORDGPT_DATA_DIR to a folder with shelf/")
    texts = [f.read_text(encoding="utf-8-sig") for f in sorted(shelf.glob("*.txt"))]
    cfg = DataConfig()
    alone = sum(len(clean(t, cfg)) for t in texts)
    joined = len(clean("\n".join(texts), cfg))
    assert 0.999 * alone < joined < 1.001 * alone


@pytest.mark.parametrize("piece", [7, 64, 10**6])
def test_any_gutenberg_book_loses_the_credits_after_its_start_line(piece):
    """ "Produced by ..." after the start line is the file's, not the book's: cut, in the
    reference and in the stream alike (fed in pieces of any size), unless front matter is
    kept; a book's own first paragraph stays."""
    from wordgpt.corpus.cleaning import TextCleaner

    raw = (
        "*** START OF THE PROJECT GUTENBERG EBOOK DRACULA ***\r\n\r\n\r\nProduced by Chuck "
        "Greif and the Online Distributed\r\nProofreading Team (This file was\r\nproduced "
        "from images)\r\n\r\n\r\nDRACULA\r\n\r\nby Bram Stoker.\r\n"
    )
    cfg = DataConfig(newlines_to_spaces=False, lowercase=False)
    assert clean(raw, cfg) == "DRACULA\n\nby Bram Stoker.\n"
    stream = TextCleaner(cfg)
    out = "".join(stream.feed(raw[i : i + piece]) for i in range(0, len(raw), piece))
    assert out + stream.finish() == clean(raw, cfg)
    assert clean(raw, replace(cfg, skip_front_matter=False)).startswith("Produced by")
    plain = "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\nProducers met.\nThe end.\n"
    assert clean(plain, cfg) == "Producers met.\nThe end.\n"  # a word like it is no credit


def test_notebook_cleaning_is_the_default_and_each_step_switches():
    raw = "The  Knight\r\nRode   on.\n"
    assert clean(raw, DataConfig()) == "the knight rode on. "
    assert clean(raw, DataConfig(lowercase=False)) == "The Knight Rode on. "
    assert clean(raw, DataConfig(newlines_to_spaces=False)) == "the knight\nrode on.\n"
    assert clean(raw, DataConfig(collapse_spaces=False)) == "the  knight rode   on. "


@needs_book
def test_don_quixote_starts_at_the_first_chapter_and_ends_before_the_licence():
    raw = book_path().read_text(encoding="utf-8")
    text = clean(raw, DataConfig(), BOOKS["don-quixote"].start)
    assert text.startswith("volume i. chapter i. which treats of the character")
    assert "project gutenberg" not in text
    assert "*** end of" not in text
    assert text.rstrip().endswith('doomed to fall for ever. farewell."')  # the book's end
    # the notebook's fixed offset lands on the same first chapter
    nb = raw.replace("\r\n", "\n").replace("\n", " ").replace("  ", " ")[121506:].lower()
    assert nb.startswith("volume i.")
    # switched off, the front matter (the translator's preface) is kept
    full = clean(raw, DataConfig(skip_front_matter=False), BOOKS["don-quixote"].start)
    assert full.index("volume i. chapter i.") > 100_000
    assert "project gutenberg" not in full[:1000]


def test_split_is_contiguous_and_does_not_cut_a_word():
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    train, val = split_text(text, 0.25)
    assert train + val == text
    assert val[0] == " " and not train.endswith(" ")
    assert 0.15 < len(val) / len(text) < 0.35


def pieces_of(text: str, sizes: list[int]) -> list[str]:
    out, i = [], 0
    for n in sizes or [len(text) or 1]:
        out.append(text[i : i + n])
        i += n
    out.append(text[i:])
    return out


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
        tok = train_tokenizer("word", text + " x", space_prefix=sp)
        assert [i for p in parts for i in tok.encode(p)] == tok.encode(text)
