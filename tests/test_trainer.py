"""The Trainer (training/trainer.py), each piece on its own: one step, accumulation, skipped
steps and divergence, frozen embeddings, the loss estimate, best and patience, the state a
resume needs, fp16's scaler and bf16, and collective decisions in one process (batches,
the schedule, the optimisers and the budget have files of their own)."""

from __future__ import annotations

import math

import pytest
import torch

from wordgpt.training.distributed import Dist
from wordgpt.training.train import fit
from wordgpt.training.trainer import DivergedError, TrainState

from .helpers import Records, make_trainer

CPU = torch.device("cpu")


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# ------------------------------------------------------------------ one step


def test_accumulating_two_half_batches_gives_the_gradient_of_one_full_batch(word_data):
    """Stated tolerance: 1e-6 absolute and 1e-4 relative, fp32 summation order."""
    full = make_trainer(word_data, batch_size=8, grad_accum=1)
    half = make_trainer(word_data, batch_size=4, grad_accum=2)
    la, lb = full.accumulate(), half.accumulate()
    assert la == pytest.approx(lb, rel=1e-5)
    ga, gb = grads(full.model), grads(half.model)
    assert ga.keys() == gb.keys()
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], rtol=1e-4, atol=1e-6, msg=k)


def test_a_step_applies_the_update_and_counts(word_data):
    t = make_trainer(word_data)
    before = [p.detach().clone() for p in t.model.parameters()]
    r = t.train_step()
    assert r.applied and math.isfinite(r.loss) and r.grad_norm > 0
    assert t.state.step == 1 and t.state.tokens == 8 * 16
    assert all(p.grad is None for p in t.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.parameters(), strict=True))


def test_training_steps_lower_the_loss(word_data):
    t = make_trainer(word_data)
    first = t.estimate_loss()["train"]
    for _ in range(40):
        t.train_step()
    assert t.estimate_loss()["train"] < first - 1.0


def test_a_non_finite_loss_skips_the_step_and_counts_it(word_data):
    t = make_trainer(word_data)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    with torch.no_grad():
        t.model.ln_f.weight[0] = float("nan")  # every loss is NaN now
    r = t.train_step()
    assert not r.applied and t.state.bad_steps == 1 and t.state.step == 1
    for k, v in t.model.state_dict().items():  # nothing was applied
        if k != "ln_f.weight":
            assert torch.equal(v, before[k]), k


def test_divergence_stops_the_loop_after_max_bad_steps(word_data):
    t = make_trainer(word_data, lr=1e6, max_bad_steps=3, grad_clip=0.0, max_iters=200)
    with pytest.raises(DivergedError, match="not finite for 3 steps in a row"):
        fit(t, Records())
    assert t.state.bad_steps == 3


def test_frozen_embeddings_do_not_move(word_data):
    t = make_trainer(word_data, freeze_embeddings=3)
    w = t.model.wte.weight.detach().clone()
    for _ in range(3):
        t.train_step()
    assert torch.equal(t.model.wte.weight, w)
    t.train_step()
    assert not torch.equal(t.model.wte.weight, w)


# ------------------------------------------------------------------ evaluation and state


def test_evaluation_uses_the_same_batches_each_time(word_data):
    t = make_trainer(word_data)
    a, b = t.estimate_loss(), t.estimate_loss()
    assert a == b and set(a) == {"train", "val"}
    assert t.model.training  # back in training mode


def test_best_and_patience_counters(word_data):
    t = make_trainer(word_data)
    st = t.state
    assert st.record_eval(3.0, 0.1) and st.best_val == 3.0 and st.last_eval_progress == 0.1
    assert not st.record_eval(3.0, 0.2)  # equal is not better
    assert not st.record_eval(float("nan"), 0.3)
    assert t.state.evals_since_best == 2 and t.state.best_val == 3.0
    assert st.record_eval(2.5, 0.4) and st.evals_since_best == 0


def test_patience_stops_the_loop(word_data):
    t = make_trainer(word_data, eval_interval=1, patience=2, max_iters=1000)
    vals = iter([5.0, 4.0, 4.5, 4.2, 1.0])
    t.estimate_loss = lambda: {"train": 0.0, "val": next(vals)}
    assert fit(t, Records()) == "patience" and t.state.step == 3


