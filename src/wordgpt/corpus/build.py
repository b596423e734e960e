"""``prepare``: text in, a data folder out. Both passes (:mod:`.clean_pass`, then
:mod:`.token_pass`), then the files renamed into place, ``meta.json`` last, so that an
interrupted run never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import DataConfig, to_dict
from ..fileio import atomic_write, disk_error, remove_stale_temps, temp_name
from .clean_pass import CHUNK, clean_sources
from .sources import resolve
from .token_pass import encode_bpe, encode_known, encode_new_vocab
from .tokenfiles import load_split, load_tokenizer
from .tokenizer import Tokenizer


@dataclass(frozen=True)
class Prepared:
    """What ``prepare()`` wrote, with the counts it printed."""

    out: Path
    meta: dict
    tokenizer: Tokenizer


def prepare(
    cfg: DataConfig,
    out: str | Path,
    workers: int = 0,
    tokenizer_from: str | Path | Tokenizer | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    holdout: bool = True,
) -> Prepared:
    """Read, clean, split and tokenize a data set into ``out``, streamed (see
    :mod:`.clean_pass` and :mod:`.token_pass`): train.bin, val.bin, tokenizer.json, then meta.json.

    ``workers`` processes tokenize (0: every available core); ``tokenizer_from`` encodes
    with the tokenizer of an existing data folder or run (its vocabulary; unknown words
    count as <unk>). Until the end everything is written under temporary names: an
    interrupted run leaves no meta.json, and an earlier complete folder is replaced only
    when the new one is whole."""
    out = Path(out)
    srcs = resolve(cfg.dataset)
    tok_from = tokenizer_from
    if isinstance(tokenizer_from, str | Path):
        tok_from = load_tokenizer(tokenizer_from)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_error(e, out) from None
    remove_stale_temps(out)
    kw = {"chunk_size": chunk_size} if chunk_size else {}
    kw["holdout"] = holdout
    try:
        job = prepare_corpus(cfg, out, srcs, workers, tok_from, progress, **kw)
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
        }
        for s in ("train", "val")
    }
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
        "tokenizer": enc.tokenizer,
    }


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
