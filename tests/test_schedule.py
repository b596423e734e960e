"""The learning-rate schedule as a run sees it: warm-up and decay as fractions of the run
(steps, seconds or passes, whichever is furthest), a decay branched off at a plateau, and a
pass cap that ends the run and its schedule."""

from __future__ import annotations

import math

import pytest

from wordgpt.config import OptimConfig
from wordgpt.errors import WordGPTError
from wordgpt.training.optim import lr_at
from wordgpt.training.train import fit
from wordgpt.use.train_run import train

from .helpers import OnStep, Records, make_trainer


def test_the_cosine_schedule_reaches_its_floor_at_max_iters(word_data):
    """By steps, the fraction warm-up is nanoGPT's: 5 warm-up steps of 25 at warmup 0.2."""
    t = make_trainer(word_data, lr=1.0, min_lr_ratio=0.1, warmup=0.2, max_iters=25)
    lrs = []
    fit(t, Records(), progress=OnStep(lambda r: lrs.append(r.lr)))
    assert len(lrs) == 25 and lrs[0] == pytest.approx(0.2) and lrs[4] == pytest.approx(1.0)
    # step i runs at the progress its end reaches, (i + 1) / 25: step 15 is 55 % down
    assert lrs[15] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.55)))
    assert lrs[24] == pytest.approx(0.1) and t.lr() == pytest.approx(0.1)


def test_the_decay_branches_off_when_the_val_loss_stops_improving(word_data):
    """A scripted val curve: best at step 20, then two evaluations without improvement: the
    decay starts at step 40 (4 % of the run), lasts as long again (decay_frac 0.5 of the run
    so far) to the floor at step 80, and the run ends there, "decayed"."""
    t = make_trainer(
        word_data,
        lr=1.0,
        min_lr_ratio=0.1,
        warmup=0.0,
        decay="wsd",
        decay_frac=0.5,
        decay_on_plateau=2,
        eval_interval=10,
        max_iters=1000,
    )
    vals = iter([5.0, 4.0, 3.0, 3.1, 3.2, 2.9, 2.8, 2.7, 2.6, 2.5])
    t.estimate_loss = lambda: {"train": 1.0, "val": next(vals)}
    lrs = []
    assert fit(t, Records(), progress=OnStep(lambda r: lrs.append(r.lr))) == "decayed"
    assert t.state.step == 80 and (t.state.decay_start, t.state.decay_end) == (0.04, 0.08)
    assert lrs[:40] == [1.0] * 40  # stable until the plateau is seen at step 40
    # step i runs at the progress its end reaches, (i + 1) / 1000
    assert lrs[40] == pytest.approx(1.0 - 0.9 / 40) and lrs[60] == pytest.approx(0.5275)
    assert lrs[79] == pytest.approx(0.1)


def test_a_plateau_after_the_planned_decay_has_begun_changes_nothing(word_data):
    t = make_trainer(word_data, decay="wsd", decay_frac=0.5, decay_on_plateau=1, max_iters=20,
                     eval_interval=2, lr=1.0, warmup=0.0)  # fmt: skip
    t.estimate_loss = lambda: {"train": 1.0, "val": 3.0}  # never better after the first
    assert fit(t, Records()) == "decayed" and t.state.step == 4  # plateau at 10 %: 10 % more
    assert (t.state.decay_start, t.state.decay_end) == (0.1, 0.2)
    late = make_trainer(word_data, decay="wsd", decay_frac=0.5, decay_on_plateau=1,
                        max_iters=20, eval_interval=12, lr=1.0, warmup=0.0)  # fmt: skip
    late.estimate_loss = lambda: {"train": 1.0, "val": 3.0}
    assert fit(late, Records()) == "max_iters" and late.state.decay_start == -1.0


def test_epochs_end_the_run_and_the_schedule_after_that_many_passes(word_data):
    """epochs=0.5: the run stops ("epochs") at the first step whose tokens reach half the
    training split, and its WSD decay (the last half of the run) ends there at the floor,
    while max_iters (1,000) is far away."""
    t = make_trainer(word_data, epochs=0.5, max_iters=1000, decay="wsd", decay_frac=0.5,
                     lr=1.0, min_lr_ratio=0.1, eval_interval=1000)  # fmt: skip
    n, per_step = len(t.splits["train"]), 8 * 16
    lrs = []
    assert fit(t, Records(), progress=OnStep(lambda r: lrs.append(r.lr))) == "epochs"
    assert t.state.step == math.ceil(0.5 * n / per_step) and t.state.tokens >= 0.5 * n
    assert t.epochs_done() == pytest.approx(t.state.tokens / n)
    half = math.ceil(0.25 * n / per_step)  # progress 0.5: the decay begins
    assert lrs[: half - 1] == [1.0] * (half - 1)
    last = (t.state.step - 1) * per_step / (0.5 * n)  # the progress before the last step
    assert lrs[-1] == pytest.approx(1.0 - 0.9 * (last - 0.5) / 0.5) and last > 0.95
    assert t.cfg.stop.max_iters > 10 * t.state.step


def test_epochs_0_lifts_a_presets_cap_and_a_negative_one_is_refused(word_data, tmp_path):
    from wordgpt.config import StopConfig

    assert train(word_data, tmp_path / "r", "cpu", dry_run=True).train.stop.epochs == 4.0
    plan = train(word_data, tmp_path / "r", "cpu", dry_run=True, epochs=0)
    assert plan.train.stop.epochs == 0
    t = make_trainer(word_data, epochs=0, max_iters=3, eval_interval=1000)
    assert fit(t, Records()) == "max_iters" and t.progress() == 1.0
    with pytest.raises(WordGPTError, match="epochs must be >= 0"):
        StopConfig(epochs=-1.0)


def test_the_schedule_warms_up_then_decays_to_the_floor():
    cfg = OptimConfig(lr=1.0, warmup=0.1, decay="cosine", min_lr_ratio=0.1)
    assert lr_at(0.01, cfg) == pytest.approx(0.1)
    assert lr_at(0.1, cfg) == pytest.approx(1.0)
    assert lr_at(0.55, cfg) == pytest.approx(0.55)  # half-way down the cosine
    assert lr_at(1.0, cfg) == pytest.approx(0.1)
    wsd = OptimConfig(lr=1.0, warmup=0.0, decay="wsd", decay_frac=0.2, min_lr_ratio=0.0)
    assert lr_at(0.5, wsd) == 1.0 and lr_at(0.9, wsd) == pytest.approx(0.5)
    assert lr_at(0.5, wsd, branch=(0.4, 0.6)) == pytest.approx(0.5)  # decay from a plateau
