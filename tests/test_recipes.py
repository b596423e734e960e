"""The recipe for a budget: picked from the measured table, scaled by this machine's speed
(a short probe, robust to a busy moment); the run keeps the budget it was given and says
why it took that recipe."""

from __future__ import annotations

import itertools

import pytest

from wordgpt.presets import PRESETS, PROBE, RECIPES
from wordgpt.training import speed
from wordgpt.training.speed import pick_recipe
from wordgpt.use.train_run import train

SPEED = PROBE["tokens_per_s"]


def test_every_row_of_the_table_is_a_preset():
    assert all(p in PRESETS for p in RECIPES.values())
    assert {k for k, _ in RECIPES} == {"word", "char"}


@pytest.mark.parametrize(
    "tokens, budget, speed_, expected",
    [
        ("word", 300, SPEED, RECIPES[("word", 300)]),
        ("word", 60, SPEED, RECIPES[("word", 60)]),
        ("word", 450, 2 * SPEED, RECIPES[("word", 900)]),  # twice as fast: 900 s there
        ("word", 900, SPEED / 3, RECIPES[("word", 300)]),  # a third as fast: 300 s there
        ("word", 10_000, SPEED, RECIPES[("word", 3600)]),
        ("char", 1000, SPEED, RECIPES[("char", 900)]),
        ("bpe", 60, SPEED, RECIPES[("word", 60)]),  # BPE takes the word rows
    ],
)
def test_a_probes_speed_picks_the_expected_row(tokens, budget, speed_, expected):
    pick = pick_recipe(tokens, budget, speed_)
    assert pick.preset == expected and f"recipe {pick.preset}" in pick.why


@pytest.mark.parametrize(
    "steps, expected",
    [
        ([1.0], RECIPES[("word", 60)]),  # a slow machine (1,024 tokens a second): 60 s there
        ([8.0, 1024 / (2 * SPEED)], RECIPES[("word", 900)]),  # busy at times: its best step
    ],
    ids=["slow", "busy"],
)
def test_a_slow_or_busy_machine_gets_its_recipe_and_keeps_its_budget(
    steps, expected, word_data, tmp_path, monkeypatch, capsys
):
    """The probe keeps the fastest step (a busy moment does not make the machine slow);
    whatever recipe it picks, the run keeps the budget it was given, and says why."""
    from wordgpt.cli import main

    times = itertools.cycle(steps)
    monkeypatch.setattr(speed, "step_seconds", lambda model, x: next(times))
    monkeypatch.setattr(speed, "PROBE_SECONDS", 0.0)
    plan = train(word_data, tmp_path / "r", dry_run=True, time_budget=450)
    assert plan.preset == expected and plan.train.stop.time_budget == 450  # not the preset's
    main(["train", "--data", str(word_data), "--out", str(tmp_path / "r"), "--time-budget", "450",
          "--dry-run"])  # fmt: skip
    out = capsys.readouterr().out
    rate = 1024 / min(steps)
    assert f"450 s budget for word tokens; this machine: {rate:,.0f} tokens/s" in out
    assert f"recipe {expected}" in out and "450 s or" in out


def test_on_a_slow_machine_the_picked_recipe_still_warms_up_and_decays(word_data, tmp_path):
    """The picked recipes count their warm-up and decay in fractions of the run, so a machine
    that makes a handful of steps still gets both (the step counts are the trainer's
    tests)."""
    for name in set(RECIPES.values()):
        plan = train(word_data, tmp_path / "r", name, dry_run=True)
        optim = plan.train.optim
        assert 0 < optim.warmup < 0.5 and optim.warmup + optim.decay_frac < 1.0, name


def test_the_probe_measures_a_positive_speed():
    assert speed.probe_speed(seconds=0.0).tokens_per_s > 100


def test_the_probe_times_each_thread_count_and_keeps_the_fastest(monkeypatch):
    """Beside a busy process one thread outruns two: the probe says so, and leaves torch's
    thread count as it found it."""
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(speed, "cores", lambda: 2)
    monkeypatch.setattr(speed, "step_seconds",
                        lambda model, x: {1: 0.2, 2: 0.5}[torch.get_num_threads()])  # fmt: skip
    torch.set_num_threads(2)
    s = speed.probe_speed(seconds=0.0)
    assert s.threads == 1 and s.tokens_per_s == 1024 / 0.2 and set(s.by_threads) == {1, 2}
    assert torch.get_num_threads() == 2
    assert "with 1 thread," in pick_recipe("word", 300, s).why


def test_a_busy_machine_says_so_and_which_recipe_it_would_train_quiet(monkeypatch):
    """The probe once read three times today's speed on this machine, quiet: today's reading
    picks today's recipe, and the line says the machine is busy and what it would train."""
    from wordgpt.model.device import ProbeCache, machine_key

    monkeypatch.setattr(speed, "step_seconds", lambda model, x: 1024 / (SPEED / 3))
    ProbeCache("speed-probe").put(f"{machine_key(threads=False)} | cpu", SPEED)
    s = speed.probe_speed(device="cpu", seconds=0.0)
    assert s.busy and s.quiet_best == SPEED
    pick = pick_recipe("word", 900, s)
    assert pick.preset == RECIPES[("word", 300)]  # the speed it has now
    assert (
        "this machine is busy" in pick.why and f"train recipe {RECIPES[('word', 900)]}" in pick.why
    )
    quiet = pick_recipe("word", 900, speed.Speed(SPEED, quiet_best=SPEED))
    assert "busy" not in quiet.why and quiet.preset == RECIPES[("word", 900)]


@pytest.mark.parametrize("share, busy", [(0.55, True), (0.66, True), (0.88, False)])
def test_one_busy_process_on_two_cores_reads_busy_and_a_quiet_machines_noise_does_not(share, busy):
    """Beside one busy process a 2-core machine's probe read 0.55 and 0.66 of its quiet best
    (two runs); quiet readings differ by up to a tenth."""
    assert speed.Speed(share * SPEED, quiet_best=SPEED).busy is busy
