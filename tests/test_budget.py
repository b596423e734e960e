"""The run's time budget (training/budget.py): what has been spent across resumes, what the
end of the run keeps back, and the decisions taken from them; and the loop under a budget on a
fake clock: the schedule follows the wall time, evaluations are spaced and bounded."""

from __future__ import annotations

import pytest

import wordgpt
from wordgpt.training.budget import FINISH_SLACK_S, QUIET_FINISH_S, REPORT_SHARE, Budget
from wordgpt.training.distributed import Dist
from wordgpt.training.train import fit
from wordgpt.use.train_run import train

from .helpers import FAST, FakeClock, OnStep, Records, make_trainer


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def budget(seconds=60.0, report=False, **kw) -> tuple[Budget, Clock]:
    clock = Clock()
    return Budget(seconds, clock, **kw, report=report), clock


def test_what_is_spent_counts_from_the_commands_start_and_across_resumes():
    b, clock = budget(60.0, started=90.0)  # the command began 10 s before the budget was made
    assert b.spent() == 10.0 and b.left() == 50.0
    state = {"elapsed": 30.0, "eval_cost": 1.0, "reserve": 2.0, "eval_speed": 500.0}
    b.load_state_dict(state)  # a resumed run
    clock.t += 5.0
    assert b.spent() == 45.0 and b.left() == 15.0 and b.spent(now=100.0) == 40.0
    assert b.state_dict() == state
    assert Budget(None, clock).left() == float("inf")


def test_the_reports_deadline_is_what_the_budget_has_left_across_resumes():
    """A 60 s budget of which earlier trainings used 50: the report has the 10 s left, not
    60; no budget, no deadline."""
    import time

    b, _ = budget(60.0, started=100.0)
    b.load_state_dict({"elapsed": 50.0})
    left = b.deadline() - time.perf_counter()
    assert 9 < left <= 10
    assert Budget(None).deadline() is None
    over, _ = budget(60.0, started=0.0)  # 100 s spent of 60: the deadline is now
    assert over.deadline() - time.perf_counter() <= 0


def test_the_end_keeps_a_last_evaluation_the_partners_slice_the_report_and_slack():
    """An evaluation of 1,000 tokens in 2 s: the end keeps one more (2 s), the partner's
    500 tokens and the report's 4,000 at that speed (9 s), and the slack."""
    b, _ = budget(600.0, report=True)
    b.expect_end(partner_tokens=500, val_tokens=4000)
    b.measure_eval(2.0, 1000, Dist().sync)
    assert b.eval_cost == 2.0 and b.reserve == 2.0 + 9.0 + FINISH_SLACK_S
    assert b.train_until() == 600.0 - b.reserve
    quiet, _ = budget(600.0)  # no report: only the partner's slice, and less slack
    quiet.expect_end(partner_tokens=500, val_tokens=4000)
    quiet.measure_eval(2.0, 1000, Dist().sync)
    assert quiet.reserve == 2.0 + 1.0 + QUIET_FINISH_S


def test_a_report_too_long_for_the_budget_is_not_kept_for_and_training_keeps_half():
    b, _ = budget(100.0, report=True)
    b.expect_end(partner_tokens=0, val_tokens=10**6)  # 2,000 s at this speed
    b.measure_eval(2.0, 1000, Dist().sync)
    assert b.reserve == 2.0 + FINISH_SLACK_S  # left out of the report, which says so
    assert REPORT_SHARE * 100 < 2000
    b.reserve = 90.0  # whatever the end would take, training keeps half the budget
    assert b.train_until() == 50.0


def test_training_is_over_by_the_agreed_time_not_the_local_clock():
    b, clock = budget(10.0)
    clock.t += 1000.0  # this rank's clock: far past the budget
    assert not b.over() and b.fraction() == 0.0
    b.elapsed = 5.0  # what the ranks agreed at the latest step
    assert not b.over() and b.fraction() == 0.5
    b.elapsed = 10.0
    assert b.over()
    assert not Budget(None).over() and Budget(None).fraction() == 0.0


def test_evaluations_are_spread_and_capped_by_their_measured_cost():
    b, _ = budget(300.0)
    assert b.evaluations(20, 30.0, passes_may_end=False) == 20  # 300 / 30 = 10 < 20 points
    assert budget(3000.0)[0].evaluations(20, 30.0, passes_may_end=False) == 100
    assert budget(3000.0)[0].evaluations(20, 30.0, passes_may_end=True) == 20
    b.eval_cost = 3.0  # a tenth of 300 s holds 10 evaluations of 3 s
    assert b.evaluations(20, 30.0, passes_may_end=False) == 10
    b.eval_cost = 1000.0
    assert b.evaluations(20, 30.0, passes_may_end=False) == 1
    assert Budget(None).evaluations(20, 30.0, passes_may_end=False) == 20


