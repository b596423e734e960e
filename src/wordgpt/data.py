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
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import tokenizers
from .config import DataConfig, to_dict
from .errors import DataError
from .fileio import cache_dir


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


def resolve(dataset: str) -> Source:
    """Find a data set's file: a named book (data dir, cache, download), the bundled
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
    if path.is_dir():
        raise DataError(f"{path} is a folder; give a .txt, .txt.bz2, .txt.gz or dump file")
    is_dump = ".xml" in path.suffixes or "pages-articles" in path.name
    return Source(path.name, path, "wikipedia" if is_dump else "text")


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


def read_source(src: Source, cfg: DataConfig) -> str:
    if src.kind == "wikipedia":
        from .wikipedia import read_dump

        try:
            text = read_dump(src.path)
        except Exception as e:  # a truncated or foreign XML file
            raise DataError(f"cannot read {src.path} as a MediaWiki dump: {e}") from None
        if not text.strip():
            raise DataError(f"{src.path} has no articles")
        return text
    return decode_text(read_bytes(src.path), cfg.encoding, str(src.path))


# ---------------------------------------------------------------------------- cleaning

_GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_GUTENBERG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
# Older files also close the text with this line just before the *** END marker.
_GUTENBERG_END_LINE = re.compile(r"^End of (the )?Project Gutenberg.*\s*\Z", re.M | re.I)


def strip_gutenberg(text: str) -> str:
    """The text between a Gutenberg ``*** START OF`` line and its ``*** END OF`` line."""
    if m := _GUTENBERG_START.search(text):
        text = text[m.end() :]
    if m := _GUTENBERG_END.search(text):
        text = text[: m.start()]
        if m := _GUTENBERG_END_LINE.search(text):
            text = text[: m.start()]
    return text


def clean(text: str, cfg: DataConfig, start: str | None = None) -> str:
    """Normalise line ends, cut Gutenberg matter and front matter, then the notebook's
    cleaning (newlines to spaces, runs of spaces collapsed, lowercase), each switchable."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cfg.strip_gutenberg:
        text = strip_gutenberg(text)
    if cfg.skip_front_matter and start and (m := re.search(start, text)):
        text = text[m.start() :]
    text = text.strip("\n") + "\n"
    if cfg.newlines_to_spaces:
        text = text.replace("\n", " ")
    if cfg.collapse_spaces:
        text = re.sub(r" {2,}", " ", text)
    if cfg.lowercase:
        text = text.lower()
    if not text.strip():
        raise DataError("no text is left after cleaning")
    return text


MAX_WORD = 10_000
"""The split point moves at most this far to reach whitespace (a longer run without any is
cut where it is)."""


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Contiguous split: the last ``val_fraction`` of the text is validation. The cut moves
    forward to the next whitespace (within MAX_WORD characters) so no word is cut in two."""
    cut = int(len(text) * (1 - val_fraction))
    m = re.compile(r"\s").search(text, cut, cut + MAX_WORD)
    cut = m.start() if m else cut
    return text[:cut], text[cut:]


# ---------------------------------------------------------------------------- token files


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def prepare(cfg: DataConfig, out: str | Path) -> Prepared:
    """Read, clean, split and tokenize a data set; write the token files into ``out``."""
    out = Path(out)
    src = resolve(cfg.dataset)
    text = clean(read_source(src, cfg), cfg, src.start)
    train_text, val_text = split_text(text, cfg.val_fraction)
    if not val_text.strip() or not train_text.strip():
        raise DataError("the text is too short to split into train and validation")
    # A closed vocabulary covers the whole text, so validation has no <unk> that would
    # make its loss look better than it is; byte-level BPE is open and learns from train only.
    tok = tokenizers.train_tokenizer(
        cfg.tokenizer,
        train_text if cfg.tokenizer == "bpe" else text,
        space_prefix=cfg.space_prefix,
        vocab_size=cfg.vocab_size,
        min_count=cfg.min_count,
        max_vocab=cfg.max_vocab,
    )
    dtype = token_dtype(tok.vocab_size)
    out.mkdir(parents=True, exist_ok=True)
    splits = {}
    for name, part in (("train", train_text), ("val", val_text)):
        ids = np.asarray(tok.encode(part), dtype=dtype)
        ids.tofile(out / f"{name}.bin")
        splits[name] = {
            "chars": len(part),
            "tokens": int(ids.size),
            "unk": int((ids == 0).sum()) if tok.kind != "bpe" else 0,
        }
    tokenizers.save(tok, out / "tokenizer.json")
    meta = {
        "source": {
            "dataset": cfg.dataset,
            "path": str(src.path.resolve()),
            "kind": src.kind,
            "sha256": sha256_file(src.path),
        },
        "config": to_dict(cfg),
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
        "dtype": dtype.name,
        "unique_chars": len(set(text)),
        "splits": splits,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return Prepared(out, meta, tok)


def summary(p: Prepared, n_tokens: int = 20) -> str:
    """The lines ``wordgpt prepare`` prints."""
    m = p.meta
    tr, va = m["splits"]["train"], m["splits"]["val"]
    head = load_split(p.out, "train")[:n_tokens].tolist()
    first = p.tokenizer.decode(head)
    pieces = [p.tokenizer.decode([i]) for i in head]
    return "\n".join(
        [
            f"source        {m['source']['dataset']} ({m['source']['path']})",
            f"unique chars  {m['unique_chars']}",
            f"tokenizer     {m['tokenizer']}, vocabulary {m['vocab_size']:,} ({m['dtype']})",
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
    return np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")


def get_rows(
    data: np.ndarray, offsets: np.ndarray, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of shape ``(len(offsets), block_size)``: the tokens at each offset and the
    ones after them. One vectorised gather, no Python loop per sequence or token."""
    rows = data[offsets[:, None] + np.arange(block_size + 1)].astype(np.int64)  # (B, T+1)
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


def get_batch(
    data: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of shape ``(batch_size, block_size)`` from random offsets, y shifted by one."""
    n = len(data) - block_size - 1
    if n < 1:
        raise DataError(f"a split of {len(data)} tokens is too short for block_size {block_size}")
    return get_rows(data, torch.randint(n, (batch_size,), generator=generator).numpy(), block_size)
