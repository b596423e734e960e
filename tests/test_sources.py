"""Where text comes from: plain, gzip and bzip2 files in any encoding, named data sets
downloaded once with their checksum and cached (the shelf of novels too), paths by kind,
folder and glob; a bad file is one line."""

import bz2
import gzip
import hashlib
import http.server
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from wordgpt.cli import main
from wordgpt.config import DataConfig
from wordgpt.corpus.build import prepare
from wordgpt.corpus.cleaning import clean
from wordgpt.corpus.sources import BOOKS, resolve, resolve_one
from wordgpt.corpus.tokenfiles import load_split
from wordgpt.errors import DataError
from wordgpt.fileio import cache_dir

from .conftest import SHORT_TEXT, book_path
from .helpers import cli, one_line_error


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
        (b"caf\xe9 au lait " * 20, "not valid utf-8 (byte"),  # the encoding the docs say
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
