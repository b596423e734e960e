"""An ordered, bounded parallel map over worker processes (the ``prepare`` passes use it)."""

from __future__ import annotations

import multiprocessing as mp
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
    with ctx.Pool(workers, initializer=init, initargs=initargs) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
