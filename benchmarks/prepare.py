"""Preparing corpora of 10 MB, 100 MB and 1 GB: MB/s, tokens/s and peak memory.

The corpora are built on the fly in a temporary folder (removed after) from Don Quixote (its
cleaned text repeated) and from the Wikipedia sample that ships with gensim (its pages
repeated inside one bz2 dump). Each ``wordgpt prepare`` runs as a child process; its peak
memory is the largest resident set of the child and its worker processes together, polled
from /proc every 50 ms.

    python benchmarks/prepare.py                         # 10 and 100 MB, every tokenizer
    python benchmarks/prepare.py --sizes 10 100 1000 --tokenizers word char bpe
    python benchmarks/prepare.py --wikipedia --sizes 10  # dump parsing, 1 and 2 workers
    python benchmarks/prepare.py --extractors            # the markup extractors, one core
    python benchmarks/prepare.py --rare --sizes 4        # rare words: every <unk> spelled

``--rare`` prepares two corpora where spelling dominates: one line of random letters with no
space (a single token of ``mb`` MB) and random made-up words (almost every one new, so
almost every token is an ``<unk>`` charged its spelling).
"""

from __future__ import annotations

import argparse
import bz2
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit

from wordgpt.corpus.sources import resolve_one, sample_dump_path
from wordgpt.corpus.tokenfiles import load_meta


def book_corpus(mb: int, folder: Path) -> Path:
    """Don Quixote's body (Gutenberg matter cut) repeated to about ``mb`` MB of plain text."""
    path = folder / f"dq-{mb}mb.txt"
    if path.exists():
        return path
    text = resolve_one("don-quixote").path.read_text(encoding="utf-8")
    body = text[text.index("VOLUME I.") : text.rindex("End of the Project Gutenberg")]
    raw = body.encode("utf-8")
    with open(path, "wb") as f:
        for _ in range(max(1, round(mb * 1e6 / len(raw)))):
            f.write(raw)
    return path


def wiki_corpus(mb: int, folder: Path) -> Path:
    """The bundled Wikipedia sample's pages repeated inside one dump (bz2)."""
    path = folder / f"wiki-{mb}mb.xml.bz2"
    if path.exists():
        return path
    xml = bz2.decompress(sample_dump_path().read_bytes()).decode("utf-8")
    head, rest = xml.split("<page>", 1)
    pages, tail = ("<page>" + rest).rsplit("</page>", 1)
    pages += "</page>"
    reps = max(1, round(mb * 1e6 / len(pages.encode())))
    with bz2.open(path, "wt", encoding="utf-8") as f:
        f.write(head)
        for _ in range(reps):
            f.write(pages)
        f.write(tail)
    return path


