"""Where text comes from: named data sets (downloaded once, checksummed, cached), files,
folders and glob patterns, opened decompressed (.bz2, .gz) and decoded as a stream.

Nothing here reads more than a block at a time: a source of any size streams through.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import glob
import gzip
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..fileio import atomic_write, cache_dir

READ = 1 << 20
"""Bytes read from a source at a time."""


@dataclass(frozen=True)
class Book:
    """A named book: where to get it, how to check it, where its text starts."""

    filename: str
    url: str
    sha256: str
    start: str | None  # a regex for the first line of the text proper (after front matter)


BOOKS = {
    "don-quixote": Book(
        filename="don_quixote.txt",
        url="https://raw.githubusercontent.com/GITenberg/Don-Quixote_996/master/996.txt",
        sha256="69ef241e632ef4fba882bde06ad31ecb395d865b11028cc046c4d253f4cf118e",
        start=r"VOLUME I\.\s+CHAPTER I\.",
    ),
}
SHELF = {
    84: "frankenstein",
    76: "adventures-of-huckleberry-finn",
    98: "a-tale-of-two-cities",
    120: "treasure-island",
    145: "middlemarch",
    158: "emma",
    161: "sense-and-sensibility",
    174: "the-picture-of-dorian-gray",
    345: "dracula",
    514: "little-women",
    730: "oliver-twist",
    766: "david-copperfield",
    768: "wuthering-heights",
    829: "gulliver-s-travels",
    1260: "jane-eyre",
    1400: "great-expectations",
    1661: "the-adventures-of-sherlock-holmes",
    2600: "war-and-peace",
    2701: "moby-dick--or-the-whale",
}
"""The ``shelf`` data set: nineteen public-domain English novels by their Project Gutenberg
ids (about 19 MB, 3.5 million words; Don Quixote is not among them), for pretraining a model
that is then fine-tuned on one book. Each is read from ``$WORDGPT_DATA_DIR/shelf/ID-NAME.txt``
when it is there, else from the cache, else downloaded from Project Gutenberg by its id."""
GUTENBERG_TEXT = "https://www.gutenberg.org/cache/epub/{id}/pg{id}.txt"
DATASETS = (*BOOKS, "shelf", "wikipedia-sample")


@dataclass(frozen=True)
class Source:
    """A resolved data set: a local file and what kind of file it is."""

    name: str
    path: Path
    kind: str  # "text" or "wikipedia"
    start: str | None = None


# ---------------------------------------------------------------------------- sources


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sample_dump_path() -> Path:
    """The shortened English Wikipedia dump that ships inside gensim's wheel."""
    import gensim

    return (
        Path(gensim.__file__).parent
        / "test"
        / "test_data"
        / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    )


def resolve_one(dataset: str) -> Source:
    """Find one data set's file: a named book (data dir, cache, download), the bundled
    Wikipedia sample, or a path (the shelf is many files: :func:`resolve`)."""
    if dataset in BOOKS:
        return Source(dataset, _fetch_book(BOOKS[dataset]), "text", BOOKS[dataset].start)
    if dataset == "wikipedia-sample":
        return Source(dataset, sample_dump_path(), "wikipedia")
    path = Path(dataset).expanduser()
    if not path.exists():
        raise DataError(
            f"no such data set or file: {dataset!r} (named data sets: {', '.join(DATASETS)})"
        )
    if path.is_dir():
        raise DataError(f"{dataset} is a folder; give a text file (or a folder as --dataset)")
    is_dump = ".xml" in path.suffixes or "pages-articles" in path.name
    return Source(path.name, path, "wikipedia" if is_dump else "text")


TEXT_SUFFIXES = (".txt", ".txt.gz", ".txt.bz2", ".xml", ".xml.bz2", ".bz2", ".gz")


def resolve(datasets: str | tuple[str, ...] | list[str]) -> list[Source]:
    """Every file of one or several data sets: names, paths, folders (their text and dump
    files, sorted) and glob patterns (their matches, sorted), in the order given."""
    found: list[Source] = []
    for d in [datasets] if isinstance(datasets, str) else datasets:
        path = Path(d).expanduser()
        if d == "shelf":
            found += [Source(f"{i}-{n}", shelf_book(i, n), "text") for i, n in SHELF.items()]
        elif d not in DATASETS and any(c in d for c in "*?[") and not path.exists():
            matches = [m for m in sorted(glob.glob(str(path))) if Path(m).is_file()]
            if not matches:
                raise DataError(f"no file matches {d!r} (folders are not read through a glob)")
            found += [resolve_one(m) for m in matches]
        elif d not in DATASETS and path.is_dir():
            files = sorted(p for p in path.iterdir() if p.name.endswith(TEXT_SUFFIXES))
            if not files:
                raise DataError(f"{path} has no .txt, .txt.gz, .txt.bz2 or dump files")
            found += [resolve_one(str(p)) for p in files]
        else:
            found.append(resolve_one(d))
    return found


def _fetch_book(book: Book) -> Path:
    candidates = []
    if env := os.environ.get("WORDGPT_DATA_DIR"):
        candidates.append(Path(env) / book.filename)
    candidates.append(cache_dir() / book.filename)
    for path in candidates:
        if path.is_file():
            if sha256_file(path) != book.sha256:
                raise DataError(
                    f"{path} does not match the expected sha256 {book.sha256[:12]}...; "
                    "delete it to download a fresh copy, or pass it as --dataset PATH"
                )
            return path
    return download(book.url, cache_dir() / book.filename, book.sha256)


