"""Files written so that a crash never leaves a torn one, and disk errors as one clear line.

Every file a run writes goes through :func:`atomic_write` (or :func:`atomic_path`): the bytes
go to a temporary file beside the target (``.NAME.PID.tmp``), are flushed to disk, and the
temporary file is renamed over the target. A crash leaves the previous file whole and, at
worst, a temporary file that :func:`remove_stale_temps` deletes at the next start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import WordGPTError

TEMP_GLOB = ".*.tmp"
_TEMP = re.compile(r"\..+\.(\d+)\.tmp")
_FD_PATH = re.compile(r"/proc/self/fd/(\d+)(/.*)?")
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


def cache_dir() -> Path:
    """``$WORDGPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/wordgpt``, else ``~/.cache/wordgpt``."""
    if env := os.environ.get("WORDGPT_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wordgpt"


def temp_name(path: Path) -> Path:
    """``.NAME.PID.tmp`` beside ``path``: whose it is can be told from the name."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def shown(path: str | Path) -> str:
    """A path as a user knows it: a run's files are written through its open folder
    (``/proc/self/fd/N/...``), shown under the folder's real name."""
    m = _FD_PATH.fullmatch(str(path))
    if m is None:
        return str(path)
    try:
        return os.readlink(f"/proc/self/fd/{m.group(1)}") + (m.group(2) or "")
    except OSError:
        return str(path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers: nothing of ours is still being written
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def disk_error(e: OSError, path: str | Path, need: int | None = None) -> WordGPTError:
    """A user-facing error for a failed write: disk full (with the bytes ``need`` ed when
    known), no permission, or other."""
    path = shown(path)
    folder = Path(path).parent
    if e.errno in _DISK_FULL:
        try:
            free = shutil.disk_usage(folder).free / 1e6
            free_s = f"{free:,.0f} MB free"
        except OSError:
            free_s = "free space unknown"
        need_s = f"; it needs about {need / 1e6:,.0f} MB" if need else ""
        return WordGPTError(
            f"disk full while writing {path} ({free_s} in {folder}, or a file-size limit"
            f"{need_s}); free some space and run again: earlier files are untouched"
        )
    if e.errno in _NO_PERMISSION:
        return WordGPTError(f"cannot write {path}: {os.strerror(e.errno)} (folder {folder})")
    return WordGPTError(f"cannot write {path}: {e.strerror or e}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    On any failure the temporary file is removed and ``path`` is untouched; disk-full and
    permission errors become one-line :class:`WordGPTError` s.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise disk_error(e, path) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def read_json_object(path: str | Path | None) -> dict:
    """A JSON file's object, or ``{}`` where it is missing, unreadable, torn or not an
    object: for the optional files of a run (summary, eval), which may be absent."""
    import json

    try:
        d = json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` atomically."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.PID.tmp``) and folders that a process which is
    gone left in ``folder`` (a crash), and this process's own; those of a process still
    running are left alone."""
    removed = []
    for p in Path(folder).glob(TEMP_GLOB):
        m = _TEMP.fullmatch(p.name)
        if m is None or _alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed
