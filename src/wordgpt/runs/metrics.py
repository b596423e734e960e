"""A run's ``metrics.csv``: one row per evaluation, written atomically, read back with
damaged rows (a torn last line) dropped."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..fileio import atomic_write, shown
from ..logs import log

METRICS = ["step", "train_loss", "val_loss", "lr", "tokens", "elapsed_s"]


def parse_metrics(text: str) -> tuple[list[dict], int]:
    """Rows of a metrics CSV that parse completely, and how many did not."""
    rows, bad = [], 0
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != METRICS:
        return [], 1 if text.strip() else 0
    for r in reader:
        try:
            int(r["step"])
            for k in METRICS[1:]:
                float(r[k])
            rows.append(r)
        except (TypeError, ValueError, KeyError):
            bad += 1
    return rows, bad


def read_metrics(path: Path, upto: int | None = None, quiet: bool = False) -> list[dict]:
    """The rows of ``path`` (those with step <= ``upto``). A damaged file (a torn or garbled
    row) is repaired: bad rows are dropped, with a warning (unless ``quiet``)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    rows, bad = parse_metrics(text)
    if bad and not quiet:
        log.warning(f"warning: {shown(path)}: dropped {bad} damaged row(s)")
    return [r for r in rows if upto is None or int(r["step"]) <= upto]


def write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRICS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())
