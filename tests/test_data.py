import bz2
import gzip
import hashlib
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from wordgpt.cli import main
from wordgpt.config import DataConfig
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.corpus.build import prepare
from wordgpt.corpus.cleaning import clean, split_text
from wordgpt.corpus.sources import BOOKS, resolve, resolve_one, sha256_file
from wordgpt.corpus.tokenfiles import load_meta, load_split, token_dtype
from wordgpt.errors import DataError, WordGPTError
from wordgpt.fileio import cache_dir
from wordgpt.training.batches import get_batch

from .conftest import SHORT_TEXT, book_path, needs_book
from .helpers import cli, one_line_error, snapshot

MARKUP = [
    r"'''",
    r"''",
    r"\[\[",
    r"\]\]",
    r"\{\{",
    r"\}\}",
    r"\{\|",
    r"\|\}",
    r"(?m)^=+.*=+\s*$",
    r"<ref",
    r"</ref",
    r"&nbsp;",
    r"\[http",
    r"(?i)\bthumb\|",
    r"(?m)^\s*(\||!)",
]


# ---------------------------------------------------------------- cleaning


def test_gutenberg_header_and_footer_are_cut_at_their_markers():
    raw = (
        "Title: X\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n\r\nThe tale.\r\n"
        "\r\nEnd of the Project Gutenberg EBook of X\r\n\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nLicence text\r\n"
    )
    cfg = DataConfig(newlines_to_spaces=False, lowercase=False)
    assert clean(raw, cfg) == "The tale.\n"
    assert "Licence" in clean(raw, replace(cfg, strip_gutenberg=False))


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


# ---------------------------------------------------------------- reading files


def _prep(tmp_path, path, **kw):
    return prepare(tmp_path / "out", DataConfig(dataset=str(path), **kw))


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz", ".txt.bz2"])
def test_plain_gz_and_bz2_files_read_the_same(tmp_path, suffix):
    raw = ("\ufeff" + SHORT_TEXT * 3).encode("utf-8")
    opener = {".txt": open, ".txt.gz": gzip.open, ".txt.bz2": bz2.open}[suffix]
    path = tmp_path / f"book{suffix}"
    with opener(path, "wb") as f:
        f.write(raw)
    p = _prep(tmp_path, path, min_count=1, space_prefix=False)  # decodes back exactly
    tok = p.tokenizer
    text = tok.decode(load_split(p.out, "train").tolist()) + tok.decode(
        load_split(p.out, "val").tolist()
    )
    assert text == clean(SHORT_TEXT * 3, DataConfig())  # BOM dropped


