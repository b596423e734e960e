"""What wordgpt says while it works goes through one :mod:`logging` logger, ``wordgpt``.

With no logging set up by the program that uses wordgpt, its lines are printed as they
come, bare (no level or time prefix; information on standard output, warnings on standard
error), written around a progress bar without breaking it. A program that sets up logging
(a root handler, or one of its own on ``wordgpt``) gets the records instead. Under several
processes only rank 0 speaks (:func:`only_rank0`). For quiet, raise the level:
``logging.getLogger("wordgpt").setLevel(logging.WARNING)``.
"""

from __future__ import annotations

import contextlib
import logging
import sys

log = logging.getLogger("wordgpt")


class Console(logging.Handler):
    """Each record's message on the stdout of the moment (warnings on stderr), through tqdm
    so that a progress bar on the terminal is redrawn below it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            out = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            tqdm.write(self.format(record), file=out)
            out.flush()
        except Exception as e:  # a closed stdout must not stop a run
            if stop := interrupt_behind(e):  # but a signal must: tqdm's lock set-up can
                raise stop from None  # turn one that lands in it into another error
            self.handleError(record)


def interrupt_behind(e: BaseException) -> BaseException | None:
    """The Ctrl-C or SIGTERM that ``e`` was raised while handling, if any."""
    from .errors import InterruptError

    seen = e.__context__
    while seen is not None and not isinstance(seen, (InterruptError, KeyboardInterrupt)):
        seen = seen.__context__
    return seen


def console() -> None:
    """Print wordgpt's lines, unless the program has set up logging itself."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not log.handlers and not logging.getLogger().handlers:
        log.addHandler(Console())


@contextlib.contextmanager
def only_rank0(master: bool):
    """Within this block, only rank 0 logs (the other ranks' lines would repeat its own)."""
    if master:
        yield
        return
    was = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = was
