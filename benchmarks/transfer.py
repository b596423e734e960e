"""More text for a book: pretrain on the shelf, fine-tune on Don Quixote, against training on
the book alone. Every figure is bits per character on Don Quixote's whole val split, under
the honest accounting (an <unk> is charged its spelling), with the <unk> share beside it.

    (a) scratch      the cpu preset on the book's own data, --time-budget SCRATCH
    (b) pretrain     the PRESET on the shelf + the book's train split (joint vocabulary), and
                     on the shelf alone (the same vocabulary), --time-budget PRETRAIN each
    (c) zero-shot    (b)'s best.pt on the book's val split, no fine-tuning
    (d) fine-tune    (b) --init-from'd on the book (encoded with the joint vocabulary) for
                     FINETUNE s, at each --lrs learning rate (the finetune preset otherwise)

The joint vocabulary is made from the training splits only: the shelf's novels and Don
Quixote's train split (the last tenth of every file is its val split), so Don Quixote's val
words are never in it unless they also stand in training text.

    python benchmarks/transfer.py                                   # 300 s, 1,800 s, 300 s
    python benchmarks/transfer.py --pretrain 600 --mixes joint --lrs 5e-4
    python benchmarks/transfer.py --keep runs/transfer              # keep runs and data
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from common import ROOT, emit, prepared, quiet

import wordgpt


def shelf() -> Path:
    data = os.environ.get("WORDGPT_DATA_DIR")
    if not data or not (Path(data) / "shelf").is_dir():
        raise SystemExit("set WORDGPT_DATA_DIR to the folder with shelf/ (../shared/data)")
    return Path(data) / "shelf"


def data_folders(root: Path) -> dict[str, Path]:
    """The joint data (shelf + book), the shelf alone and the book, all in one vocabulary."""
    out = {"joint": root / "bench-joint-word-sp", "shelf": root / "bench-shelf-joint",
           "book": root / "bench-dq-joint"}  # fmt: skip
    kw = {"tokenizer": "word", "space_prefix": True, "progress": False}
    if not (out["joint"] / "meta.json").is_file():
        wordgpt.prepare(out["joint"], dataset=(str(shelf()), "don-quixote"), **kw)
    for name, dataset in (("shelf", (str(shelf()),)), ("book", ("don-quixote",))):
        if not (out[name] / "meta.json").is_file():
            wordgpt.prepare(out[name], dataset=dataset, tokenizer_from=out["joint"], **kw)
    return out


def score(run: Path, data: Path, **extra) -> dict:
    m = wordgpt.load(run, "best")
    e = m.evaluate("val", data)
    s = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    return {
        "val_bpc": e.bits_per_char,
        "val_loss": e.loss,
        "unk_share": e.unk_share,
        "steps": s.get("step"),
        "tokens_per_s": s.get("tokens_per_s"),
        "stopped": s.get("stopped"),
        **extra,
    }


def train(data: Path, out: Path, **kw) -> None:
    if (out / "summary.json").is_file():  # kept from an earlier run of this benchmark
        return
    wordgpt.train(data, out, overwrite=True, progress=False, **kw)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scratch", type=float, default=300.0)
    ap.add_argument("--pretrain", type=float, default=1800.0)
    ap.add_argument("--finetune", type=float, default=300.0)
    ap.add_argument("--preset", default="cpu", help="the pretraining recipe")
    ap.add_argument("--mixes", nargs="+", default=["joint", "shelf"], choices=["joint", "shelf"])
    ap.add_argument("--lrs", type=float, nargs="+", default=[None], help="fine-tune lrs")
    ap.add_argument("--keep", type=Path, default=None, help="keep data and runs here")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    quiet()
    root = args.keep or Path(tempfile.mkdtemp(prefix="wordgpt-transfer-"))
    data = data_folders(ROOT / "data")
    own = prepared("word-sp")
    rows = []
    scratch = root / "scratch"
    train(own, scratch, preset="cpu", time_budget=args.scratch)
    rows.append(score(scratch, own, what="(a) scratch on the book", budget_s=args.scratch))
    for mix in args.mixes:
        pre = root / f"pretrain-{mix}"
        train(data[mix], pre, preset=args.preset, time_budget=args.pretrain)
        what = "shelf + book train" if mix == "joint" else "shelf alone"
        rows.append(score(pre, data["book"], what=f"(c) {what}, zero-shot",
                          budget_s=args.pretrain))  # fmt: skip
        for lr in args.lrs:
            ft = root / f"finetune-{mix}-{lr or 'preset'}"
            over = {"lr": lr} if lr else {}
            train(data["book"], ft, init_from=str(pre), time_budget=args.finetune, **over)
            rows.append(score(ft, data["book"], what=f"(d) {what}, fine-tuned",
                              budget_s=args.finetune, lr=lr))  # fmt: skip
        if not args.json:
            print(rows[-1], flush=True)
    cols = [("what", "run", "s"), ("budget_s", "budget s", ".0f"), ("lr", "lr", "g"),
            ("steps", "steps", ",d"), ("tokens_per_s", "tokens/s", ",.0f"),
            ("val_bpc", "DQ val bits/char", ".4f"), ("val_loss", "val loss", ".3f"),
            ("unk_share", "val <unk>", ".2%"), ("stopped", "stopped", "s")]  # fmt: skip
    emit(rows, cols, args.json, {"runs in": str(root)})


if __name__ == "__main__":
    main()