def test_other_encodings_with_encoding_flag(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(("Señor " * 50 + "café.\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"byte offset 2.*--encoding latin-1"):
        _prep(tmp_path, path)
    p = _prep(tmp_path, path, encoding="latin-1")
    assert " señor" in p.tokenizer.itos


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such data set or file"),
        (b"", "is empty"),
        (b"  \n\n ", "is empty"),
        (b"\x7fELF\x02\x01\x00\x00\x00\x00" * 50, "binary"),
        (b"caf\xe9 au lait " * 20, "not valid utf-8"),
    ],
    ids=["missing", "empty", "blank", "binary", "undecodable"],
)
def test_bad_files_get_one_line_and_exit_code_2(tmp_path, capsys, content, message):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as e:
        main(["prepare", "--dataset", str(path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_file_from_the_shell_prints_no_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "wordgpt.cli", "prepare", "--dataset", str(tmp_path / "nope.txt")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: no such data set or file") and "Traceback" not in r.stderr


# ---------------------------------------------------------------- named data sets


def test_offline_without_a_copy_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("WORDGPT_DATA_DIR", str(tmp_path / "empty"))
    book = replace(BOOKS["don-quixote"], url="http://127.0.0.1:9/996.txt")
    monkeypatch.setitem(BOOKS, "don-quixote", book)
    with pytest.raises(DataError, match=r"--dataset wikipedia-sample.*--dataset PATH"):
        resolve("don-quixote")


def test_download_is_verified_and_cached(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    body = (SHORT_TEXT * 10).encode()
    (served / "996.txt").write_bytes(body)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=served, **k)  # noqa: E731
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/996.txt"
        monkeypatch.setenv("WORDGPT_DATA_DIR", str(tmp_path / "empty"))
        good = replace(BOOKS["don-quixote"], url=url, sha256=hashlib.sha256(body).hexdigest())
        monkeypatch.setitem(BOOKS, "don-quixote", good)
        path = resolve_one("don-quixote").path
        assert path == cache_dir() / "don_quixote.txt" and path.read_bytes() == body
        assert resolve_one("don-quixote").path == path  # from the cache now
        path.unlink()
        monkeypatch.setitem(BOOKS, "don-quixote", replace(good, sha256="0" * 64))
        with pytest.raises(DataError, match="sha256"):
            resolve_one("don-quixote")
        assert not path.exists()
    finally:
        srv.shutdown()


def test_a_local_copy_that_fails_the_checksum_is_refused(tmp_path, monkeypatch):
    (tmp_path / "don_quixote.txt").write_text("not the book")
    monkeypatch.setenv("WORDGPT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="sha256"):
        resolve("don-quixote")


def test_wikipedia_sample_is_article_text_without_markup(wiki_articles):
    wiki_text = "\n\n".join(text for _, text in wiki_articles)
    assert len(wiki_text) > 1_000_000
    for pattern in MARKUP:
        hits = re.findall(pattern, wiki_text)
        assert not hits, (pattern, hits[:3])


def test_pages_are_cut_out_of_the_dump_as_gensim_reads_them():
    from gensim.corpora.wikicorpus import extract_pages

    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import iter_page_xml, parse_page

    with bz2.open(sample_dump_path()) as f:
        ours = [p for p in map(parse_page, iter_page_xml(f, block=4096)) if p]
    with bz2.open(sample_dump_path()) as f:
        theirs = [
            (t, w)
            for t, w, _ in extract_pages(f, filter_namespaces=("0",))
            if w and w.lstrip()[:9].lower() != "#redirect"
        ]
    assert ours == theirs and len(ours) > 100


def test_the_fast_extractor_keeps_the_words_the_full_parser_keeps(wiki_articles):
    """The regular-expression extractor against mwparserfromhell's parse on 15 articles: the
    same words (99.5 % of them either way). How much faster it is, is benchmarks/prepare.py's
    business (--extractors)."""
    from collections import Counter

    from tests.reference_corpus import article_text_parsed
    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import article_text, iter_page_xml, parse_page

    with bz2.open(sample_dump_path()) as f:
        pages = [p for p in map(parse_page, iter_page_xml(f)) if p][:15]
    fast = " ".join(article_text(w) for _, w in pages)
    full = " ".join(article_text_parsed(w) for _, w in pages)
    a, b = (Counter(re.findall(r"\w+", x.lower())) for x in (fast, full))
    common = sum((a & b).values())
    assert common / sum(a.values()) > 0.995 and common / sum(b.values()) > 0.995


def test_wikipedia_articles_are_streamed_and_redirects_dropped(wiki_articles):
    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import iter_articles

    title, text = next(iter_articles(sample_dump_path()))  # the first page, nothing more read
    assert title == "Anarchism" and text.startswith("Anarchism is a political philosophy")
    titles = [t for t, _ in wiki_articles]
    # 206 pages, 107 of them articles (one is left empty once its markup is gone)
    assert 100 <= len(titles) <= 107 and len(set(titles)) == len(titles)
    assert "AccessibleComputing" not in titles  # a redirect
    assert not any(text.lstrip().lower().startswith("#redirect") for _, text in wiki_articles)


# ---------------------------------------------------------------- token files


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


def test_get_batch_shapes_shift_and_seed(word_data):
    train = load_split(word_data, "train")
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(train, 4, 16, g)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    row = x[0].numpy()
    starts = [i for i in range(len(train) - 16) if np.array_equal(train[i : i + 16], row)]
    assert starts and train[starts[0] + 16] == y[0, -1]
    x2, _ = get_batch(train, 4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_a_split_shorter_than_a_block_is_a_clear_error():
    with pytest.raises(WordGPTError, match="too short"):
        get_batch(np.zeros(10, dtype=np.uint16), 2, 16, torch.Generator())


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


def test_the_shelf_is_nineteen_novels_read_from_the_data_dir_when_there():
    if book_path() is None or not (book_path().parent / "shelf").is_dir():
        pytest.skip("set WORDGPT_DATA_DIR to a folder with shelf/")
    srcs = resolve("shelf")
    assert [s.name for s in srcs][:3] == ["84-frankenstein", "76-adventures-of-huckleberry-finn",
                                          "98-a-tale-of-two-cities"]  # fmt: skip
    assert len(srcs) == 19 and all(s.path.parent == book_path().parent / "shelf" for s in srcs)


def test_the_shelf_is_downloaded_once_cached_and_checked(tmp_path, monkeypatch):
    """Without the data dir each book is downloaded from Project Gutenberg by its id, once;
    a cached copy that changed since is refused; offline it is one line that says where the
    files may be put instead."""
    from wordgpt.corpus import sources

    monkeypatch.setenv("WORDGPT_DATA_DIR", str(tmp_path / "nothing"))
    urls = []

    def fake_download(url, dest, sha256=None):
        urls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(f"*** START OF THE PROJECT GUTENBERG EBOOK ***\n{url}\n")
        return dest

    monkeypatch.setattr(sources, "download", fake_download)
    first = resolve("shelf")
    assert urls[0] == "https://www.gutenberg.org/cache/epub/84/pg84.txt" and len(urls) == 19
    assert [s.path for s in resolve("shelf")] == [s.path for s in first] and len(urls) == 19
    first[1].path.write_text("changed")
    with pytest.raises(DataError, match="does not match the checksum taken when it was"):
        resolve("shelf")
    monkeypatch.undo()
    monkeypatch.setenv("WORDGPT_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("WORDGPT_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(sources, "GUTENBERG_TEXT", "http://127.0.0.1:9/{id}.txt")
    with pytest.raises(DataError, match=r"84-frankenstein.txt is neither in \$WORDGPT_DATA_DIR"):
        resolve("shelf")


def test_wikipedia_sample_prepares(tmp_path):
    p = prepare(tmp_path, DataConfig(dataset="wikipedia-sample", tokenizer="char"))
    assert p.meta["source"]["kind"] == "wikipedia"
    assert p.meta["splits"]["train"]["tokens"] > 1_000_000


def test_paths_resolve_by_kind_folders_and_globs(tmp_path):
    dump = tmp_path / "enwiki-pages-articles1.xml.bz2"
    dump.write_bytes(b"")
    assert resolve_one(str(dump)).kind == "wikipedia"
    txt = tmp_path / "a.txt"
    txt.write_text("x")
    assert resolve_one(str(txt)).kind == "text"
    (tmp_path / "b.txt.gz").write_bytes(b"")
    (tmp_path / "notes.md").write_text("not text to train on")
    folder = [s.path.name for s in resolve(str(tmp_path))]
    assert folder == ["a.txt", "b.txt.gz", dump.name]  # sorted; other files left out
    assert [s.path.name for s in resolve(str(tmp_path / "*.txt*"))] == ["a.txt", "b.txt.gz"]
    assert [s.name for s in resolve(("wikipedia-sample", str(txt)))] == [
        "wikipedia-sample",
        "a.txt",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="has no .txt"):
        resolve(str(empty))
    with pytest.raises(DataError, match="no file matches"):
        resolve(str(tmp_path / "*.nothing"))
    assert isinstance(resolve_one("wikipedia-sample").path, Path)


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


def test_utf16_text_is_read_by_its_byte_order_mark(tmp_path):
    text = "En un lugar de la Mancha, de cuyo nombre no quiero acordarme. " * 40
    (tmp_path / "bom.txt").write_bytes(text.encode("utf-16"))
    r = cli(
        "prepare", "--dataset", tmp_path / "bom.txt", "--tokenizer", "char", "--out", tmp_path / "d"
    )
    assert r.returncode == 0, r.stderr
    (tmp_path / "nobom.txt").write_bytes(text.encode("utf-16-le"))
    err = one_line_error(
        cli("prepare", "--dataset", tmp_path / "nobom.txt", "--out", tmp_path / "e")
    )
    assert "utf-16" in err.lower() and "binary" not in err


def test_a_text_without_whitespace_splits(tmp_path):
    (tmp_path / "a.txt").write_text("abcdefghij" * 30_000)  # 300 KB, not one space
    r = cli(
        "prepare", "--dataset", tmp_path / "a.txt", "--tokenizer", "char", "--out", tmp_path / "d"
    )
    assert r.returncode == 0, r.stderr
    assert "too short" not in r.stderr