def test_state_round_trips_and_a_restored_trainer_continues_identically(word_data):
    a = make_trainer(word_data)
    for _ in range(5):
        a.train_step()
    sd = torch.load(
        _save(a.state_dict()), weights_only=True
    )  # through a file, as a checkpoint goes
    b = make_trainer(word_data)
    b.load_state_dict(sd)
    assert repr(b.state) == repr(a.state)  # nan == nan as text
    for _ in range(4):
        a.train_step(), b.train_step()
    for (k, va), vb in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k


def _save(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_train_state_dict_is_plain_values():
    s = TrainState(step=3, best_val=1.5)
    d = s.state_dict()
    assert d["step"] == 3 and all(isinstance(v, int | float) for v in d.values())
    t = TrainState()
    t.load_state_dict({**d, "unknown_key": 1})
    assert t == s


# ------------------------------------------------------------------ collectives, one process


def test_a_single_process_sync_is_the_identity():
    assert Dist().sync([1.5, 0.0, 2.0], ["rank0", "max", "sum"]) == [1.5, 0.0, 2.0]
    Dist().agree(None)
    with pytest.raises(ValueError):
        Dist().agree(ValueError("boom"))


def test_bf16_training_of_the_adaptive_head_matches_fp32_after_learning(word_data):
    """The cpu preset's path: rotary positions, adaptive head in fp32 inside bf16 autocast.
    Stated tolerance: after 60 steps the two val losses agree within 2 %, and both have
    learned (more than 1.5 nats below the start)."""
    out, ran = {}, {}
    for dtype in (None, torch.bfloat16):
        t = make_trainer(
            word_data,
            model_kw={"head": "adaptive", "cutoffs": (64, 512), "pos": "rope"},
            max_iters=60,
        )
        t.dtype = dtype
        seen = ran.setdefault(dtype, set())
        t.model.h[0].mlp.fc.register_forward_hook(lambda m, i, o, seen=seen: seen.add(o.dtype))
        start = t.estimate_loss()["val"]
        for _ in range(60):
            t.train_step()
        out[dtype] = (start, t.estimate_loss()["val"])
    assert ran == {None: {torch.float32}, torch.bfloat16: {torch.bfloat16}}  # bf16 really ran
    (s32, v32), (s16, v16) = out[None], out[torch.bfloat16]
    assert v32 < s32 - 1.5 and v16 < s16 - 1.5
    assert abs(v16 - v32) / v32 < 0.02


# ------------------------------------------------------------------ quality levers


class StubScaler:
    """A gradient scaler whose scale goes ``before`` -> ``after`` in the step."""

    def __init__(self, before: float, after: float):
        self.scales = [before, after]

    def is_enabled(self) -> bool:
        return True

    def get_scale(self) -> float:
        return self.scales.pop(0)


class StubOpt:
    def __init__(self):
        self.steps = 0

    def step(self, scaler) -> None:
        self.steps += 1


@pytest.mark.parametrize(
    "before, after, outcome",
    [(65536.0, 65536.0, "applied"), (65536.0, 32768.0, "skipped"), (0.5, 0.25, "bad")],
)
def test_an_fp16_step_the_scaler_skips_is_not_applied_and_counts_once_gradients_are_bad(
    before, after, outcome
):
    """Overflow at a large scale is fp16's business (skipped, not counted); overflow with the
    scale already below 1 means the gradients themselves are not finite (bad, counted)."""
    from wordgpt.training.trainer import apply_step

    updates = []

    class StubEMA:
        def update(self, model):
            updates.append(model)

    assert apply_step(StubOpt(), StubScaler(before, after), StubEMA(), "model") == outcome
    assert updates == (["model"] if outcome == "applied" else [])  # no EMA of a skipped step


def test_the_ddp_backend_follows_the_device_asked_for():
    from wordgpt.training.distributed import backend_for

    assert backend_for("auto", cuda=True) == "nccl" and backend_for("cuda:1", cuda=True) == "nccl"
    assert backend_for("cpu", cuda=True) == "gloo" and backend_for("auto", cuda=False) == "gloo"
