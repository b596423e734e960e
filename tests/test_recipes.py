"""The recipe for a budget: picked from the measured table, scaled by this machine's speed."""

from __future__ import annotations

import pytest

from wordgpt.config import PRESETS, PROBE, RECIPES
from wordgpt.training import recipes
from wordgpt.training.plan import plan_run
from wordgpt.training.recipes import pick_recipe

SPEED = PROBE["tokens_per_s"]


def test_every_row_of_the_table_is_a_preset():
    assert all(p in PRESETS for p in RECIPES.values())
    assert {k for k, _ in RECIPES} == {"word", "char"}


@pytest.mark.parametrize(
    "tokens, budget, speed, expected",
    [
        ("word", 300, SPEED, RECIPES[("word", 300)]),
        ("word", None, SPEED, RECIPES[("word", 300)]),  # no budget: 300 s
        ("word", 60, SPEED, RECIPES[("word", 60)]),
        ("word", 450, 2 * SPEED, RECIPES[("word", 900)]),  # twice as fast: 900 s there
        ("word", 900, SPEED / 3, RECIPES[("word", 300)]),  # a third as fast: 300 s there
        ("word", 10_000, SPEED, RECIPES[("word", 3600)]),
        ("char", 1000, SPEED, RECIPES[("char", 900)]),
        ("bpe", 60, SPEED, RECIPES[("word", 60)]),  # BPE takes the word rows
        ("word", -5, SPEED, RECIPES[("word", 300)]),  # refused later by the config, in words
        ("word", float("inf"), SPEED, RECIPES[("word", 300)]),
    ],
)
def test_a_probes_speed_picks_the_expected_row(tokens, budget, speed, expected):
    pick = pick_recipe(tokens, budget, speed)
    assert pick.preset == expected and pick.preset in pick.why


def test_dry_run_names_the_recipe_and_why(word_data, tmp_path, monkeypatch, capsys):
    from wordgpt.cli import main

    monkeypatch.setattr(recipes, "probe_speed", lambda device="auto": 2 * SPEED)
    plan = plan_run(word_data, tmp_path / "r", time_budget=450)
    assert plan.preset == RECIPES[("word", 900)] and plan.train.time_budget == 450
    main(["train", "--data", str(word_data), "--out", str(tmp_path / "r"), "--time-budget", "450",
          "--dry-run"])  # fmt: skip
    out = capsys.readouterr().out
    assert (
        f"preset {RECIPES[('word', 900)]}" in out
        and "2.00x as fast" in out
        and "900 s recipe" in out
    )
    train_tokens = plan.meta["splits"]["train"]["tokens"]  # the 900 s recipe caps the passes
    assert plan.train.epochs and f"{plan.train.epochs:g} passes" in out
    assert f"over the training split of {train_tokens:,} tokens" in out


def test_the_probe_measures_a_positive_speed():
    assert recipes.probe_speed() > 100
