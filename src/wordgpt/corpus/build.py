"""``prepare``: text in, a data folder out. Both passes (:mod:`.clean_pass`, then
:mod:`.token_pass`), then the files renamed into place, ``meta.json`` last, so that an
interrupted run never leaves a folder that looks complete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import DataConfig
from ..errors import DataError
from ..fileio import atomic_write, disk_error, remove_stale_temps, temp_name
from ..folders import expect
from ..logs import console, log
from ..settings import to_dict
from .clean_pass import CHUNK, clean_sources
from .marks import MARK_NAMES
from .sources import resolve
from .token_pass import encode_bpe, encode_known, encode_new_vocab
from .tokenfiles import UNK_WORDS, fingerprint, load_meta, load_split, load_tokenizer
from .tokenizer import UNK, Tokenizer


@dataclass(frozen=True)
class Prepared:
    """What ``prepare()`` wrote: the folder, its meta.json and its tokenizer; ``str()`` of it
    is the summary ``prepare`` prints."""

    out: Path
    meta: dict
    tokenizer: Tokenizer

    def __str__(self) -> str:
        return summary(self)

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"<wordgpt Prepared {self.out}: {m['tokenizer']} tokens, vocabulary "
            f"{m['vocab_size']:,}, train {m['splits']['train']['tokens']:,} tokens, "
            f"val {m['splits']['val']['tokens']:,}>"
        )


def prepare(
    out: str | Path,
    cfg: DataConfig | None = None,
    *,
    overwrite: bool = False,
    tokenizer_from: str | Path | Tokenizer | None = None,
    workers: int = 0,
    progress: bool = True,
    holdout: bool = True,
    chunk_size: int | None = None,
    **settings,
) -> Prepared:
    """Read, clean, split and tokenize a data set into the data folder ``out``, streamed
    (see :mod:`.clean_pass` and :mod:`.token_pass`): train.bin, val.bin, tokenizer.json,
    then meta.json. ``settings`` are DataConfig fields (``dataset="don-quixote"``,
    ``tokenizer="char"``), over ``cfg`` (default: DataConfig's defaults).

    ``workers`` processes tokenize (0: every available core); ``tokenizer_from`` encodes
    with the tokenizer of an existing data folder or run (its vocabulary; unknown words
    count as <unk>). Everything is written into a fresh hidden folder beside ``out``
    (``.NAME.PID.tmp``) and swapped in at the end: a command that fails or is interrupted
    changes nothing, and an existing data folder is replaced only by a complete one, and
    only with ``overwrite``. A run folder, a file or a folder of other things is refused."""
    console()
    cfg = replace(cfg or DataConfig(), **settings)
    out = Path(out)
    check_out(out, overwrite)
    srcs = resolve(cfg.dataset)
    tok_from = tokenizer_from
    if isinstance(tokenizer_from, str | Path):
        tok_from = load_tokenizer(tokenizer_from)
    work = temp_name(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out.parent)
        work.mkdir()
    except OSError as e:
        raise disk_error(e, out) from None
    kw = {"chunk_size": chunk_size} if chunk_size else {}
    try:
        job = prepare_corpus(cfg, work, srcs, workers, tok_from, progress, holdout=holdout, **kw)
        if isinstance(tokenizer_from, str | Path):
            job["meta"]["tokenizer_from"] = str(Path(tokenizer_from).resolve())
        write_folder(work, job)
        swap_in(work, out, overwrite)
    except OSError as e:
        raise disk_error(e, out) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p = Prepared(out, job["meta"], job["tokenizer"])
    if progress:
        log.info(summary(p))
    return p


def load_prepared(out: str | Path) -> Prepared:
    """A data folder that ``prepare`` wrote earlier, as :func:`prepare` returns it."""
    return Prepared(Path(out), load_meta(out), load_tokenizer(out))


def check_out(out: Path, overwrite: bool) -> None:
    """``prepare --out`` takes a new or empty folder, or a data folder with ``overwrite``."""
    k = expect(
        out,
        ("missing", "empty", "data"),
        "--out",
        "prepare into a new folder (or an empty one, or a data folder with --overwrite)",
    )
    if k == "data" and not overwrite:
        raise DataError(
            f"{out} already holds prepared data; pass --overwrite to replace it (it is "
            "replaced only once the new data is complete), or prepare into another --out"
        )


def write_folder(work: Path, job: dict) -> None:
    """The token files and tokenizer under their names in the private folder, meta.json
    last (a folder without it is never taken for a complete one)."""
    for split, tmp in job["files"].items():
        os.replace(tmp, work / f"{split}.bin")
    for split, tmp in job["unk_words"].items():
        os.replace(tmp, work / UNK_WORDS[split])
    tok = json.dumps(job["tokenizer"].to_dict(), ensure_ascii=False)
    (work / "tokenizer.json").write_text(tok, encoding="utf-8")
    job["meta"]["fingerprint"] = fingerprint(work)
    atomic_write(work / "meta.json", json.dumps(job["meta"], indent=2, ensure_ascii=False))


def swap_in(work: Path, out: Path, overwrite: bool = False) -> None:
    """The complete ``work`` folder takes ``out``'s place; an older one there goes, with
    ``overwrite``. Without it the rename itself is the check (it fails on a folder that is
    not empty), so that of two prepares into one new folder at once the second is refused."""
    if not overwrite or not out.exists():
        try:
            work.rename(out)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise DataError(
                f"{out} was written by another prepare while this one ran; pass --overwrite "
                "to replace it, or prepare into another --out"
            ) from None
        return
    old = out.with_name(f".{out.name}.old.{os.getpid()}.tmp")
    out.rename(old)
    work.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def prepare_corpus(
    cfg: DataConfig,
    out: Path,
    srcs: list,
    workers: int = 0,
    tokenizer_from: Tokenizer | None = None,
    progress: bool = True,
    chunk_size: int = CHUNK,
    holdout: bool = True,
) -> dict:
    """Both passes; the token files and tokenizer under temporary names in ``out``, and the
    meta dict. :func:`prepare` renames them into place."""
    workers = workers or len(os.sched_getaffinity(0))
    ct = clean_sources(srcs, cfg, out, workers, progress, holdout)
    try:
        if tokenizer_from is not None:
            enc = encode_known(ct, tokenizer_from, out, workers, chunk_size)
        elif cfg.tokenizer == "bpe":
            enc = encode_bpe(ct, cfg, out, workers, chunk_size)
        else:
            enc = encode_new_vocab(ct, cfg, out, workers, chunk_size)
    finally:
        for f in ct.files:
            f.unlink(missing_ok=True)
    splits = {
        s: {
            "chars": ct.chars(s),
            "tokens": enc.tokens[s],
            "unk": enc.unk[s],
            "unk_share": enc.unk[s] / max(enc.tokens[s], 1),
            "unk_spell_bits": enc.spell_bits[s],
            **(enc.lines[s] if enc.lines else {}),
        }
        for s in ("train", "val")
    }
    for i, src in enumerate(ct.sources):
        src["train_start"] = enc.train_starts.get(i, 0)
    return {
        "meta": {
            "source": ct.sources[0]
            if len(ct.sources) == 1
            else {"dataset": "several", "files": ct.sources},
            "sources": ct.sources,
            "config": to_dict(cfg),
            "split": ct.split,
            "tokenizer": enc.tokenizer.kind,
            "tokenizer_from": None,
            "vocab_size": enc.tokenizer.vocab_size,
            "dtype": enc.dtype.name,
            "unique_chars": enc.unique_chars,
            "splits": splits,
        },
        "files": enc.files,
        "unk_words": enc.unk_words,
        "tokenizer": enc.tokenizer,
    }


def describe_split(split: dict) -> str:
    """How a data folder's val split was taken (meta.json's ``split``), in words."""
    if split.get("method") == "articles":
        n = split["articles"]
        return (
            f"every {split['every']}th article to val ({n['val']:,} of {n['val'] + n['train']:,})"
        )
    return f"the last {split.get('val_fraction', 0.1):.0%} of each file to val"


def summary(p: Prepared, n_tokens: int = 20) -> str:
    """The lines ``wordgpt prepare`` prints."""
    m = p.meta
    tr, va = m["splits"]["train"], m["splits"]["val"]
    head = load_split(p.out, "train")[:n_tokens].tolist()
    strings = p.tokenizer.token_strings()
    pieces = [strings[i] for i in head]
    if getattr(p.tokenizer, "space_prefix", False):  # an <unk> stood for " word": show its space
        pieces = [" " + t if t == UNK and n else t for n, t in enumerate(pieces)]
    first = p.tokenizer.unmarked("".join(pieces))
    pieces = [MARK_NAMES.get(t, t) for t in pieces]
    srcs = m.get("sources") or [m["source"]]
    where = (
        f"{srcs[0]['dataset']} ({srcs[0]['path']})"
        if len(srcs) == 1
        else f"{len(srcs)} files ({srcs[0]['path']}, ...)"
    )
    how = describe_split(m.get("split", {}))
    lines = [
        f"source        {where}",
        f"split         {how}",
        f"unique chars  {m['unique_chars']}",
        f"tokenizer     {m['tokenizer']}, vocabulary {m['vocab_size']:,} ({m['dtype']})"
        + (f" from {m['tokenizer_from']}" if m.get("tokenizer_from") else ""),
        f"train         {tr['tokens']:,} tokens, {tr['chars']:,} chars "
        f"({tr['chars'] / max(tr['tokens'], 1):.2f} chars/token){unk_part(tr)}",
        f"val           {va['tokens']:,} tokens, {va['chars']:,} chars{unk_part(va)}"
        + line_part(va),
        f"first tokens  {pieces}",
        f"first text    {first!r}",
        f"wrote         {p.out}/{{train.bin,val.bin,tokenizer.json,meta.json}}",
    ]
    if warn := unk_warning(tr, va):
        lines.append(warn)
    return "\n".join(lines)


UNK_WARNING = 0.01
"""A val split whose <unk> share exceeds twice the training split's by more than this gets a
warning from ``prepare``: the vocabulary fits it worse than the text the model learns from
(with ``--min-count 1`` the training split has no <unk>, and the limit is this share)."""


def unk_warning(train: dict, val: dict) -> str | None:
    """The warning for a val split with many more <unk> than the training split, if any."""
    seen, new = train.get("unk_share", 0.0), val.get("unk_share", 0.0)
    if new <= 2 * seen + UNK_WARNING:
        return None
    return (
        f"warning: {new:.1%} of the val tokens are <unk> (words the vocabulary lacks), against "
        f"{seen:.1%} of the training tokens: bits per character charge each its spelling, but "
        "a model sees them as one"
    )


def line_part(split: dict) -> str:
    """``, 1,681 line breaks in paragraphs (their line model: 0.004 bits/char)`` for a split
    that a line model codes (:mod:`.lines`)."""
    if "line_bits" not in split:
        return ""
    bits = split["line_bits"] / max(split["chars"], 1)
    return f", {split['line_breaks']:,} line breaks (their line model: {bits:.3f} bits/char)"


def unk_part(split: dict) -> str:
    """``, <unk> 1.97% (their spelling: 0.070 bits/char)`` for a split with unknown tokens."""
    if not split.get("unk"):
        return ""
    spell = split.get("unk_spell_bits", 0.0) / max(split["chars"], 1)
    return f", <unk> {split['unk_share']:.2%} (their spelling: {spell:.3f} bits/char)"
