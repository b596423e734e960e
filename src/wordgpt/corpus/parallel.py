"""An ordered, bounded parallel map over worker processes (the ``prepare`` passes use it).

Workers are started fresh (``spawn``: no copy of a parent's threads or locks). A spawned
process first runs the parent's main module again, as ``__mp_main__``: a script that calls
wordgpt without an ``if __name__ == "__main__":`` guard would prepare again in every worker,
and each of those would start workers of its own. The workers need nothing from that module,
so while they start the parent's main module is presented to them as this one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing as mp
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator


def ordered_map(fn: Callable, items: Iterable, workers: int, init=None, initargs=()) -> Iterator:
    """``map(fn, items)`` in worker processes, in order, with at most 2 x workers items in
    flight (a fast reader never piles the input up in memory). One worker: in-process."""
    if workers <= 1:
        if init:
            init(*initargs)
        yield from map(fn, items)
        return
    ctx = mp.get_context("spawn")
    with _main_not_rerun(), ctx.Pool(workers, initializer=init, initargs=initargs) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


@contextlib.contextmanager
def _main_not_rerun():
    """While the pool's workers start (and while it lives, should it start more), its
    workers import this module as their main instead of the parent's script."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__file__", None) is None:  # a notebook, the REPL
        yield
        return
    had, spec = hasattr(main, "__spec__"), getattr(main, "__spec__", None)
    main.__spec__ = importlib.util.find_spec(__name__)
    try:
        yield
    finally:
        if had:
            main.__spec__ = spec
        else:
            del main.__spec__
