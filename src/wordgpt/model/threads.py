"""How many torch threads a model runs with on a CPU: chosen by measurement, and kept right.

torch runs one thread per core. A small model gains little from a second thread, and beside
one busy process two threads on two cores run 1.6x slower than one: every parallel region
waits for the thread whose core is taken. No setting can know which holds now, so a loop of
like units of work (training steps, evaluation batches, sampled tokens) measures: a trial
times a few units with each candidate count (1, 2, 4, ... up to the cores this process may
use), keeps the fastest, and starts again when units turn far slower than the recent ones
(the machine got busy) or after a while (it may be quiet again). The units of a trial are
real work, so measuring costs only the time of running some of them at a slower count.

A count given (``--threads N``, or ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` in the
environment, which torch reads) is kept as given.
"""

from __future__ import annotations

import os
import statistics
from collections import deque

import torch

TRIAL_UNITS = 2
"""Units timed with each candidate count in a trial, at most (the fastest of them counts)."""
CLEAR = 1.25
"""A trial ends after its first round when one count is this many times faster than every
other: a second round would only cost more units at slower counts."""
SLOW = 1.8
"""A unit this many times slower than the median of the recent ones is slow."""
SLOW_IN_A_ROW = 2
"""This many slow units in a row start a new trial."""
RECENT = 16
"""How many of the latest units the median is taken over."""
RECHECK_S = 60.0
"""Seconds of units after which a trial runs again (the machine may have become quiet)."""


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def candidates(n: int) -> list[int]:
    """1, 2, 4, ... and ``n`` itself: the thread counts a trial times."""
    out, c = [], 1
    while c < n:
        out.append(c)
        c *= 2
    return [*out, n]


def given_threads(threads: int | None = None) -> int | None:
    """The thread count the user fixed: ``threads`` (a flag), or what torch read from
    OMP_NUM_THREADS or MKL_NUM_THREADS; None when nobody said."""
    if threads:
        return int(threads)
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return torch.get_num_threads()
    return None


class Threads:
    """The thread count of one loop (``what`` its units are, for the log): call
    :meth:`before` before each unit and :meth:`after` with the seconds it took. ``fixed``: a
    count given, kept as it is; ``n_cores``: the cores to choose among (default: this
    process's); ``start``: the count to start with (default: torch's), till the first trial
    ends."""

    def __init__(self, fixed: int | None = None, n_cores: int | None = None, what: str = "step",
                 start: int | None = None):  # fmt: skip
        self.what, self.fixed = what, fixed
        self.candidates = [fixed] if fixed else candidates(n_cores or cores())
        self.count = fixed or min(start or torch.get_num_threads(), self.candidates[-1])
        self.measured: dict[int, float] = {}
        """The latest trial's seconds per unit, by thread count."""
        self.why = "given" if fixed else "torch's default, before the first trial"
        self.trials = 0
        self._plan: list[int | None] = []  # the counts a trial still runs (None: a warm-up)
        self._times: dict[int, list[float]] = {}
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._slow = 0
        self._since = 0.0
        if len(self.candidates) > 1:
            self._start(warm_up=True)
        torch.set_num_threads(self.count)

    @property
    def trying(self) -> bool:
        return bool(self._plan)

    def _start(self, warm_up: bool = False) -> None:
        """A trial: each candidate in turn, TRIAL_UNITS times, interleaved so that a change
        of load during it falls on every candidate (after one unit of warm-up at the start)."""
        self._plan = ([None] if warm_up else []) + self.candidates * TRIAL_UNITS
        self._times = {c: [] for c in self.candidates}

    def before(self) -> None:
        """Set torch's thread count for the next unit."""
        if self._plan and self._plan[0] is not None:
            torch.set_num_threads(self._plan[0])
        else:
            torch.set_num_threads(self.count)

    def after(self, seconds: float) -> str | None:
        """Count a unit that took ``seconds``; returns a line to show when a trial ends
        (the count chosen and why) or starts again (why), else None."""
        if len(self.candidates) == 1:  # given, or one core: nothing to choose
            return None
        if self._plan:
            c = self._plan.pop(0)
            if c is not None:
                self._times[c].append(seconds)
            if self._plan and self._clear():
                self._plan = []
            return self._decide() if not self._plan else None
        self._recent.append(seconds)
        self._since += seconds
        median = statistics.median(self._recent)
        self._slow = self._slow + 1 if len(self._recent) >= 4 and seconds > SLOW * median else 0
        if self._slow >= SLOW_IN_A_ROW:
            self._start()
            return (f"threads: a {self.what} took {seconds * 1e3:,.0f} ms, the recent ones "
                    f"{median * 1e3:,.0f} ms: timing the thread counts again")  # fmt: skip
        if self._since >= RECHECK_S:
            self._start()
        return None

    def _clear(self) -> bool:
        """Whether a round is complete and one count clearly fastest."""
        times = [min(t) for t in self._times.values() if t]
        if len(times) < len(self._times) or len({len(t) for t in self._times.values()}) > 1:
            return False
        best = min(times)
        return all(t >= CLEAR * best for t in times if t != best) and times.count(best) == 1

    def _decide(self) -> str:
        self.measured = {c: min(t) for c, t in self._times.items() if t}
        best = min(self.measured, key=self.measured.get)
        was, self.count = self.count, best
        self.trials += 1
        self._recent.clear()
        self._slow, self._since = 0, 0.0
        torch.set_num_threads(best)
        times = ", ".join(f"{c} thread{'s' * (c > 1)} {s * 1e3:,.0f} ms"
                          for c, s in sorted(self.measured.items()))  # fmt: skip
        self.why = f"fastest of {times} a {self.what}"
        changed = "" if best == was else f" (was {was})"
        return f"threads: {best}{changed}, the fastest {self.what}: {times}"

    def summary(self) -> dict:
        """What summary.json keeps: the count, why, what the latest trial measured."""
        return {
            "count": self.count,
            "why": self.why,
            "trials": self.trials,
            "seconds_per_unit": {str(c): s for c, s in sorted(self.measured.items())},
        }
