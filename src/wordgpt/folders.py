"""What kind of thing a path names: a data folder (``prepare`` wrote it), a run folder
(``train`` wrote it), an empty or other folder, a file, or nothing. Every command checks its
path arguments with this before it reads or writes, so that a data folder is never
trained into, a run folder never prepared into, and a wrong kind of path gets one line that
says what to pass."""

from __future__ import annotations

from pathlib import Path

from .errors import WordGPTError

DATA_FILES = ("meta.json", "train.bin", "val.bin")
"""What makes a folder a data folder."""
RUN_FILES = ("last.pt", "best.pt", "metrics.csv")
"""What makes a folder hold a run (a config.json alone is a run that never trained)."""
STARTED = {"config.json", "tokenizer.json", ".lock", "tensorboard", "summary.json"}
"""What a run that never reached its first evaluation may have left: the folder counts as
empty (a new run may start there)."""


def kind(path: str | Path) -> str:
    """``missing``, ``file``, ``data``, ``run``, ``empty`` or ``folder`` (anything else)."""
    p = Path(path)
    if not p.exists():
        return "missing"
    if not p.is_dir():
        return "file"
    if any((p / f).exists() for f in RUN_FILES):
        return "run"
    if any((p / f).exists() for f in DATA_FILES):
        return "data"
    try:
        names = {
            q.name for q in p.iterdir() if not (q.name.startswith(".") and q.name.endswith(".tmp"))
        }
    except OSError:
        return "folder"
    return "empty" if names <= STARTED else "folder"


PREPARE_FIRST = (
    "give a folder written by `wordgpt prepare` (for a text file: wordgpt prepare --dataset "
    "FILE --out data/NAME, then --data data/NAME)"
)

WHAT = {
    "data": "a data folder (written by `wordgpt prepare`)",
    "run": "a run folder (written by `wordgpt train`)",
    "file": "a file",
    "folder": "a folder that is neither a data folder nor a run",
    "empty": "an empty folder",
    "missing": "nothing (no such file or folder)",
}


def expect(path: str | Path, wanted: tuple[str, ...], role: str, hint: str) -> str:
    """The kind of ``path`` if it is one of ``wanted``; else one clear error naming what it
    is, what ``role`` needs, and ``hint`` (what to pass instead)."""
    k = kind(path)
    if k in wanted:
        return k
    raise WordGPTError(f"{role} {path} is {WHAT[k]}; {hint}")
