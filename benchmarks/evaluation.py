"""Evaluation beyond the static figure, on a trained run: windows with a stride (each token
with more context) and adaptive evaluation (the model learns from each window after scoring
it), beside what general-purpose compressors make of the same val text given the train text
(``C(train + val) - C(train)`` in bits per val character, the text cleaned as the run's data
was).

    python benchmarks/evaluation.py runs/dq                        # strides, adaptive, xz
    python benchmarks/evaluation.py runs/dq --strides 128 64 32 --adapt rms sgd:0.01 sgd:0.03

zpaq (Debian's ``zpaq``, a context-mixing compressor) and paq8px (``-8LA``: level 8, its LSTM,
an adaptive learning rate; built from its public source by ``bash benchmarks/paq8px.sh``) are
used when they are installed; the table says when they are not. paq8px takes minutes of CPU
per megabyte.
"""

from __future__ import annotations

import argparse
import bz2
import lzma
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import emit

import wordgpt
from wordgpt.adapt_config import AdaptConfig
from wordgpt.config import DataConfig
from wordgpt.corpus.cleaning import clean, split_text
from wordgpt.corpus.sources import resolve
from wordgpt.corpus.tokenfiles import load_meta
from wordgpt.settings import from_dict


def train_and_val_text(data_dir: Path) -> tuple[str, str]:
    """The train and val text of a one-source data folder, cleaned as it was prepared."""
    meta = load_meta(data_dir)
    cfg = from_dict(DataConfig, meta["config"])
    (src,) = resolve(cfg.dataset)
    text = clean(src.path.read_text(encoding=cfg.encoding), cfg, src.start)
    train, val = split_text(text, cfg.val_fraction)
    if len(val) != meta["splits"]["val"]["chars"]:
        raise SystemExit(f"the cleaned val text has {len(val):,} chars, meta.json says otherwise")
    return train, val


def zpaq_bytes(data: bytes) -> int | None:
    if shutil.which("zpaq") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "t").write_bytes(data)
        subprocess.run(["zpaq", "a", "t.zpaq", "t", "-m5"], cwd=tmp, check=True,
                       capture_output=True)  # fmt: skip
        return (Path(tmp) / "t.zpaq").stat().st_size


def paq8px_path() -> str | None:
    """$PAQ8PX, else paq8px on PATH, else the one benchmarks/paq8px.sh builds."""
    built = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wordgpt/tools/paq8px"
    found = os.environ.get("PAQ8PX") or shutil.which("paq8px")
    return found or (str(built) if built.is_file() else None)


def paq8px_bytes(data: bytes) -> int | None:
    exe = paq8px_path()
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "t").write_bytes(data)
        subprocess.run([exe, "-8LA", "t", "t.paq8px"], cwd=tmp, check=True, capture_output=True)
        return (Path(tmp) / "t.paq8px").stat().st_size


COMPRESSORS = {
    "xz -9e": lambda b: len(lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    "bzip2 -9": lambda b: len(bz2.compress(b, 9)),
    "zpaq -m5": zpaq_bytes,
    "paq8px -8LA": paq8px_bytes,
}


def compressor_rows(train: str, val: str) -> list[dict]:
    rows = []
    a, b = train.encode(), (train + val).encode()
    for name, size in COMPRESSORS.items():
        t = time.perf_counter()
        sa, sb = size(a), size(b)
        if sa is None:
            rows.append({"method": name, "setting": "not installed"})
            continue
        rows.append({"method": name, "setting": "C(train+val) - C(train)",
                     "bits_per_char": 8 * (sb - sa) / len(val),
                     "seconds": time.perf_counter() - t})  # fmt: skip
    return rows


def partner(r, key: str) -> float | None:
    """The figure with the run's n-gram partner, when it has one."""
    return r.ngram[key] if r.ngram else None


def model_rows(run: Path, strides: list[int], rules: list[AdaptConfig]) -> list[dict]:
    m = wordgpt.load(run, device="cpu")
    block = m.gpt.cfg.block_size
    rows, strides = [], strides or [block, block // 2, block // 4]
    for stride in strides:
        t = time.perf_counter()
        r = m.evaluate("val", stride=stride)
        rows.append({"method": "static", "setting": f"stride {stride} (block {block})",
                     "bits_per_char": r.bits_per_char, "partner": partner(r, "bits_per_char"),
                     "seconds": time.perf_counter() - t})  # fmt: skip
    for stride in strides:
        for how in rules:
            t = time.perf_counter()
            r = m.evaluate("val", stride=stride, adapt=how)
            seconds = time.perf_counter() - t  # the static pass it makes too included
            rows.append({"method": "adaptive",
                         "setting": f"stride {stride}, {how.adapt_rule} rate {how.rate:g}",
                         "bits_per_char": r.adaptive_bits_per_char,
                         "partner": partner(r, "adaptive_bits_per_char"),
                         "seconds": seconds})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--strides", type=int, nargs="*", default=[], help="default: block, /2, /4")
    ap.add_argument(
        "--adapt",
        nargs="*",
        default=["rms", "sgd"],
        metavar="RULE[:RATE]",
        help="adaptive rules (rms, sgd), each with its rate or the rule's own",
    )
    ap.add_argument("--no-compressors", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rules = [AdaptConfig(r.split(":")[0], float(r.split(":")[1]) if ":" in r else None)
             for r in args.adapt]  # fmt: skip
    rows = model_rows(args.run, args.strides, rules)
    if not args.no_compressors:
        m = wordgpt.load(args.run, device="cpu")
        rows += compressor_rows(*train_and_val_text(Path(m.config["data_dir"])))
    emit(rows, [("method", "method", "s"), ("setting", "setting", "s"),
                ("bits_per_char", "val bits/char", ".4f"),
                ("partner", "with the partner", ".4f"),
                ("seconds", "seconds (adaptive: with its static pass)", ",.1f")],
         args.json)  # fmt: skip


if __name__ == "__main__":
    main()
