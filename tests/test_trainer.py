"""The Trainer's pieces, each on its own: batches, one step, accumulation, evaluation, state,
the schedule under a time budget, skipped steps, and collective decisions in one process."""

from __future__ import annotations

import math

import pytest
import torch

from wordgpt.config import ModelConfig
from wordgpt.corpus.tokenfiles import load_split
from wordgpt.model.gpt import GPT
from wordgpt.training.batches import Batches
from wordgpt.training.distributed import Dist
from wordgpt.training.optim import param_groups
from wordgpt.training.train import fit
from wordgpt.training.trainer import DivergedError, TrainState

from .helpers import TINY_MODEL, FakeClock, OnStep, Records, make_trainer

CPU = torch.device("cpu")


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# ------------------------------------------------------------------ batches


def test_the_global_batch_is_one_draw_cut_by_rank_and_micro_batch(word_data):
    data = load_split(word_data, "train")
    one = Batches(data, 8, 16, 1, seed=5, d=Dist())
    ranks = [Batches(data, 4, 16, 1, seed=5, d=Dist(rank=r, world=2)) for r in (0, 1)]
    accum = Batches(data, 4, 16, 2, seed=5, d=Dist())
    x8, _ = one.micro(3, 0)
    halves = [b.micro(3, 0)[0] for b in ranks]
    assert torch.equal(torch.cat(halves), x8)  # 2 ranks x 4 rows == 1 process x 8 rows
    assert torch.equal(torch.cat([accum.micro(3, 0)[0], accum.micro(3, 1)[0]]), x8)
    assert not torch.equal(halves[0], halves[1])  # ranks draw different rows
    assert not torch.equal(one.micro(4, 0)[0], x8)  # and each step new ones
    assert torch.equal(one.micro(3, 0)[0], x8)  # a function of (seed, step): no state


def test_y_is_x_shifted_by_one(word_data):
    x, y = Batches(load_split(word_data, "train"), 4, 16, 1, 0, Dist()).micro(0, 0)
    assert x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])


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


# ------------------------------------------------------------------ schedule and time


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
    assert reason == "time_budget" and t.train_until() == 49.75
    assert t.state.step == 99 and t.state.elapsed == 50.0  # 0.5 s + 99 steps of 0.5 s
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


def test_the_cosine_schedule_reaches_its_floor_at_max_iters(word_data):
    """By steps, the fraction warm-up is nanoGPT's: 5 warm-up steps of 25 at warmup 0.2."""
    t = make_trainer(word_data, lr=1.0, min_lr_ratio=0.1, warmup=0.2, max_iters=25)
    lrs = []
    fit(t, Records(), progress=OnStep(lambda r: lrs.append(r.lr)))
    assert len(lrs) == 25 and lrs[0] == pytest.approx(0.2) and lrs[4] == pytest.approx(1.0)
    # step i runs at the progress its end reaches, (i + 1) / 25: step 15 is 55 % down
    assert lrs[15] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.55)))
    assert lrs[24] == pytest.approx(0.1) and t.lr() == pytest.approx(0.1)


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


def test_dropout_masks_are_a_function_of_the_step(word_data):
    """With dropout, two trainers from the same start stay identical (no hidden RNG state),
    whatever other code draws random numbers in between."""
    a = make_trainer(word_data, model_kw={"dropout": 0.3})
    b = make_trainer(word_data, model_kw={"dropout": 0.3})
    a.train_step()
    torch.rand(100)  # someone else uses the global generator
    b.train_step()
    for va, vb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(va, vb)


def test_train_state_dict_is_plain_values():
    s = TrainState(step=3, best_val=1.5)
    d = s.state_dict()
    assert d["step"] == 3 and all(isinstance(v, int | float) for v in d.values())
    t = TrainState()
    t.load_state_dict({**d, "unknown_key": 1})
    assert t == s


# ------------------------------------------------------------------ optimizer groups


def small(**kw) -> ModelConfig:
    """A one-layer model of the original notebook's kind (learned positions, full softmax)."""
    return ModelConfig(**{**TINY_MODEL, "vocab_size": 50, "block_size": 8, "n_layer": 1,
                          "n_embd": 8, **kw})  # fmt: skip


