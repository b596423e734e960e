"""Helpers shared by the benchmark scripts: prepared data, tables, JSON output."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the plain references live with the tests: tests/reference_*.py

import wordgpt  # noqa: E402
from wordgpt.config import DataConfig  # noqa: E402
from wordgpt.corpus.token_pass import marking  # noqa: E402
from wordgpt.corpus.tokenfiles import UNK_WORDS, load_meta  # noqa: E402
from wordgpt.settings import to_dict  # noqa: E402

TOKENIZERS = {
    "word": {"tokenizer": "word", "space_prefix": False},  # plain words (the default has spaces)
    "word-sp": {"tokenizer": "word", "space_prefix": True},
    "char": {"tokenizer": "char"},
    "bpe": {"tokenizer": "bpe"},
}


def prepared(name: str, dataset: str = "don-quixote", root: Path = ROOT / "data", **kw) -> Path:
    """Token files for ``dataset`` with tokenizer ``name`` (see TOKENIZERS) and DataConfig
    fields ``kw``, made once (again when they were made with other settings, such as
    another default, or by an older wordgpt: no spelling cost of their <unk>s, or not each
    split's <unk> words in order, or raw text's line breaks as marks before the line model)."""
    tag = "".join(f"-{k}{v}" for k, v in sorted(kw.items()))
    out = root / f"bench-{Path(dataset).name.split('.')[0]}-{name}{tag}"
    cfg = DataConfig(dataset=dataset, **TOKENIZERS[name], **kw)
    try:
        meta = load_meta(out)
        fresh = meta.get("config") == to_dict(cfg) and "unk_spell_bits" in meta["splits"]["val"]
        # the <unk> words adaptive spelling and reading by characters read
        fresh = fresh and all((out / f).is_file() for f in UNK_WORDS.values())
        fresh = fresh and ("line_bits" in meta["splits"]["val"] or not marking(cfg))
    except wordgpt.WordGPTError:
        fresh = False
    if not fresh:
        wordgpt.prepare(out, cfg, overwrite=True)
    return out


def quiet() -> None:
    """Keep wordgpt's own lines (a run's evaluations, prepare's summary: the ``wordgpt``
    logger, on stdout) out of a script's output, which is its table, or JSON alone with
    --json; warnings still show, on stderr."""
    logging.getLogger("wordgpt").setLevel(logging.WARNING)


def chars_per_token(data_dir: Path) -> float:
    s = load_meta(data_dir)["splits"]["train"]
    return s["chars"] / s["tokens"]


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Rows as a Markdown table; cols are (key, header, format)."""
    head = "| " + " | ".join(h for _, h, _ in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = [
        "| "
        + " | ".join(format(r[k], f) if r.get(k) is not None else "-" for k, _, f in cols)
        + " |"
        for r in rows
    ]
    return "\n".join([head, sep, *body])


def emit(rows: list[dict], cols, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        json.dump({**(extra or {}), "results": rows}, sys.stdout, indent=2)
        print()
    else:
        for k, v in (extra or {}).items():
            print(f"{k}: {v}")
        print(table(rows, cols))


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
"""The CPU flags that decide how fast training runs here (fp32 vectors, bf16, AMX)."""


def cpu_line() -> str:
    """This machine as a table's figures need it said: the CPU's name, which of SPEED_FLAGS
    it has, its cores, and torch's version."""
    import os

    import torch

    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and name == "unknown CPU":
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    has = [f for f in SPEED_FLAGS if f in flags] or ["none of " + ", ".join(SPEED_FLAGS)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, flags {' '.join(has)}, {cores} cores, torch {torch.__version__}"
