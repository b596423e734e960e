"""The thread count chosen by measurement (model/threads.py): a trial times each candidate
on real units of work and keeps the fastest, units turned slow time them again, a count given
is kept; and the training loop, evaluation and sampling run under it."""

from __future__ import annotations

import torch

from wordgpt.model.threads import RECHECK_S, Threads, candidates, given_threads


def feed(t: Threads, seconds_of) -> list[str]:
    """Run a trial to its end: each unit takes ``seconds_of(thread count)``."""
    said = []
    while t.trying:
        t.before()
        said.append(t.after(seconds_of(torch.get_num_threads())))
    return [s for s in said if s]


def test_the_candidates_are_one_and_doublings_up_to_the_cores():
    assert candidates(1) == [1] and candidates(2) == [1, 2] and candidates(6) == [1, 2, 4, 6]


def test_a_trial_times_each_count_on_real_units_and_keeps_the_fastest():
    torch.set_num_threads(2)  # torch's default on two cores
    t = Threads(n_cores=2)
    assert t.trying
    said = feed(t, {1: 0.08, 2: 0.13}.get)  # beside a busy process: one thread wins
    assert t.count == 1 and torch.get_num_threads() == 1 and not t.trying
    assert said == ["threads: 1 (was 2), the fastest step: 1 thread 80 ms, 2 threads 130 ms"]
    assert t.summary() == {"count": 1, "why": "fastest of 1 thread 80 ms, 2 threads 130 ms a step",
                           "trials": 1, "seconds_per_unit": {"1": 0.08, "2": 0.13}}  # fmt: skip


def test_a_round_with_a_clear_winner_ends_the_trial_early():
    """Two threads 1.6x slower after one unit of each: no second round (it would cost one
    more unit at the slower count); a close round goes on."""
    t = Threads(n_cores=2)
    units = []
    feed(t, lambda c: units.append(c) or {1: 0.08, 2: 0.13}[c])
    assert units == [1, 1, 2] and t.count == 1  # the warm-up, then one unit each
    close = Threads(n_cores=2)
    units = []
    feed(close, lambda c: units.append(c) or {1: 0.10, 2: 0.11}[c])
    assert units == [1, 1, 2, 1, 2] and close.count == 1


def test_steps_turned_slow_time_the_counts_again_and_the_choice_follows_the_load():
    """Quiet: two threads win. Then another process takes a core: steps of two threads take
    three times as long; two slow steps in a row start a trial, and one thread wins it."""
    t = Threads(n_cores=2)
    feed(t, {1: 0.10, 2: 0.06}.get)
    assert t.count == 2
    for _ in range(8):
        t.before()
        assert t.after(0.06) is None and not t.trying
    t.before()
    assert t.after(0.18) is None  # one slow step is noise
    t.before()
    said = t.after(0.18)
    assert t.trying and "took 180 ms, the recent ones 60 ms" in said
    feed(t, {1: 0.10, 2: 0.18}.get)
    assert t.count == 1 and t.trials == 2


def test_a_trial_runs_again_after_a_while_in_case_the_machine_became_quiet():
    t = Threads(n_cores=2)
    feed(t, {1: 0.1, 2: 0.2}.get)
    n = int(RECHECK_S / 0.1) + 1
    for _ in range(n):
        t.before()
        t.after(0.1)
    assert t.trying


def test_a_count_given_is_kept_and_the_environment_counts_as_given(monkeypatch):
    t = Threads(fixed=3, n_cores=8)
    assert not t.trying and t.count == 3 and t.candidates == [3]
    t.before()
    assert torch.get_num_threads() == 3
    assert all(t.after(s) is None for s in [1.0] * 10 + [5.0] * 3)  # slow steps: no trial
    assert not t.trying and t.summary()["why"] == "given"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    assert given_threads() is None and given_threads(2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert given_threads() == 1


def test_the_training_loop_times_its_steps_with_each_count(word_data, monkeypatch):
    """Unfixed (no OMP_NUM_THREADS), the loop's first steps are the trial: a warm-up, then
    one and two threads in turn; the summary says what was measured."""
    from wordgpt.model import threads as threads_mod
    from wordgpt.training.train import fit

    from .helpers import Records, make_trainer

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_mod, "CLEAR", float("inf"))  # the whole trial, whatever it reads
    counts = []
    t = make_trainer(word_data, max_iters=8, eval_interval=100)
    threads = Threads(n_cores=2)
    real = threads.before

    def before():
        real()
        counts.append(torch.get_num_threads())

    monkeypatch.setattr(threads, "before", before)
    fit(t, Records(), threads=threads)
    assert counts[1:5] == [1, 2, 1, 2]  # after a warm-up step
    assert threads.trials == 1 and set(threads.summary()["seconds_per_unit"]) == {"1", "2"}
    assert counts[5:] == [threads.count] * 3


def test_the_run_says_its_thread_count_and_why_in_summary_json(run):
    """The suite fixes one thread (OMP_NUM_THREADS=1): the run says it was given."""
    import json

    threads = json.loads((run / "summary.json").read_text())["threads"]
    assert threads["count"] == 1 and threads["why"] == "given" and threads["trials"] == 0


def test_evaluation_and_sampling_time_their_batches_and_tokens(run, monkeypatch):
    """Unfixed, a loaded run's evaluation times its batches and its sampling its tokens, each
    loop choosing its own count."""
    import wordgpt
    from wordgpt.model import threads as threads_mod

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    made = []
    real = threads_mod.Threads.__init__

    def init(self, *a, **kw):
        real(self, *a, **kw)
        made.append(self)

    monkeypatch.setattr(threads_mod.Threads, "__init__", init)
    monkeypatch.setattr(threads_mod, "cores", lambda: 2)
    m = wordgpt.load(run, device="cpu")
    m.evaluate("val", batch_size=2)
    m.generate("the", max_new_tokens=12, seed=1)
    batch, token = made
    assert (batch.what, token.what) == ("batch", "token")
    # timed at least once each (a loop that meets a slow step measures again: on a machine
    # shared with other work that may happen here too)
    assert batch.trials >= 1 and token.trials >= 1 and set(token.measured) == {1, 2}
    assert wordgpt.load(run, device="cpu", threads=1).thread_choice("batch").fixed == 1


def test_training_starts_with_the_count_the_probe_found_fastest(word_data, tmp_path, monkeypatch):
    """Beside a busy process the probe finds one thread fastest: the run's first evaluation
    and steps use one thread before its own trial says more."""
    from wordgpt.training import speed
    from wordgpt.training.train import Threads as UsedThreads
    from wordgpt.use.train_run import train

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(speed, "probe_speed", lambda device="auto", threads=None: speed.Speed(
        2000.0, threads=1, by_threads={1: 2000.0, 2: 1200.0}))  # fmt: skip
    plan = train(word_data, tmp_path / "r", dry_run=True, time_budget=60)
    assert plan.probe_threads == 1
    torch.set_num_threads(2)
    assert UsedThreads(None, n_cores=2, start=plan.probe_threads).count == 1
    assert torch.get_num_threads() == 1