def test_a_further_member_needs_half_the_first_models_time_after_the_end_is_kept():
    b, clock = budget(300.0, started=100.0)
    b.reserve = 10.0
    clock.t += 100.0  # the first model took 100 s: 200 s left
    assert b.member_time(1, first_took=100.0) == 200.0 - 2 * 10.0
    clock.t += 100.0  # 100 s left, of which 3 evaluations of the end: 70 s >= 50
    assert b.member_time(2, first_took=100.0) == 70.0
    clock.t += 30.0  # 70 - 30 = 40 s < half of 100
    assert b.member_time(2, first_took=100.0) is None
    assert Budget(None).member_time(1, first_took=1.0) is None


def test_the_schedule_under_a_time_budget_follows_the_wall_clock(word_data):
    """50 s budget; the fake clock moves 0.25 s at every read, so a step (two reads) lasts
    0.5 s of wall time and the step-0 evaluation 0.25 s, which the budget keeps back for the
    last one (49.75 s to train). Warm-up over the first 20 % of that, WSD decaying over the
    last 40 %: fractions of the run, whatever the number of steps."""
    t = make_trainer(
        word_data,
        clock=FakeClock(0.25),
        lr=1.0,
        min_lr_ratio=0.1,
        warmup=0.2,
        decay="wsd",
        decay_frac=0.4,
        time_budget=50.0,
        max_iters=10_000,
        eval_interval=10_000,
    )
    lrs = []
    reason = fit(t, Records(), progress=OnStep(lambda r: lrs.append(r.lr)))
    assert reason == "time_budget" and t.budget.train_until() == 49.75
    assert t.state.step == 99 and t.budget.elapsed == 50.0  # 0.5 s + 99 steps of 0.5 s
    assert t.state.train_seconds == 99 * 0.25  # the steps alone: one tick each
    # before step i the run is at (0.5 + 0.5 i) / 49.75 of the budget
    assert lrs[18] < 1.0 and lrs[19] == 1.0  # warm-up ends at 9.95 s (20 %)
    assert lrs[10] == pytest.approx(5.5 / 49.75 / 0.2)
    assert lrs[58] == 1.0 and lrs[59] < 1.0  # stable until 29.85 s (60 %)
    assert lrs[79] == pytest.approx(1.0 - 0.9 * (40.0 / 49.75 - 0.6) / 0.4)
    assert lrs[98] == pytest.approx(1.0 - 0.9 * (49.5 / 49.75 - 0.6) / 0.4)  # near the floor


def test_on_a_slow_machine_the_warm_up_ends_and_the_decay_reaches_the_floor(word_data):
    """A machine so slow that a 45 s budget holds 9 steps (5 s each): the warm-up (12 % of
    the run) is over by the second step and the rate is near its floor at the last one."""
    t = make_trainer(word_data, clock=FakeClock(2.5), lr=1.0, min_lr_ratio=0.1, warmup=0.12,
                     decay="wsd", decay_frac=0.4, time_budget=45.0, max_iters=10_000,
                     eval_interval=10_000)  # fmt: skip
    lrs = []
    fit(t, Records(), progress=OnStep(lambda r: lrs.append(r.lr)))
    assert 6 <= len(lrs) <= 9
    assert max(lrs[:3]) == 1.0 and lrs[-1] < 0.3


def test_evaluations_follow_the_budget_unless_epochs_may_end_the_run_first(word_data):
    """100 s at 0.5 s a step: one evaluation every eval_seconds (10 s, about 20 steps, less
    the evaluations' own time) of the budget, 10 points and step 0; with epochs (not reached
    here) only eval_points (4)."""

    def evals(**kw):
        t = make_trainer(word_data, clock=FakeClock(0.25), time_budget=100.0, max_iters=10**6,
                         eval_seconds=10.0, eval_points=4, **kw)  # fmt: skip
        t.estimate_loss = lambda: {"train": 1.0, "val": 1.0}
        rec = Records()
        fit(t, rec)
        return [e.step for e in rec.evals]

    steps = evals()
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert len(steps) == 11 and all(18 <= g <= 21 for g in gaps)
    steps = evals(epochs=10**6)
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert len(steps) == 5 and all(45 <= g <= 52 for g in gaps)


def test_evaluations_take_a_bounded_share_of_a_budget(word_data):
    """Evaluations that cost as much as 10 steps each: a 100 s budget gets only as many as
    fit in a tenth of it, not the 20 that eval_points asks for."""

    class SlowEvalClock(FakeClock):
        slow = False

        def __call__(self):
            self.t += 2.5 if self.slow else self.tick
            return self.t

    clock = SlowEvalClock(0.25)
    t = make_trainer(word_data, clock=clock, time_budget=100.0, max_iters=10**6,
                     eval_points=20)  # fmt: skip

    def estimate():
        clock.slow = True
        clock()  # 2.5 s
        clock.slow = False
        return {"train": 1.0, "val": 1.0}

    t.estimate_loss = estimate
    rec = Records()
    fit(t, rec)
    spent = sum(1 for _ in rec.evals) * 3.0  # each evaluation: 2.5 s and two reads
    assert len(rec.evals) <= 5 and spent <= 0.15 * 100


