"""Data sets, cleaning, train/val splits, token files and batch sampling.

``prepare()`` turns a data set (a name or a path) into a folder of token files::

    train.bin, val.bin   flat token ids (uint16 when the vocabulary fits, else uint32)
    tokenizer.json       the tokenizer, ids included
    meta.json            source, its sha256, cleaning options, counts per split, dtype
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import tokenizers
from .config import DataConfig
from .errors import DataError
from .fileio import atomic_write, cache_dir, disk_error, remove_stale_temps, temp_name


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
DATASETS = (*BOOKS, "wikipedia-sample")


@dataclass(frozen=True)
class Source:
    """A resolved data set: a local file and what kind of file it is."""

    name: str
    path: Path
    kind: str  # "text" or "wikipedia"
    start: str | None = None


@dataclass(frozen=True)
class Prepared:
    """What ``prepare()`` wrote, with the counts it printed."""

    out: Path
    meta: dict
    tokenizer: tokenizers.Tokenizer


# ---------------------------------------------------------------------------- sources


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_one(dataset: str) -> Source:
    """Find one data set's file: a named book (data dir, cache, download), the bundled
    Wikipedia sample, or a path."""
    if dataset in BOOKS:
        return Source(dataset, _fetch_book(BOOKS[dataset]), "text", BOOKS[dataset].start)
    if dataset == "wikipedia-sample":
        from .wikipedia import sample_dump_path

        return Source(dataset, sample_dump_path(), "wikipedia")
    path = Path(dataset).expanduser()
    if not path.exists():
        raise DataError(
            f"no such data set or file: {dataset!r} (named data sets: {', '.join(DATASETS)})"
        )
    is_dump = ".xml" in path.suffixes or "pages-articles" in path.name
    return Source(path.name, path, "wikipedia" if is_dump else "text")


TEXT_SUFFIXES = (".txt", ".txt.gz", ".txt.bz2", ".xml", ".xml.bz2", ".bz2", ".gz")


def resolve(datasets: str | tuple[str, ...] | list[str]) -> list[Source]:
    """Every file of one or several data sets: names, paths, folders (their text and dump
    files, sorted) and glob patterns (their matches, sorted), in the order given."""
    import glob

    found: list[Source] = []
    for d in [datasets] if isinstance(datasets, str) else datasets:
        path = Path(d).expanduser()
        if d not in DATASETS and any(c in d for c in "*?[") and not path.exists():
            matches = sorted(glob.glob(str(path)))
            if not matches:
                raise DataError(f"no file matches {d!r}")
            found += [resolve_one(m) for m in matches if Path(m).is_file()]
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


def download(url: str, dest: Path, sha256: str) -> Path:
    """Download ``url`` to ``dest`` with a progress bar; keep it only if the checksum matches."""
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
    if got != sha256:
        tmp.unlink(missing_ok=True)
        raise DataError(f"downloaded {url} has sha256 {got[:12]}..., expected {sha256[:12]}...")
    tmp.replace(dest)
    return dest


# ---------------------------------------------------------------------------- reading


def open_file(path: Path, mode: str = "rb", **kw):
    """Open ``path``, decompressing it when its name ends in .bz2 or .gz."""
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    return opener(path, mode, **kw)


def read_bytes(path: Path) -> bytes:
    """A file's bytes, decompressed when it ends in .bz2 or .gz."""
    try:
        with open_file(path) as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None


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


def decode_text(raw: bytes, encoding: str, name: str) -> str:
    """Bytes to text (a byte-order mark picks the codec and is dropped); binary or
    undecodable input is refused with the byte offset and a suggestion."""
    if not raw.strip():
        raise DataError(f"{name} is empty")
    enc = sniff_encoding(raw[:8192], encoding, name)
    try:
        return raw.decode(enc)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as e:
        raise DataError(
            f"{name} is not valid {enc} (byte offset {e.start}: "
            f"{raw[e.start : e.start + 4]!r}); try --encoding latin-1"
        ) from None