def shelf_book(gutenberg_id: int, name: str) -> Path:
    """One book of the shelf: ``$WORDGPT_DATA_DIR/shelf/ID-NAME.txt``, or the cached copy
    (checked against the checksum taken when it was downloaded), or a download."""
    filename = f"{gutenberg_id}-{name}.txt"
    if (env := os.environ.get("WORDGPT_DATA_DIR")) and (Path(env) / "shelf" / filename).is_file():
        return Path(env) / "shelf" / filename
    cached = cache_dir() / "shelf" / filename
    stamp = cached.with_name(filename + ".sha256")
    if cached.is_file() and stamp.is_file():
        if sha256_file(cached) != stamp.read_text().strip():
            raise DataError(
                f"{cached} does not match the checksum taken when it was downloaded; delete it "
                "to download a fresh copy"
            )
        return cached
    url = GUTENBERG_TEXT.format(id=gutenberg_id)
    try:
        download(url, cached)
    except DataError as e:
        raise DataError(
            f"the shelf's {filename} is neither in $WORDGPT_DATA_DIR/shelf nor cached, and {e}"
        ) from None
    atomic_write(stamp, sha256_file(cached) + "\n")
    return cached


def download(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` with a progress bar; with ``sha256``, keep it only if the
    checksum matches."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                for chunk in iter(lambda: r.read(1 << 16), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url} ({getattr(e, 'reason', e)}); offline, use "
            "--dataset wikipedia-sample (bundled) or --dataset PATH to a local text file"
        ) from None
    got = sha256_file(tmp)
    if sha256 is not None and got != sha256:
        tmp.unlink(missing_ok=True)
        raise DataError(f"downloaded {url} has sha256 {got[:12]}..., expected {sha256[:12]}...")
    tmp.replace(dest)
    return dest


def open_file(path: Path, mode: str = "rb", **kw):
    """Open ``path``, decompressing it when its name ends in .bz2 or .gz."""
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    return opener(path, mode, **kw)


_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def sniff_encoding(head: bytes, encoding: str, name: str) -> str:
    """The codec to read a file with: its byte-order mark when it has one (a BOM is
    authoritative), else ``encoding``. NUL bytes without a BOM are refused, naming UTF-16
    when they fall on every other byte."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    enc = encoding.lower().replace("_", "-")
    if b"\x00" in head and not enc.startswith(("utf-16", "utf-32")):
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if max(odd, even) > 0.3 * len(head) / 2 and min(odd, even) < 0.05 * len(head) / 2:
            raise DataError(
                f"{name} looks like UTF-16 text without a byte-order mark; "
                f"try --encoding utf-16-{'le' if odd > even else 'be'}"
            )
        raise DataError(f"{name} looks like a binary file (it has NUL bytes), not text")
    return "utf-8-sig" if enc in ("utf-8", "utf8") else encoding


@dataclass
class Progress:
    """Bytes read so far out of a known total, for a progress bar (tqdm or nothing)."""

    total: int
    desc: str
    enabled: bool = True
    bar: object = None

    def __enter__(self):
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total,
                unit="B",
                unit_scale=True,
                desc=self.desc,
                disable=None,
                leave=False,
                dynamic_ncols=True,
            )
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


class _Counting:
    """A binary file that counts (and hashes) the raw bytes read through it."""

    def __init__(self, f, progress: Progress, digest):
        self.f, self.progress, self.digest = f, progress, digest

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        self.progress.update(len(b))
        self.digest.update(b)
        return b

    def readinto(self, buf) -> int:
        n = self.f.readinto(buf)
        self.progress.update(n)
        self.digest.update(memoryview(buf)[:n])
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)


@contextlib.contextmanager
def open_counted(path: Path, progress: Progress, digest):
    """``path`` opened for reading bytes, decompressed (.bz2, .gz), its raw bytes counted."""
    with contextlib.ExitStack() as stack:
        try:
            raw = stack.enter_context(open(path, "rb"))
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror or e}") from None
        counted = _Counting(raw, progress, digest)
        if path.suffix == ".bz2":
            yield stack.enter_context(bz2.BZ2File(counted))
        elif path.suffix == ".gz":
            yield stack.enter_context(gzip.GzipFile(fileobj=counted))
        else:
            yield counted


def decoded(f, encoding: str, name: str) -> Iterator[str]:
    """Text pieces of a binary stream: a byte-order mark picks the codec; NUL bytes, an
    empty file or bytes that do not decode are one clear error (with the byte offset)."""
    try:
        head = f.read(READ)
        while head and not head.strip() and (more := f.read(READ)):
            head += more  # only whitespace so far: an empty file, or text further on
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {name}: {e}") from None
    if not head.strip():
        raise DataError(f"{name} is empty")
    codec = sniff_encoding(head[:8192], encoding, name)
    dec = codecs.getincrementaldecoder(codec)(errors="strict")
    offset, raw = 0, head
    while raw:
        try:
            yield dec.decode(raw)
        except UnicodeDecodeError as e:
            at = offset + e.start
            raise DataError(
                f"{name} is not valid {codec.removesuffix('-sig')} (byte offset {at}: "
                f"{raw[e.start : e.start + 4]!r}); "
                "try --encoding latin-1"
            ) from None
        offset += len(raw)
        try:
            raw = f.read(READ)
        except (OSError, EOFError) as e:
            raise DataError(f"cannot read {name}: {e}") from None
    try:
        yield dec.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"{name} ends in the middle of a character") from None