def test_the_time_budget_stops_the_run(word_data, tmp_path):
    r = train(
        word_data,
        tmp_path,
        preset="tiny",
        max_iters=10**6,
        time_budget=1.5,
        eval_interval=10**5,
        **FAST,
    )
    assert r.stopped == "time_budget" and 0.75 <= r.elapsed_s <= 1.5 + 1.0


@pytest.fixture(scope="module")
def book_data(tmp_path_factory):
    """Don Quixote as space-prefixed words (a whole val split of 47,602 tokens)."""
    from .conftest import book_path

    if book_path() is None:
        pytest.skip("set WORDGPT_DATA_DIR to a folder with don_quixote.txt")
    out = tmp_path_factory.mktemp("dq")
    wordgpt.prepare(out, dataset="don-quixote", overwrite=True, progress=False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("busy", [False, True], ids=["quiet", "another-process-busy"])
def test_a_time_budget_is_the_wall_time_of_the_whole_command(book_data, tmp_path, busy):
    """`wordgpt train --time-budget 20` ends within 25 s of wall time, start-up, the final
    evaluation and the report included, also while another process keeps a core busy; what
    the report had no time for it names."""
    import subprocess
    import sys
    import time

    from .helpers import cli

    burner = None
    if busy:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        t = time.perf_counter()
        r = cli("train", "--data", book_data, "--out", tmp_path / "run", "--preset", "tiny",
                "--time-budget", "20", "--no-progress", timeout=120)  # fmt: skip
        wall = time.perf_counter() - t
    finally:
        if burner is not None:
            burner.kill()
    assert r.returncode == 0, r.stderr[-2000:]
    assert wall <= 25, f"{wall:.1f} s for a 20 s budget\n{r.stdout[-1500:]}{r.stderr[-1500:]}"
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "whole split" in report or "left out for the time budget" in report


def test_the_partners_fit_takes_a_bounded_share_and_is_kept_back_even_without_the_report():
    """200,000 held-out tokens at 1,000 tokens/s would take 200 s of a 100 s budget: the
    weight is fitted on what a tenth of it holds (10,000 tokens), and the end keeps those
    10 s back although the report's split is too long to keep time for."""
    from wordgpt.training.budget import MIN_FIT_TOKENS, PARTNER_SHARE

    b, _ = budget(100.0, report=True)
    b.expect_end(partner_tokens=200_000, val_tokens=10**6, counting=1.5)
    b.measure_eval(2.0, 2000, Dist().sync)
    assert b.eval_speed == 1000.0 and b.fit_tokens() == PARTNER_SHARE * 100 * 1000
    assert b.reserve == 2.0 + 10.0 + 1.5 + FINISH_SLACK_S  # no report's split, the partner's
    small, _ = budget(1.0)
    small.expect_end(partner_tokens=200_000, val_tokens=0)
    small.measure_eval(2.0, 2000, Dist().sync)
    assert small.fit_tokens() == MIN_FIT_TOKENS  # a weight is fitted on something
    few, _ = budget(100.0)
    few.expect_end(partner_tokens=500, val_tokens=0)
    few.measure_eval(2.0, 2000, Dist().sync)
    assert few.fit_tokens() == 500 and Budget(None).fit_tokens() == 0


def test_counting_the_partners_n_grams_is_timed_on_a_part_and_scaled():
    import numpy as np

    from wordgpt.training.holdout import counting_seconds

    tokens = np.random.default_rng(0).integers(0, 500, 200_000)
    assert 0 < counting_seconds(tokens[:20_000], 500, 3) < counting_seconds(tokens, 500, 3)


def test_a_resumed_run_says_how_much_of_its_budget_is_left(word_data, tmp_path, capsys):
    import json
    import re

    from wordgpt.use.train_run import train

    from .helpers import FAST

    train(word_data, tmp_path, preset="tiny", max_iters=3, time_budget=600, **FAST)
    spent = json.loads((tmp_path / "summary.json").read_text())["elapsed_s"]
    capsys.readouterr()
    train(word_data, tmp_path, resume=True, max_iters=5, **FAST)
    said = re.search(r"at step 3; ([\d,]+) s of its 600 s time budget left \(([\d,]+) s spent "
                     r"before\)", capsys.readouterr().out)  # fmt: skip
    assert said and int(said[2]) == round(spent) and int(said[1]) <= 600 - int(said[2])
