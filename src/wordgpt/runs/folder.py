"""A run folder: what a training run writes, guarded so that no run is ever lost.

::

    config.json     data, model and training configs (recreates the run)
    tokenizer.json  the tokenizer
    metrics.csv     step, train_loss, val_loss, lr, tokens, elapsed_s
    loss.png        train and val loss, redrawn at each evaluation
    last.pt         the latest checkpoint
    best.pt         the checkpoint with the lowest val loss so far
    summary.json    how the run ended: steps, best val loss, why it stopped
    tensorboard/    TensorBoard event files (when enabled)
    .lock           held by the training process (its PID inside) while it runs

A folder that holds a run is never trained into again by accident: ``train`` refuses it
unless told to resume it or to move it aside (``--overwrite``), and it refuses a data folder
(one ``prepare`` wrote). One training at a time: the lock is an ``fcntl`` lock on the folder
itself (its open directory, not a file that can be deleted), released by the kernel when
the process dies; ``.lock`` only names the holder. While it holds the lock, the run writes
through its open folder (``/proc/self/fd/N``, where the system has it), so a folder moved
away under a training keeps receiving its own files. Every file is written atomically, so a
crash leaves whole files (and temporary ones, removed at the next start).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from ..corpus.tokenizer import Tokenizer
from ..errors import WordGPTError
from ..fileio import atomic_write, disk_error, remove_stale_temps
from .metrics import read_metrics, write_metrics
from .plots import loss_curve

RUN_FILES = ("last.pt", "best.pt", "metrics.csv")
"""What makes a folder hold a run (a config.json alone is a run that never trained)."""
DATA_FILES = ("meta.json", "train.bin", "val.bin")
"""What makes a folder a data folder (``prepare`` writes them)."""


class RunFolderError(WordGPTError):
    """A run folder that is in use, holds another run, or cannot be written."""


class RunDir:
    """The files of one run, and the lock that makes this process their only writer."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._dir_fd: int | None = None
        self._lock_fd: int | None = None

    @property
    def base(self) -> Path:
        """Where the run's files are read and written: its open folder while locked."""
        if self._dir_fd is not None and Path(f"/proc/self/fd/{self._dir_fd}").is_dir():
            return Path(f"/proc/self/fd/{self._dir_fd}")
        return self.path

    def __truediv__(self, name: str) -> Path:
        return self.base / name

    # ------------------------------------------------------------ guarding

    def holds_run(self) -> bool:
        return any((self.path / f).exists() for f in RUN_FILES)

    def check_writable(self) -> None:
        """Refuse a path that is a file, a data folder, or a folder we cannot write, before
        anything is done."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} is a file, not a run folder")
        if any((self.path / f).exists() for f in DATA_FILES):
            raise RunFolderError(
                f"{self.path} is a data folder (prepare wrote it); train into another folder, "
                f"e.g. --out runs/{self.path.name}"
            )
        parent = self.path if self.path.exists() else _existing_parent(self.path)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunFolderError(f"cannot write into {parent}: permission denied or read-only")

    def check_new(self, overwrite: bool) -> None:
        """A new run may start here: the folder is empty of runs, or ``overwrite`` is given."""
        self.check_writable()
        if self.holds_run() and not overwrite:
            raise RunFolderError(
                f"{self.path} already holds a run; continue it with --resume, or start over "
                "with --overwrite (the old run is moved aside, not deleted)"
            )

    def move_aside(self) -> Path | None:
        """Rename a folder that holds a run to ``NAME.old-YYYYmmdd-HHMMSS`` (never deleted)."""
        if not self.holds_run():
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = self.path.with_name(f"{self.path.name}.old-{stamp}")
        n = 1
        while dest.exists():
            n += 1
            dest = self.path.with_name(f"{self.path.name}.old-{stamp}-{n}")
        try:
            self.path.rename(dest)
        except OSError as e:
            raise disk_error(e, self.path) from None
        return dest

    # ------------------------------------------------------------ the lock

    def lock(self) -> None:
        """Take the folder's exclusive lock (creating the folder): an ``fcntl`` lock on the
        open directory, so that deleting ``.lock`` cannot let a second trainer in. One clear
        line naming the holder's PID if another process has it. Then remove a crashed run's
        temporary files."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise disk_error(e, self.path / ".lock") from None
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(dir_fd)
            raise RunFolderError(
                f"{self.path} is in use by another training (pid {self._holder()}); wait for "
                "it to finish or stop it, or train into another folder"
            ) from None
        self._dir_fd = dir_fd
        try:
            fd = os.open(self / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as e:
            self.unlock()
            raise disk_error(e, self.path / ".lock") from None
        self._lock_fd = fd
        remove_stale_temps(self.base)

    def training_pid(self) -> int | None:
        """The PID of the training that holds this folder now, None when none does (the
        lock is tried, never taken)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except BlockingIOError:
            pid = self._holder()
            return int(pid) if pid.isdigit() else -1
        finally:
            os.close(fd)

    def _holder(self) -> str:
        try:
            return (self.path / ".lock").read_text(errors="replace").strip() or "unknown"
        except OSError:
            return "unknown"

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
                os.close(self._lock_fd)
            self._lock_fd = None
        if self._dir_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._dir_fd, fcntl.LOCK_UN)
                os.close(self._dir_fd)
            self._dir_fd = None

    # ------------------------------------------------------------ files

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write(self / name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def write_tokenizer(self, tok: Tokenizer) -> None:
        atomic_write(self / "tokenizer.json", json.dumps(tok.to_dict(), ensure_ascii=False))

    def read_metrics(self, upto: int | None = None) -> list[dict]:
        """The rows of ``metrics.csv`` with step <= ``upto`` (a damaged file is repaired)."""
        return read_metrics(self / "metrics.csv", upto)

    def write_metrics(self, rows: list[dict]) -> None:
        write_metrics(self / "metrics.csv", rows)

    def plot(self, title: str = "") -> None:
        loss_curve(self / "metrics.csv", self / "loss.png", title or self.path.name)


def _existing_parent(path: Path) -> Path:
    p = path.absolute()
    while not p.exists():
        p = p.parent
    return p


def dataset_names(data: dict) -> str:
    """The data sets a run's config (its ``data`` part) names, a file by its name alone (what
    the runs list and the model card show: never a path of this machine); anything but a list
    of them (one string, a damaged config's value) is one."""
    found = data.get("dataset") or "?"
    found = found if isinstance(found, list | tuple) else [found]
    return ", ".join(Path(str(d)).name for d in found)
