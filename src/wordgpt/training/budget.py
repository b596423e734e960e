"""The time budget of a ``train`` command, in one object.

``--time-budget T`` is the wall time of the whole command, from its start to its last line:
set-up, training, evaluations and checkpoints, further members, the n-gram partner's fit and
the report. :class:`Budget` owns everything about it: what has been spent (across the
trainings of a resumed run), what the end of the run keeps back (a last evaluation, the
partner's held-out slice and the report's whole val split, at the speed measured by the
evaluations on the way), and from those the decisions: when training stops, how many
evaluations the run can afford, whether a further member has time, and when the report must
be done. The trainer keeps steps, state and estimates; it asks the budget about time.

Under several processes the decisions follow ``elapsed`` and ``reserve``, which every rank
takes from rank 0 (see :meth:`Budget.measure_eval` and the trainer's step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

EVAL_SHARE = 0.1
"""With a time budget, evaluations take at most this share of it (they are spread out)."""
REPORT_SHARE = 0.25
"""A time budget keeps at most this share for the report's evaluation of the whole val
split; a split that would take longer is left out of a budgeted run's report."""
FINISH_SLACK_S = 3.0
"""Seconds a budget keeps for the end beyond what was measured (the report's samples,
loading the model again, summary.json); a budgeted run ends within about this much of it."""
QUIET_FINISH_S = 0.5
"""The same for a run that writes no report (a further member)."""
PARTNER_SHARE = 0.1
"""The n-gram partner's weight is fitted in at most this share of a budget: on a sample of
the held-out slice (its start) when the whole would take longer at the measured speed."""
MIN_FIT_TOKENS = 2_000
"""The fewest held-out tokens the partner's weight is fitted on, whatever the budget."""
MEMBER_SHARE = 0.5
"""A further member starts only with at least this share of the first model's wall time left
(then it trains for the time left, its schedule following its own budget)."""