def rare_corpora(mb: int, folder: Path) -> list[Path]:
    """A single token of ``mb`` MB, and ``mb`` MB of made-up words (seeded, lower case)."""
    import numpy as np

    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    one = folder / f"one-token-{mb}mb.txt"
    one.write_bytes(letters[rng.integers(0, 26, int(mb * 1e6))].tobytes() + b"\n")
    words = folder / f"rare-words-{mb}mb.txt"
    n = int(mb * 1e6 / 8)
    lengths = rng.integers(3, 12, n)
    chars = letters[rng.integers(0, 26, int(lengths.sum()))].tobytes().decode()
    cuts = np.cumsum(lengths)[:-1]
    text = " ".join(chars[a:b] for a, b in zip([0, *cuts], [*cuts, len(chars)], strict=True))
    words.write_text("\n".join(text[i : i + 70] for i in range(0, len(text), 70)) + "\n")
    return [one, words]


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, in kB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            status = Path(f"/proc/{d}/status").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
        m = re.search(r"VmRSS:\s+(\d+) kB", status)
        rss[int(d)] = int(m.group(1)) if m else 0
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def run(corpus: Path, tokenizer: str, workers: int, out: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "wordgpt.cli",
        "prepare",
        "--dataset",
        str(corpus),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--no-progress",
    ]
    if tokenizer == "word-sp":
        cmd += ["--tokenizer", "word", "--space-prefix"]
    elif tokenizer == "word":  # plain words and spaces (space-prefixed words are the default)
        cmd += ["--tokenizer", "word", "--no-space-prefix"]
    else:
        cmd += ["--tokenizer", tokenizer]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while p.poll() is None:
        peak = max(peak, _tree_rss_kb(p.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(p.stderr.read())
    meta = load_meta(out)
    chars = sum(s["chars"] for s in meta["splits"].values())
    tokens = sum(s["tokens"] for s in meta["splits"].values())
    text_mb = chars / 1e6  # characters of clean text (about bytes for this text)
    return {
        "seconds": seconds,
        "text_mb": text_mb,
        "mb_per_s": text_mb / seconds,
        "tokens_per_s": tokens / seconds,
        "peak_mb": peak / 1e3,
        "tokens": tokens,
    }


def extractors(pages: int = 30) -> list[dict]:
    """The regular-expression extractor against mwparserfromhell's full parse on the first
    ``pages`` articles of the sample, in CPU seconds of this process (one core)."""
    from tests.reference_corpus import article_text_parsed
    from wordgpt.corpus.wikipedia import article_text, iter_page_xml, parse_page

    with bz2.open(sample_dump_path()) as f:
        texts = [p[1] for p in map(parse_page, iter_page_xml(f)) if p][:pages]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    rows = []
    for name, fn in [
        ("regular expressions", article_text),
        ("mwparserfromhell", article_text_parsed),
    ]:
        t = time.process_time()
        for text in texts:
            fn(text)
        s = time.process_time() - t
        rows.append(
            {
                "extractor": name,
                "pages": len(texts),
                "markup_mb": mb,
                "seconds": s,
                "mb_per_s": mb / s,
            }
        )
    rows[0]["times_faster"] = rows[1]["seconds"] / rows[0]["seconds"]
    return rows


EXTRACTOR_COLUMNS = [
    ("extractor", "extractor", "s"),
    ("pages", "pages", "d"),
    ("markup_mb", "MB of markup", ".1f"),
    ("seconds", "CPU s", ".2f"),
    ("mb_per_s", "MB/s", ".2f"),
    ("times_faster", "x faster", ".1f"),
]


def tokenizers(args) -> list[str]:
    return ["word"] if args.wikipedia else ["word-sp"] if args.rare else args.tokenizers


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100], help="MB of text")
    ap.add_argument("--tokenizers", nargs="+", default=["word", "char", "bpe"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--wikipedia", action="store_true", help="a dump instead of plain text")
    ap.add_argument("--extractors", action="store_true", help="time the two markup extractors")
    ap.add_argument("--rare", action="store_true", help="one huge token; made-up words")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.extractors:
        emit(extractors(), EXTRACTOR_COLUMNS, args.json)
        return
    root = Path(tempfile.mkdtemp(prefix="wordgpt-prepare-bench-"))
    rows = []
    try:
        for mb in args.sizes:
            if args.rare:
                corpora = rare_corpora(mb, root)
            else:
                corpora = [wiki_corpus(mb, root) if args.wikipedia else book_corpus(mb, root)]
            for corpus, tok in [(c, t) for c in corpora for t in tokenizers(args)]:
                for w in args.workers:
                    out = root / f"out-{mb}-{tok}-{w}"
                    r = run(corpus, tok, w, out)
                    shutil.rmtree(out)
                    r.update(
                        corpus=corpus.name,
                        input_mb=corpus.stat().st_size / 1e6,
                        tokenizer=tok,
                        workers=w,
                    )
                    rows.append(r)
                    if not args.json:
                        print(
                            f"  {corpus.name} {tok} x{w}: {r['mb_per_s']:.1f} MB/s, "
                            f"peak {r['peak_mb']:,.0f} MB",
                            flush=True,
                        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit(
        rows,
        [
            ("corpus", "input", "s"),
            ("input_mb", "file MB", ",.0f"),
            ("text_mb", "text MB", ",.0f"),
            ("tokenizer", "tokens", "s"),
            ("workers", "workers", "d"),
            ("seconds", "seconds", ",.1f"),
            ("mb_per_s", "MB/s of text", ".1f"),
            ("tokens_per_s", "tokens/s", ",.0f"),
            ("peak_mb", "peak memory MB", ",.0f"),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