def test_weight_decay_falls_on_linear_matrices_only():
    m = GPT(small())
    decay, rest = param_groups(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == [
        "h.0.attn.proj.weight",
        "h.0.attn.qkv.weight",
        "h.0.mlp.fc.weight",
        "h.0.mlp.proj.weight",
        "lm_head.weight",
    ]
    assert {"wte.weight", "wpe.weight", "ln_f.weight", "lm_head.bias"} <= {
        names[id(p)] for p in rest["params"]
    }
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    tied = GPT(small(tie_weights=True))
    decay, rest = param_groups(tied, 0.1)
    assert all(p is not tied.wte.weight for p in decay["params"])  # the embedding: no decay
    assert len(decay["params"]) + len(rest["params"]) == len(list(tied.parameters()))


def test_the_adaptive_heads_matrices_are_decayed_too():
    m = GPT(small(n_embd=32, head="adaptive", cutoffs=(10, 30)))
    decay, _ = param_groups(m, 0.1)
    head = {id(p) for p in m.lm_head.parameters()}
    assert head and head <= {id(p) for p in decay["params"]}


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


def test_muon_orthogonalises_the_update_of_the_blocks_matrices(word_data):
    """Muon's step on a matrix is (a scaled) orthogonalised momentum: its singular values are
    all close to one value, unlike the raw gradient's. AdamW still moves the embeddings."""
    t = make_trainer(
        word_data,
        optimizer="muon",
        lr=1e-2,
        weight_decay=0.0,
        muon_momentum=0.95,
        muon_warmup=0.0,
    )
    assert set(t.opt.opts) == {"muon", "adamw"}
    w = t.model.h[0].mlp.fc.weight
    muon_params = {id(p) for g in t.opt.opts["muon"].param_groups for p in g["params"]}
    assert id(w) in muon_params and id(t.model.wte.weight) not in muon_params
    before, emb = w.detach().clone(), t.model.wte.weight.detach().clone()
    t.accumulate()
    grad = w.grad.detach().clone()
    grad_sv = torch.linalg.svdvals(grad)
    t.state.step = 0
    t.opt.zero_grad()
    t.train_step()
    update = before - w.detach()
    U, _, Vh = torch.linalg.svd(grad, full_matrices=False)
    polar = U @ Vh  # the orthogonal matrix nearest to the gradient's direction

    def cos(a, b):
        return float((a * b).sum() / (a.norm() * b.norm()))

    assert cos(update, polar) > 0.95  # the step is the orthogonalised gradient...
    assert cos(update, grad) < cos(update, polar) - 0.15  # ...not the gradient itself
    sv = torch.linalg.svdvals(update)
    assert sv[: len(sv) * 9 // 10].max() / sv[: len(sv) * 9 // 10].min() < 2.0
    assert (grad_sv.max() / grad_sv.min()) > 5
    assert not torch.equal(t.model.wte.weight, emb)


def test_muons_momentum_warms_up(word_data):
    """Over the first 20 % of a 50-step run: 10 steps."""
    t = make_trainer(word_data, optimizer="muon", muon_momentum=0.95, muon_warmup=0.2)
    seen = []
    for _ in range(12):
        t.train_step()
        seen.append(t.opt.opts["muon"].param_groups[0]["momentum"])
    assert seen[0] == pytest.approx(0.86) and seen[4] == pytest.approx(0.90)
    assert seen[9] == seen[11] == pytest.approx(0.95)


def test_learning_rate_scales_reach_their_groups(word_data):
    t = make_trainer(
        word_data, lr=1.0, embed_lr_scale=0.5, head_lr_scale=2.0, warmup=0.0, min_lr_ratio=1.0
    )
    t.train_step()
    by_param = {id(p): g["lr"] for g in t.opt.param_groups for p in g["params"]}
    assert by_param[id(t.model.wte.weight)] == 0.5
    assert by_param[id(t.model.lm_head.weight)] == 2.0
    assert by_param[id(t.model.h[0].attn.qkv.weight)] == 1.0


def test_ema_weights_are_the_average_they_claim(word_data):
    t = make_trainer(word_data, ema=0.9)
    w = t.model.h[0].attn.qkv.weight
    expect = w.detach().clone()
    for i in range(15):
        t.train_step()
        d = min(0.9, (1 + i) / (10 + i))
        expect = d * expect + (1 - d) * w.detach()
    torch.testing.assert_close(t.ema.model.h[0].attn.qkv.weight, expect, rtol=1e-5, atol=1e-7)
    assert not torch.equal(t.ema.model.h[0].attn.qkv.weight, w)
    sd = t.state_dict()  # the model saved is the average; the trained weights travel too
    assert torch.equal(sd["model"]["h.0.attn.qkv.weight"], t.ema.model.h[0].attn.qkv.weight)
    assert torch.equal(sd["train_model"]["h.0.attn.qkv.weight"], w)
    u = make_trainer(word_data, ema=0.9)
    u.load_state_dict(sd)
    assert torch.equal(u.model.h[0].attn.qkv.weight, w) and u.ema.updates == 15


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


def test_epochs_0_lifts_a_presets_cap_and_a_negative_one_is_refused(word_data, tmp_path):
    from wordgpt.config import StopConfig
    from wordgpt.errors import WordGPTError
    from wordgpt.training.train import train

    assert train(word_data, tmp_path / "r", "cpu", dry_run=True).train.stop.epochs == 4.0
    plan = train(word_data, tmp_path / "r", "cpu", dry_run=True, epochs=0)
    assert plan.train.stop.epochs == 0
    t = make_trainer(word_data, epochs=0, max_iters=3, eval_interval=1000)
    assert fit(t, Records()) == "max_iters" and t.progress() == 1.0
    with pytest.raises(WordGPTError, match="epochs must be >= 0"):
        StopConfig(epochs=-1.0)