class Budget:
    """A command's wall time: ``seconds`` (None: no limit) counted on ``clock`` from
    ``started`` (a reading of it; default now). ``report``: the command ends with the
    report's evaluation of the whole val split, which the budget keeps time for."""

    def __init__(
        self,
        seconds: float | None,
        clock: Callable[[], float] = time.perf_counter,
        started: float | None = None,
        report: bool = False,
    ):
        self.seconds, self.clock, self.report = seconds, clock, report
        self.started = clock() if started is None else started
        self.before = 0.0
        """Seconds that earlier trainings of a resumed run spent."""
        self.elapsed = 0.0
        """The run's wall seconds at its latest step, as every rank agreed (rank 0's)."""
        self.eval_cost = 0.0
        """Seconds the latest evaluation took, with its checkpoints (rank 0's clock)."""
        self.reserve = 0.0
        """Seconds kept back for the end of the run: a last evaluation, then the partner's
        slice and the report's split at the measured evaluation speed, and the slack."""
        self.eval_speed = 0.0
        """Tokens per second of the latest evaluation (rank 0's): what the end's are timed at."""
        self.partner_tokens = 0
        """The held-out tokens the partner's weight could be fitted on (0: no partner)."""
        self.val_tokens = 0
        """The tokens of the report's whole-split evaluation (0: no report)."""
        self.counting = 0.0
        """Seconds the end spends counting n-grams (the partner's, twice: to fit, to use)."""
        self.slack = 0.0
        """Seconds kept for the end beyond what is measured (see :meth:`expect_end`)."""

    # ------------------------------------------------------------ what has been spent

    def spent(self, now: float | None = None) -> float:
        """The run's wall seconds so far (at the clock reading ``now``; default now),
        earlier trainings of a resumed run included."""
        return self.before + (self.clock() if now is None else now) - self.started

    def left(self) -> float:
        """Seconds of the budget still to spend (infinite without one)."""
        return math.inf if self.seconds is None else self.seconds - self.spent()

    def deadline(self) -> float | None:
        """When the run must be done, as a ``time.perf_counter()`` reading (what the report
        compares with); None without a budget."""
        if self.seconds is None:
            return None
        return time.perf_counter() + max(self.left(), 0.0)

    # ------------------------------------------------------------ what the end keeps back

    def expect_end(self, partner_tokens: int, val_tokens: int, counting: float = 0.0) -> None:
        """Say what the end of the run will do: fit the partner's weight on (at most)
        ``partner_tokens`` held-out tokens, evaluate the ``val_tokens`` of the val split when
        the command ends with a report, and count n-grams for ``counting`` seconds; and keep
        slack for what is not measured (the report's samples, loading the run again,
        summary.json)."""
        self.partner_tokens = partner_tokens
        self.val_tokens = val_tokens if self.report else 0
        self.counting = counting
        self.slack = FINISH_SLACK_S if self.report else QUIET_FINISH_S

    def measure_eval(self, seconds: float, tokens: int, sync) -> None:
        """Keep what an evaluation of ``tokens`` tokens took (``seconds``, with its
        checkpoints) and, from its speed, what the end of the run will take; ``sync`` is the
        collective (:meth:`.distributed.Dist.sync`) by which every rank takes rank 0's
        measure."""
        speed = tokens / max(seconds, 1e-9)
        report = self.val_tokens / speed
        if self.seconds and report > REPORT_SHARE * self.seconds:
            report = 0.0  # the report leaves the whole-split evaluation out (it says so)
        partner = self.fit_tokens(speed) / speed
        reserve = seconds + partner + report + self.counting + self.slack
        self.eval_cost, self.reserve, self.eval_speed = sync([seconds, reserve, speed],
                                                             ["rank0"] * 3)  # fmt: skip

    def fit_tokens(self, speed: float | None = None) -> int:
        """How many held-out tokens the partner's weight is fitted on: all of them, or what
        PARTNER_SHARE of the budget holds at ``speed`` (default: the measured one), and at
        least MIN_FIT_TOKENS."""
        speed = speed or self.eval_speed
        if not self.partner_tokens or not self.seconds or not speed:
            return self.partner_tokens
        fits = int(PARTNER_SHARE * self.seconds * speed)
        return min(self.partner_tokens, max(fits, MIN_FIT_TOKENS))

    # ------------------------------------------------------------ decisions

    def train_until(self) -> float:
        """The seconds that training may use: the budget less what the end of the run will
        take (at most half of it)."""
        if self.seconds is None:
            return math.inf
        return max(self.seconds - self.reserve, 0.5 * self.seconds)

    def fraction(self) -> float:
        """How much of its training time the run has used (0 without a budget)."""
        return 0.0 if self.seconds is None else self.elapsed / self.train_until()

    def over(self) -> bool:
        """Whether training must stop: its time is used (a function of agreed values)."""
        return self.seconds is not None and self.elapsed >= self.train_until()

    def evaluations(self, points: int, every_s: float, passes_may_end: bool) -> int:
        """How many evaluations a run spaced by its progress gets: ``points``, and one every
        ``every_s`` seconds of a budget (unless a pass cap may end the run long before it);
        fewer when, as measured, they would take more than EVAL_SHARE of the budget."""
        k = points
        if self.seconds and not passes_may_end:
            k = max(k, math.ceil(self.seconds / every_s))
        if self.seconds and self.eval_cost > 0:
            k = min(k, max(1, int(EVAL_SHARE * self.seconds / self.eval_cost)))
        return k

    def member_time(self, models: int, first_took: float) -> float | None:
        """The seconds a further member may train, when the run holds ``models`` models and
        the first took ``first_took`` seconds; None when there is no time for one (the end
        of the run then evaluates one more model)."""
        if self.seconds is None:
            return None
        left = self.left() - (models + 1) * self.reserve
        return left if left >= MEMBER_SHARE * first_took else None

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, float]:
        return {"elapsed": self.elapsed, "eval_cost": self.eval_cost, "reserve": self.reserve,
                "eval_speed": self.eval_speed}  # fmt: skip

    def load_state_dict(self, d: dict) -> None:
        """A resumed run's time: what its earlier trainings spent counts against the budget."""
        self.elapsed = self.before = float(d.get("elapsed", 0.0))
        self.eval_cost = float(d.get("eval_cost", 0.0))
        self.reserve = float(d.get("reserve", 0.0))
        self.eval_speed = float(d.get("eval_speed", 0.0))