# the cleaning lives in its own module; these names stay importable from here
from .cleaning import clean, split_text, strip_gutenberg  # noqa: E402, F401


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def prepare(
    cfg: DataConfig,
    out: str | Path,
    workers: int = 0,
    tokenizer_from: str | Path | tokenizers.Tokenizer | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    holdout: bool = True,
) -> Prepared:
    """Read, clean, split and tokenize a data set into ``out``, streamed (see
    :mod:`wordgpt.corpus`): train.bin, val.bin, tokenizer.json, then meta.json.

    ``workers`` processes tokenize (0: every available core); ``tokenizer_from`` encodes
    with the tokenizer of an existing data folder or run (its vocabulary; unknown words
    count as <unk>). Until the end everything is written under temporary names: an
    interrupted run leaves no meta.json, and an earlier complete folder is replaced only
    when the new one is whole."""
    from . import corpus

    out = Path(out)
    srcs = resolve(cfg.dataset)
    tok_from = tokenizer_from
    if isinstance(tokenizer_from, str | Path):
        tok_from = load_tokenizer_from(tokenizer_from)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_error(e, out) from None
    remove_stale_temps(out)
    kw = {"chunk_size": chunk_size} if chunk_size else {}
    kw["holdout"] = holdout
    try:
        job = corpus.prepare_corpus(cfg, out, srcs, workers, tok_from, progress, **kw)
        meta = job["meta"]
        if isinstance(tokenizer_from, str | Path):
            meta["tokenizer_from"] = str(Path(tokenizer_from).resolve())
        tok_tmp = temp_name(out / "tokenizer.json")
        tok_tmp.write_text(json.dumps(job["tokenizer"].to_dict(), ensure_ascii=False), "utf-8")
        (out / "meta.json").unlink(missing_ok=True)  # the folder is incomplete from here on
        for split, tmp in job["files"].items():
            os.replace(tmp, out / f"{split}.bin")
        os.replace(tok_tmp, out / "tokenizer.json")
        atomic_write(out / "meta.json", json.dumps(meta, indent=2, ensure_ascii=False))
    except OSError as e:
        raise disk_error(e, out) from None
    finally:
        remove_stale_temps(out)
    return Prepared(out, meta, job["tokenizer"])


def load_tokenizer_from(path: str | Path) -> tokenizers.Tokenizer:
    """The tokenizer of a data folder or a run folder (or a tokenizer.json file)."""
    path = Path(path)
    file = path if path.is_file() else path / "tokenizer.json"
    if not file.is_file():
        raise DataError(f"no tokenizer.json in {path}; give a prepared data folder or a run")
    return tokenizers.load(file)


def summary(p: Prepared, n_tokens: int = 20) -> str:
    """The lines ``wordgpt prepare`` prints."""
    m = p.meta
    tr, va = m["splits"]["train"], m["splits"]["val"]
    head = load_split(p.out, "train")[:n_tokens].tolist()
    first = p.tokenizer.decode(head)
    pieces = [p.tokenizer.decode([i]) for i in head]
    srcs = m.get("sources") or [m["source"]]
    where = (
        f"{srcs[0]['dataset']} ({srcs[0]['path']})"
        if len(srcs) == 1
        else f"{len(srcs)} files ({srcs[0]['path']}, ...)"
    )
    split = m.get("split", {})
    how = (
        f"every {split['every']}th article to val ({split['articles']['val']:,} of "
        f"{split['articles']['val'] + split['articles']['train']:,})"
        if split.get("method") == "articles"
        else f"the last {split.get('val_fraction', 0.1):.0%} of each file to val"
    )
    unk = (
        f", <unk> {tr.get('unk_share', 0):.2%} / {va.get('unk_share', 0):.2%}"
        if tr.get("unk")
        else ""
    )
    return "\n".join(
        [
            f"source        {where}",
            f"split         {how}",
            f"unique chars  {m['unique_chars']}",
            f"tokenizer     {m['tokenizer']}, vocabulary {m['vocab_size']:,} ({m['dtype']}){unk}",
            f"train         {tr['tokens']:,} tokens, {tr['chars']:,} chars "
            f"({tr['chars'] / max(tr['tokens'], 1):.2f} chars/token)",
            f"val           {va['tokens']:,} tokens, {va['chars']:,} chars",
            f"first tokens  {pieces}",
            f"first text    {first!r}",
            f"wrote         {p.out}/{{train.bin,val.bin,tokenizer.json,meta.json}}",
        ]
    )


def load_meta(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "meta.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{data_dir} has no meta.json; run `wordgpt prepare --out {data_dir}` first"
        ) from None


def load_split(data_dir: str | Path, split: str) -> np.memmap:
    """A split's token ids, memory-mapped (nothing is read until used)."""
    meta = load_meta(data_dir)
    path = Path(data_dir) / f"{split}.bin"
    if not path.is_file():
        raise DataError(f"no {split}.bin in {data_dir}; run `wordgpt prepare` again")
    if path.stat().st_size == 0:  # a file prepared for evaluation only has no train split
        return np.zeros(0, dtype=np.dtype(meta["dtype"]))
    return np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")


def get_rows(data: np.ndarray, offsets: np.ndarray, block_size: int):
    """``(x, y)`` of shape ``(len(offsets), block_size)``: the tokens at each offset and the
    ones after them. One vectorised gather, no Python loop per sequence or token."""
    import torch

    rows = data[offsets[:, None] + np.arange(block_size + 1)].astype(np.int64)  # (B, T+1)
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


def get_batch(data: np.ndarray, batch_size: int, block_size: int, generator):
    """``(x, y)`` of shape ``(batch_size, block_size)`` from random offsets, y shifted by one."""
    import torch

    n = len(data) - block_size - 1
    if n < 1:
        raise DataError(f"a split of {len(data)} tokens is too short for block_size {block_size}")
    return get_rows(data, torch.randint(n, (batch_size,), generator=generator).numpy(), block_size)
